"""Plots of a report: PNG through matplotlib's Agg canvas (no pyplot, no global backend, no display) and one
self-contained interactive HTML page through plotly (plotly.js embedded: it opens offline).

Per run (``write_pngs``):

- ``front_accuracy_latency.png``, ``front_accuracy_cost.png``, ``front_latency_cost.png``: every evaluated
  trial in that pair of objectives (grey), the three-objective front highlighted and labelled with trial
  numbers, the two-objective front of the pair as a step line, single-call baselines as squares.
- ``accuracy_vs_cost.png``: every evaluated trial by kind (baseline, enqueued, sampled), front trials with
  their 95% bootstrap intervals.
- ``progress.png``: each trial's accuracy by trial number and the best accuracy so far.

``write_html`` puts the same figures (hover: trial, architecture, every objective) for one or more runs, plus
the front tables and the report's data as JSON (``<script id="itas-report" type="application/json">``), into
one page. With several runs ``comparison.png`` (and its interactive twin) shows their fronts together.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from itas.fsutil import atomic_path, atomic_write
from itas.report.source import TrialRecord
from itas.report.summary import RunReport
from itas.search.pareto import MAXIMIZE, MINIMIZE, pareto_front

PAIRS = [("accuracy", "latency"), ("accuracy", "cost"), ("latency", "cost")]
DIRECTION = {"accuracy": MAXIMIZE, "latency": MINIMIZE, "cost": MINIMIZE}
KIND_COLOURS = {"baseline": "#d62728", "enqueued": "#9467bd", "sampled": "#1f77b4"}
RUN_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def axis_label(objective: str, cost_unit: str) -> str:
    return {"accuracy": "accuracy", "latency": "latency p50 (s, modelled)",
            "cost": f"cost per query ({cost_unit})", "calls": "calls per query"}[objective]


def _value(t: TrialRecord, objective: str) -> float:
    return t.objective(objective)


def _log_scale(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) > 20


def step_where(x: str) -> str:
    """How the front of a pair is drawn as a staircase: the best y reachable at each x. Along a maximised x
    (accuracy) a point's y holds up to its own x ("pre"); along a minimised x, from its own x on ("post")."""
    return "pre" if DIRECTION[x] == MAXIMIZE else "post"


def pair_front(trials: Sequence[TrialRecord], x: str, y: str) -> list[TrialRecord]:
    """The two-objective front of a pair, sorted along x (for a step line)."""
    idx = pareto_front([(_value(t, x), _value(t, y)) for t in trials], (DIRECTION[x], DIRECTION[y]))
    return sorted((trials[i] for i in idx), key=lambda t: (_value(t, x), _value(t, y)))


def progress_series(trials: Sequence[TrialRecord]) -> tuple[list[int], list[float], list[float]]:
    """Trial numbers, their accuracies and the best accuracy so far (evaluated trials in trial order)."""
    ordered = sorted(trials, key=lambda t: t.number)
    best, out = float("-inf"), []
    for t in ordered:
        best = max(best, t.accuracy)
        out.append(best)
    return [t.number for t in ordered], [t.accuracy for t in ordered], out


