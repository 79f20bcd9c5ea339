"""Plots of a sampling run, from its tables (``analysis.SamplingTables.to_dict()``): PNG through matplotlib's
Agg canvas (no pyplot, no global backend change, no display needed) and one self-contained HTML page through
plotly (plotly.js embedded: it opens offline).

- ``coverage.png``: measured coverage vs k (log k) with its interval, the fitted curve over the measured range
  and its extrapolation (dashed) with the interval of the fit.
- ``curves.png``: coverage, majority vote@k, Best-of-N@k and Worst-of-N@k, with intervals.
- ``winrate.png`` (with a reward): Best/Worst-of-N win rates vs N beside N/(N+1) and 1/(N+1); the histogram of
  calibrated rewards beside the uniform density a perfectly calibrated reward gives.
- ``sampling.html``: all of the above, interactive.
"""

from __future__ import annotations

from pathlib import Path

from itas.fsutil import atomic_path

SERIES = [("coverage", "coverage (pass@k)", "#1f77b4"), ("vote", "majority vote@k", "#2ca02c"),
          ("best_of_n", "Best-of-N@k", "#d62728"), ("worst_of_n", "Worst-of-N@k", "#9467bd")]


def _col(rows: list[dict], key: str) -> list[float]:
    return [float("nan") if r.get(key) is None else r[key] for r in rows]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path


def _title(tables: dict, what: str) -> str:
    s = tables["summary"]
    return f"{what}: {s.get('model', '')} on {s.get('benchmark', '')}, {s['questions']} questions"


