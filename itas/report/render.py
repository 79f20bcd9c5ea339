"""Machine-readable renderings of a report: JSON, CSV (one row per front or baseline trial of each run) and
Markdown. Pure functions of ``RunReport`` objects."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

from itas.report.summary import Row, RunReport

CSV_COLUMNS = ["run", "benchmark", "trial", "kind", "on_front", "baseline", "picked", "accuracy", "accuracy_lo",
               "accuracy_hi", "latency_p50", "latency_p95", "cost_per_query", "cost_unit", "calls_per_query",
               "diff_vs_best_single", "diff_lo", "diff_hi", "p_value", "validation_n", "validation_accuracy",
               "validation_lo", "validation_hi", "validation_p_value", "description", "train_cost_per_query",
               "train_latency_per_query"]


def to_data(reports: Sequence[RunReport]) -> dict:
    return {"runs": [rr.to_dict() for rr in reports]}


def to_json(reports: Sequence[RunReport]) -> str:
    return json.dumps(_finite(to_data(reports)), indent=2) + "\n"


def _finite(value):
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def rows_of(rr: RunReport) -> list[Row]:
    """The front (best first), then the baselines not on it."""
    return list(rr.front) + [b for b in rr.baselines if not b.on_front]


def to_csv(reports: Sequence[RunReport]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rr in reports:
        picked = rr.picked.trial.number if rr.picked else None
        rows = rows_of(rr)
        if rr.picked is not None and all(r.trial.number != picked for r in rows):
            rows.append(rr.picked)
        for r in rows:
            t, s = r.trial, r.search
            v = s.vs_best_single
            val = r.validation
            w.writerow({
                "run": rr.run.label, "benchmark": rr.run.benchmark, "trial": t.number, "kind": t.kind,
                "on_front": r.on_front, "baseline": r.baseline, "picked": t.number == picked,
                "accuracy": _num(t.accuracy), "accuracy_lo": _num(s.accuracy.lo), "accuracy_hi": _num(s.accuracy.hi),
                "latency_p50": _num(t.latency_p50), "latency_p95": _num(t.latency_p95),
                "cost_per_query": _num(t.cost), "cost_unit": rr.run.cost_unit, "calls_per_query": _num(t.calls),
                "diff_vs_best_single": _num(v.difference.estimate) if v else "",
                "diff_lo": _num(v.difference.lo) if v else "", "diff_hi": _num(v.difference.hi) if v else "",
                "p_value": _num(v.p_value) if v else "",
                "validation_n": val.n if val else "",
                "validation_accuracy": _num(val.accuracy.estimate) if val else "",
                "validation_lo": _num(val.accuracy.lo) if val else "",
                "validation_hi": _num(val.accuracy.hi) if val else "",
                "validation_p_value": _num(val.vs_best_single.p_value) if val and val.vs_best_single else "",
                "description": t.description,
                "train_cost_per_query": _num(t.metrics["train_cost_per_query"])
                if "train_cost_per_query" in t.metrics else "",
                "train_latency_per_query": _num(t.metrics["train_latency_per_query"])
                if "train_latency_per_query" in t.metrics else ""})
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.6g}"


def ci(interval, fmt: str = ".3f", signed: bool = False) -> str:
    if interval is None or not math.isfinite(interval.estimate):
        return "—"
    f = ("+" if signed else "") + fmt
    return f"{interval.estimate:{f}} [{interval.lo:{f}}, {interval.hi:{f}}]"


def cost_text(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "tokens" else f"{value:.4g}"


def table_cells(rr: RunReport, r: Row) -> dict[str, str]:
    """The cells of one row, as the table, Markdown and HTML renderings show them."""
    t, s = r.trial, r.search
    v = s.vs_best_single
    cells = {
        "trial": f"{t.number}" + (" ★" if rr.picked is not None and rr.picked.trial.number == t.number else ""),
        "accuracy [95% CI]": ci(s.accuracy) if s.n else f"{t.accuracy:.3f} [no per-question scores]",
        "Δ vs best single [95% CI]": "—" if v is None else ci(v.difference, signed=True),
        "p": "—" if v is None else f"{v.p_value:.3g}",
    }
    if rr.validation is not None:
        val = r.validation
        cells[f"validation ({len(rr.validation.question_ids)} new q)"] = "—" if val is None else (
            ci(val.accuracy) + (f" ({val.failed} failed)" if val.failed else ""))
        cells["validation p"] = "—" if val is None or val.vs_best_single is None else \
            f"{val.vs_best_single.p_value:.3g}"
    cells.update({
        "latency p50 / p95 (s)": f"{t.latency_p50:.2f} / {t.latency_p95:.2f}",
        f"cost/query ({rr.run.cost_unit})": cost_text(t.cost, rr.run.cost_unit),
        "calls/query": f"{t.calls:.1f}",
    })
    if rr.ttt is not None:
        cells["of which training (cost / latency)"] = training_cell(rr, t)
    cells.update({
        "architecture": t.description + (" (single call)" if r.baseline and "single" not in t.description else ""),
    })
    return cells


def training_cell(rr: RunReport, t) -> str:
    """Test-time training's share of a trial's cost and latency per query ('—' for trials without ttt)."""
    row = next((r for r in rr.ttt.rows if r.trial.number == t.number), None) if rr.ttt else None
    if row is None:
        return "—"
    cost = "?" if row.cost_share is None else f"{row.cost_share:.0%}"
    latency = "?" if row.train_latency is None else f"{row.train_latency:.1f} s"
    return f"{cost} / {latency}"


def ttt_section(rr: RunReport) -> list[str]:
    """The lines of the test-time training section (none when the run did not use it)."""
    from itas.report.ttt import ttt_lines

    return [] if rr.ttt is None else ttt_lines(rr.ttt, rr.run.cost_unit)


def headline(rr: RunReport) -> str:
    run = rr.run
    c = rr.counts
    extra = ", ".join(f"{c[k]} {k}" for k in ("infeasible", "duplicate", "failed", "interrupted")
                      if c.get(k))
    best = rr.best_single
    return (f"{run.label}: {run.benchmark}, {len(run.question_ids())} questions, {c.get('evaluated', 0)} evaluated "
            f"trials" + (f" ({extra})" if extra else "") + f", {len(rr.front)} on the front; best single call: "
            + (f"trial {best.number} ({best.description}, accuracy {best.accuracy:.3f})" if best else "none"))


def best_lines(rr: RunReport) -> list[str]:
    unit = rr.run.cost_unit
    out = []
    for objective, t in rr.best.items():
        out.append(f"best {objective}: trial {t.number} ({t.description}): accuracy {t.accuracy:.3f}, latency "
                   f"{t.latency_p50:.2f} s, cost {cost_text(t.cost, unit)} {unit}/query, {t.calls:.1f} calls/query")
    return out


def pick_line(rr: RunReport) -> str | None:
    if not rr.constraints:
        return None
    what = " and ".join(str(c) for c in rr.constraints)
    if rr.picked is None:
        from itas.report.pick import nearest_miss

        return f"pick ({what}): no evaluated architecture meets every constraint ({nearest_miss(rr.run.evaluated(), rr.constraints)})"
    t = rr.picked.trial
    unit = rr.run.cost_unit
    return (f"pick ({what}): trial {t.number} ({t.description}): accuracy {ci(rr.picked.search.accuracy)}, latency "
            f"{t.latency_p50:.2f} s, cost {cost_text(t.cost, unit)} {unit}/query, {t.calls:.1f} calls/query")


def to_markdown(reports: Sequence[RunReport]) -> str:
    out = ["# itas report", ""]
    for rr in reports:
        out += [f"## {rr.run.label}", "", headline(rr), ""]
        rows = rows_of(rr)
        if rows:
            header = list(table_cells(rr, rows[0]))
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---:" if h != "architecture" else "---" for h in header) + "|")
            for r in rows:
                cells = table_cells(rr, r)
                out.append("| " + " | ".join(cells[h].replace("|", "\\|") for h in header) + " |")
            out.append("")
        out += [f"- {line}" for line in best_lines(rr)]
        p = pick_line(rr)
        if p:
            out.append(f"- {p}")
        ttt = ttt_section(rr)
        if ttt:
            out += ["", "### test-time training", ""] + [f"- {line}" for line in ttt] + [""]
        if rr.files:
            out.append(f"- files: {', '.join(rr.files)}")
        out.append("")
    return "\n".join(out)