# ---- PNG ------------------------------------------------------------------------------------------------------
def _figure(width: float = 6.4, height: float = 4.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_pngs(rr: RunReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    run = rr.run
    ev = run.evaluated()
    front = {r.trial.number for r in rr.front}
    base = {r.trial.number for r in rr.baselines}
    files = []
    for x, y in PAIRS:
        fig = _figure()
        ax = fig.add_subplot()
        _front_axes(ax, ev, front, base, x, y, run.cost_unit)
        ax.set_title(f"{run.label}: front in {x} and {y}", fontsize=10)
        files.append(_save(fig, out_dir / f"front_{x}_{y}.png"))
    fig = _figure()
    _accuracy_cost_axes(fig.add_subplot(), rr)
    files.append(_save(fig, out_dir / "accuracy_vs_cost.png"))
    fig = _figure(6.4, 4.0)
    _progress_axes(fig.add_subplot(), rr)
    files.append(_save(fig, out_dir / "progress.png"))
    return files


def _front_axes(ax, ev, front: set, base: set, x: str, y: str, unit: str) -> None:
    ax.scatter([_value(t, x) for t in ev], [_value(t, y) for t in ev], s=18, color="#bbbbbb", label="trials",
               zorder=1)
    line = pair_front(ev, x, y)
    if line:
        ax.step([_value(t, x) for t in line], [_value(t, y) for t in line], where=step_where(x), color="#1f77b4",
                alpha=0.5, lw=1, label=f"front in {x}, {y}", zorder=2)
    on = [t for t in ev if t.number in front]
    ax.scatter([_value(t, x) for t in on], [_value(t, y) for t in on], s=36, color="#1f77b4",
               label="front (3 objectives)", zorder=3)
    bl = [t for t in ev if t.number in base]
    ax.scatter([_value(t, x) for t in bl], [_value(t, y) for t in bl], s=44, marker="s", facecolor="none",
               edgecolor="#d62728", label="single call", zorder=4)
    for t in on:
        ax.annotate(str(t.number), (_value(t, x), _value(t, y)), textcoords="offset points", xytext=(4, 3),
                    fontsize=7)
    ax.set_xlabel(axis_label(x, unit))
    ax.set_ylabel(axis_label(y, unit))
    for obj, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
        if obj != "accuracy" and _log_scale([_value(t, obj) for t in ev]):
            setter("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _accuracy_cost_axes(ax, rr: RunReport) -> None:
    run = rr.run
    ev = run.evaluated()
    for kind, colour in KIND_COLOURS.items():
        ts = [t for t in ev if t.kind == kind]
        if ts:
            ax.scatter([t.cost for t in ts], [t.accuracy for t in ts], s=22, color=colour, alpha=0.75,
                       label=f"{kind} ({len(ts)})", zorder=2)
    for r in rr.front:
        acc = r.search.accuracy
        ax.errorbar([r.trial.cost], [acc.estimate], yerr=[[acc.estimate - acc.lo], [acc.hi - acc.estimate]],
                    fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2, zorder=1)
        ax.scatter([r.trial.cost], [acc.estimate], s=70, facecolor="none", edgecolor="black", zorder=3)
        ax.annotate(str(r.trial.number), (r.trial.cost, acc.estimate), textcoords="offset points", xytext=(5, 3),
                    fontsize=7)
    if _log_scale([t.cost for t in ev]):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label("cost", run.cost_unit))
    ax.set_ylabel("accuracy (front: 95% bootstrap interval)")
    ax.set_title(f"{run.label}: accuracy vs cost, all {len(ev)} evaluated trials (front circled)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _progress_axes(ax, rr: RunReport) -> None:
    numbers, accs, best = progress_series(rr.run.evaluated())
    ax.scatter(numbers, accs, s=14, color="#999999", label="trial accuracy")
    ax.step(numbers, best, where="post", color="#2ca02c", lw=1.5, label="best so far")
    if rr.best_single is not None:
        ax.axhline(rr.best_single.accuracy, color="#d62728", lw=0.8, ls="--", label="best single call")
    ax.set_xlabel("trial")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{rr.run.label}: search progress", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def write_comparison_png(reports: Sequence[RunReport], path: Path) -> Path:
    fig = _figure(7.0, 4.8)
    ax = fig.add_subplot()
    units = {rr.run.cost_unit for rr in reports}
    all_costs = []
    for i, rr in enumerate(reports):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        ev = rr.run.evaluated()
        all_costs += [t.cost for t in ev]
        ax.scatter([t.cost for t in ev], [t.accuracy for t in ev], s=12, color=colour, alpha=0.3)
        line = pair_front(ev, "cost", "accuracy")
        ax.step([t.cost for t in line], [t.accuracy for t in line], where=step_where("cost"), color=colour, lw=1.5,
                label=f"{rr.run.label} ({rr.run.benchmark})")
    if _log_scale(all_costs):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label("cost", units.pop() if len(units) == 1 else "mixed units"))
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs cost: fronts of each run", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


# ---- HTML -----------------------------------------------------------------------------------------------------
def _hover(t: TrialRecord, unit: str) -> str:
    return (f"trial {t.number} ({t.kind})<br>{html.escape(t.description)}<br>accuracy {t.accuracy:.3f}"
            f"<br>latency p50 {t.latency_p50:.2f} s, p95 {t.latency_p95:.2f} s<br>cost {t.cost:.4g} {unit}/query"
            f"<br>{t.calls:.1f} calls/query")


def _trace(go, trials: Sequence[TrialRecord], x: str, y: str, unit: str, **kw):
    # plain lists (not numpy arrays), so the points are readable JSON in the page
    return go.Scatter(x=[float(_value(t, x)) for t in trials], y=[float(_value(t, y)) for t in trials],
                      customdata=[int(t.number) for t in trials], text=[_hover(t, unit) for t in trials],
                      hovertemplate="%{text}<extra></extra>", **kw)


def run_figures(rr: RunReport) -> list:
    """The interactive figures of one run (plotly Figure objects)."""
    import plotly.graph_objects as go

    run = rr.run
    unit = run.cost_unit
    ev = run.evaluated()
    front_numbers = {r.trial.number for r in rr.front}
    on = [t for t in ev if t.number in front_numbers]
    base = [r.trial for r in rr.baselines]
    figs = []
    for x, y in PAIRS:
        fig = go.Figure()
        fig.add_trace(_trace(go, ev, x, y, unit, mode="markers", name="trials", marker={"color": "#bbbbbb"}))
        line = pair_front(ev, x, y)
        fig.add_trace(_trace(go, line, x, y, unit, mode="lines", name=f"front in {x}, {y}",
                             line={"shape": "vh" if step_where(x) == "pre" else "hv", "color": "#1f77b4",
                                   "width": 1}))
        fig.add_trace(_trace(go, on, x, y, unit, mode="markers+text", name="front (3 objectives)",
                             marker={"color": "#1f77b4", "size": 10},
                             texttemplate=[str(t.number) for t in on], textposition="top right"))
        fig.add_trace(_trace(go, base, x, y, unit, mode="markers", name="single call",
                             marker={"symbol": "square-open", "color": "#d62728", "size": 12}))
        _layout(fig, f"{run.label}: front in {x} and {y}", axis_label(x, unit), axis_label(y, unit),
                xlog=x != "accuracy" and _log_scale([_value(t, x) for t in ev]),
                ylog=y != "accuracy" and _log_scale([_value(t, y) for t in ev]))
        figs.append(fig)
    fig = go.Figure()
    for kind, colour in KIND_COLOURS.items():
        ts = [t for t in ev if t.kind == kind]
        if ts:
            fig.add_trace(_trace(go, ts, "cost", "accuracy", unit, mode="markers", name=f"{kind} ({len(ts)})",
                                 marker={"color": colour, "size": 8, "opacity": 0.8}))
    rows = list(rr.front)
    fig.add_trace(_trace(go, [r.trial for r in rows], "cost", "accuracy", unit, mode="markers", name="front",
                         marker={"symbol": "circle-open", "color": "black", "size": 14},
                         error_y={"type": "data", "symmetric": False,
                                  "array": [float(r.search.accuracy.hi - r.search.accuracy.estimate) for r in rows],
                                  "arrayminus": [float(r.search.accuracy.estimate - r.search.accuracy.lo)
                                                 for r in rows]}))
    _layout(fig, f"{run.label}: accuracy vs cost, all {len(ev)} evaluated trials", axis_label("cost", unit),
            "accuracy", xlog=_log_scale([t.cost for t in ev]))
    figs.append(fig)
    numbers, accs, best = progress_series(ev)
    ordered = sorted(ev, key=lambda t: t.number)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=numbers, y=accs, mode="markers", name="trial accuracy", customdata=numbers,
                             text=[_hover(t, unit) for t in ordered], hovertemplate="%{text}<extra></extra>",
                             marker={"color": "#999999"}))
    fig.add_trace(go.Scatter(x=numbers, y=best, mode="lines", name="best so far", line={"shape": "hv",
                                                                                       "color": "#2ca02c"}))
    if rr.best_single is not None:
        fig.add_hline(y=rr.best_single.accuracy, line_dash="dash", line_color="#d62728",
                      annotation_text="best single call")
    _layout(fig, f"{run.label}: search progress", "trial", "accuracy")
    figs.append(fig)
    return figs