def coverage_png(tables: dict, path: Path) -> Path:
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    curves = tables["curves"]
    ks = _col(curves, "k")
    ax.fill_between(ks, _col(curves, "coverage_lo"), _col(curves, "coverage_hi"), color="#1f77b4", alpha=0.2,
                    linewidth=0)
    ax.plot(ks, _col(curves, "coverage"), "o-", color="#1f77b4", markersize=3, label="measured coverage")
    fit = tables["fit"]
    k_max = fit["measured_k_max"]
    curve = fit.get("curve") or []
    if curve:
        inside = [p for p in curve if p["k"] <= k_max]
        beyond = [p for p in curve if p["k"] >= k_max]
        label = _fit_label(fit)
        ax.plot(_col(inside, "k"), _col(inside, "coverage"), "-", color="black", linewidth=1, label=label)
        ax.plot(_col(beyond, "k"), _col(beyond, "coverage"), "--", color="black", linewidth=1,
                label="extrapolated")
        ax.fill_between(_col(beyond, "k"), _col(beyond, "lo"), _col(beyond, "hi"), color="grey", alpha=0.2,
                        linewidth=0, label=f"fit {int(fit['level'] * 100)}% interval")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("coverage")
    ax.set_title(_title(tables, "Coverage"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _fit_label(fit: dict) -> str:
    if fit["status"] == "saturated":
        return "fit: saturated (coverage 1)"
    return f"fit: log c = {fit['a']:.3g}·k^{fit['b']:.3g}"


def curves_png(tables: dict, path: Path) -> Path:
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    curves = tables["curves"]
    ks = _col(curves, "k")
    for key, label, color in SERIES:
        if key not in curves[0]:
            continue
        ax.fill_between(ks, _col(curves, f"{key}_lo"), _col(curves, f"{key}_hi"), color=color, alpha=0.15,
                        linewidth=0)
        ax.plot(ks, _col(curves, key), "o-", color=color, markersize=3, label=label)
    ax.axhline(curves[0]["coverage"] or 0.0, color="grey", linestyle=":", linewidth=1, label="pass@1")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("share of questions answered correctly")
    ax.set_title(_title(tables, "Repeated sampling"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def winrate_png(tables: dict, path: Path) -> Path:
    fig = _figure(11, 4.5)
    left, right = fig.subplots(1, 2)
    rows = tables["winrate"] or []
    ns = _col(rows, "n")
    for key, label, color in [("best", "Best-of-N", "#d62728"), ("worst", "Worst-of-N", "#9467bd")]:
        left.fill_between(ns, _col(rows, f"{key}_lo"), _col(rows, f"{key}_hi"), color=color, alpha=0.15,
                          linewidth=0)
        left.plot(ns, _col(rows, f"{key}_win_rate"), "o-", color=color, markersize=3, label=f"{label} win rate")
        ideal = "N/(N+1)" if key == "best" else "1/(N+1)"
        left.plot(ns, _col(rows, f"{key}_ideal"), "--", color=color, linewidth=1, label=f"{ideal} (calibrated)")
    if ns and max(ns) > 16:
        left.set_xscale("log")
    left.set_ylim(0, 1)
    left.set_xlabel("N")
    left.set_ylabel("win rate vs one base sample (ties ½)")
    left.set_title("Best/Worst-of-N win rate, judged by the reward")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    cal = tables.get("calibration") or {}
    hist = cal.get("histogram") or {"edges": [0, 1], "density": [0]}
    edges, density = hist["edges"], hist["density"]
    right.bar(edges[:-1], density, width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)],
              align="edge", color="#7f7f7f", alpha=0.6, edgecolor="white", label="calibrated rewards")
    right.axhline(1.0, color="black", linestyle="--", linewidth=1, label="uniform")
    right.set_xlim(0, 1)
    right.set_xlabel("calibrated reward (quantile among the question's samples)")
    right.set_ylabel("density")
    tie = cal.get("tie_rate")
    right.set_title("Calibration" + (f": tie rate {tie:.2f}, W1 {cal.get('w1_from_uniform') or 0:.3f}"
                                     if tie is not None else ""))
    right.legend(fontsize=8)
    return _save(fig, path)


def sampling_html(tables: dict, path: Path) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    reward = tables.get("winrate") is not None
    titles = ["Coverage and scaling-law fit", "Coverage, vote, Best/Worst-of-N"]
    if reward:
        titles += ["Best/Worst-of-N win rate (judged by the reward)", "Calibrated rewards"]
    rows = 2 if reward else 1
    fig = make_subplots(rows=rows, cols=2, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.14)
    curves = tables["curves"]
    ks = _col(curves, "k")

    def band(x, lo, hi, color, row, col, name):
        fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself",
                                 fillcolor=color, opacity=0.2, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, name=name), row=row, col=col)

    band(ks, _col(curves, "coverage_lo"), _col(curves, "coverage_hi"), "#1f77b4", 1, 1, "coverage interval")
    fig.add_trace(go.Scatter(x=ks, y=_col(curves, "coverage"), mode="lines+markers", name="measured coverage",
                             line={"color": "#1f77b4"}), row=1, col=1)
    fit = tables["fit"]
    curve = fit.get("curve") or []
    if curve:
        band(_col(curve, "k"), _col(curve, "lo"), _col(curve, "hi"), "grey", 1, 1, "fit interval")
        fig.add_trace(go.Scatter(x=_col(curve, "k"), y=_col(curve, "coverage"), mode="lines",
                                 name=_fit_label(fit), line={"color": "black", "dash": "dash"}), row=1, col=1)
    for key, label, color in SERIES:
        if key not in curves[0]:
            continue
        band(ks, _col(curves, f"{key}_lo"), _col(curves, f"{key}_hi"), color, 1, 2, label)
        fig.add_trace(go.Scatter(x=ks, y=_col(curves, key), mode="lines+markers", name=label,
                                 line={"color": color}), row=1, col=2)
    if reward:
        wr = tables["winrate"] or []
        ns = _col(wr, "n")
        for key, label, color in [("best", "Best-of-N", "#d62728"), ("worst", "Worst-of-N", "#9467bd")]:
            band(ns, _col(wr, f"{key}_lo"), _col(wr, f"{key}_hi"), color, 2, 1, label)
            fig.add_trace(go.Scatter(x=ns, y=_col(wr, f"{key}_win_rate"), mode="lines+markers",
                                     name=f"{label} win rate", line={"color": color}), row=2, col=1)
            fig.add_trace(go.Scatter(x=ns, y=_col(wr, f"{key}_ideal"), mode="lines",
                                     name="N/(N+1)" if key == "best" else "1/(N+1)",
                                     line={"color": color, "dash": "dash"}), row=2, col=1)
        hist = (tables.get("calibration") or {}).get("histogram") or {"edges": [0, 1], "density": [0]}
        edges = hist["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        fig.add_trace(go.Bar(x=centers, y=hist["density"], name="calibrated rewards", marker_color="#7f7f7f",
                             width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]), row=2, col=2)
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 1], mode="lines", name="uniform",
                                 line={"color": "black", "dash": "dash"}), row=2, col=2)
        fig.update_yaxes(range=[0, 1], row=2, col=1)
    fig.update_xaxes(type="log", title_text="k", row=1, col=1)
    fig.update_xaxes(type="log", title_text="k", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(title=_title(tables, "Repeated sampling"), height=450 * rows + 80, template="plotly_white",
                      legend={"font": {"size": 10}})
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    return path