def comparison_figure(reports: Sequence[RunReport]):
    import plotly.graph_objects as go

    fig = go.Figure()
    units = {rr.run.cost_unit for rr in reports}
    costs = []
    for i, rr in enumerate(reports):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        ev = rr.run.evaluated()
        costs += [t.cost for t in ev]
        fig.add_trace(_trace(go, ev, "cost", "accuracy", rr.run.cost_unit, mode="markers",
                             name=f"{rr.run.label}: trials", marker={"color": colour, "opacity": 0.3}))
        fig.add_trace(_trace(go, pair_front(ev, "cost", "accuracy"), "cost", "accuracy", rr.run.cost_unit,
                             mode="lines+markers", name=f"{rr.run.label} ({rr.run.benchmark}): front",
                             line={"shape": "hv", "color": colour}))
    _layout(fig, "accuracy vs cost: fronts of each run",
            axis_label("cost", units.pop() if len(units) == 1 else "mixed units"), "accuracy", xlog=_log_scale(costs))
    return fig


def _layout(fig, title: str, x: str, y: str, *, xlog: bool = False, ylog: bool = False) -> None:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=480,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"font": {"size": 10}})
    if xlog:
        fig.update_xaxes(type="log")
    if ylog:
        fig.update_yaxes(type="log")


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:3px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}h2{margin-top:36px}
.note{color:#666;font-size:13px}"""


def write_html(reports: Sequence[RunReport], path: Path, data: dict) -> Path:
    """One page: for each run its front table and figures; the comparison for several runs; plotly.js
    embedded once (the page opens offline) and the report's data as JSON."""
    figs: list[tuple[str | None, object]] = []
    sections: list[str] = []
    if len(reports) > 1:
        figs.append((None, comparison_figure(reports)))
    for rr in reports:
        for fig in run_figures(rr):
            figs.append((rr.run.label, fig))
    parts = []
    first = True
    for label, fig in figs:
        div = fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False})
        first = False
        parts.append((label, div))
    for rr in [None, *reports] if len(reports) > 1 else reports:
        if rr is None:
            sections.append("<h2>Comparison</h2>" + "".join(d for label, d in parts if label is None))
            continue
        sections.append(f"<h2>{html.escape(rr.run.label)}</h2>{_html_table(rr)}"
                        + "".join(d for label, d in parts if label == rr.run.label))
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>itas report</title>"
            f"<style>{_STYLE}</style></head><body><h1>itas report</h1>{''.join(sections)}"
            f"<script type=\"application/json\" id=\"itas-report\">{payload}</script></body></html>")
    return atomic_write(path, page)


def _html_table(rr: RunReport) -> str:
    from itas.report.render import headline, rows_of, table_cells

    rows = rows_of(rr)
    header = list(table_cells(rr, rows[0]))
    body = []
    for r in rows:
        cells = table_cells(rr, r)
        body.append("<tr>" + "".join(f"<td>{html.escape(cells[h])}</td>" if h == "architecture"
                                     else f"<td class=\"num\">{html.escape(cells[h])}</td>" for h in header)
                    + "</tr>")
    best = rr.best_single
    note = (f"<p class=\"note\">{html.escape(headline(rr))}. Rows: the Pareto front, then the single-call "
            f"baselines not on it. Δ and p: paired bootstrap interval and sign-flip test against the best single "
            f"call (trial {best.number if best else '—'}) on the same questions.</p>")
    from itas.report.render import ttt_section

    ttt = ttt_section(rr)
    extra = "" if not ttt else ("<h3>test-time training</h3><ul>"
                                + "".join(f"<li>{html.escape(line)}</li>" for line in ttt) + "</ul>")
    return (note + "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(body)
            + "</table>" + extra)
