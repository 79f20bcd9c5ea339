"""The results directory of a search. Only this module writes it.

```
results/<run>/
  config.json      the resolved run configuration: everything needed to resume (subset ids, seeds, budget, ...)
  space.yaml       the search space, as given
  pool.yaml        the pool, when one was given (the embedded default otherwise)
  enqueue/         architectures given with --enqueue
  study.db         Optuna storage (SQLite): the source of truth; opens in optuna-dashboard
  calls.sqlite     the call cache
  trials/<n>/      architecture.yaml, questions.jsonl (per-question outputs, scores, usage), metrics.json
  trials.csv       one row per trial (evaluated, infeasible, duplicate, failed)
  pareto.csv       the non-dominated evaluated trials
```

A trial is complete when Optuna recorded it complete; trial folders and tables are derived from the study
(architecture, metrics and per-question scores and usage are stored with each trial) and rebuilt on resume.
Every write is atomic (a temporary file renamed into place).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from itas.fsutil import atomic_write
from itas.search.pareto import pareto_front

CONFIG = "config.json"
TRIAL_COLUMNS = ["trial", "kind", "status", "accuracy", "latency_p50", "latency_p95", "cost_per_query",
                 "calls_per_query", "tokens_per_query", "wall_p50", "estimated_calls", "duplicate_of", "reason",
                 "params", "description"]


def read_config(run_dir: Path) -> dict | None:
    path = run_dir / CONFIG
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        from itas.errors import InputError

        raise InputError(f"{path}: corrupt run configuration ({exc}); it cannot be resumed") from None


def write_config(run_dir: Path, config: dict) -> None:
    atomic_write(run_dir / CONFIG, json.dumps(config, indent=2, sort_keys=True))


def trial_row(t: Any) -> dict:
    """A row of trials.csv from an Optuna FrozenTrial."""
    ua = t.user_attrs
    m = ua.get("metrics") or {}
    state = t.state.name
    status = ua.get("itas_status") or ("failed" if state == "FAIL" else state.lower())
    if state == "FAIL":
        status = "failed"
    return {
        "trial": t.number, "kind": ua.get("itas_kind", ""), "status": status,
        "accuracy": m.get("accuracy", ""), "latency_p50": m.get("latency_p50", ""),
        "latency_p95": m.get("latency_p95", ""), "cost_per_query": m.get("cost_per_query", ""),
        "calls_per_query": m.get("calls_per_query", ""), "tokens_per_query": m.get("tokens_per_query", ""),
        "wall_p50": m.get("wall_p50", ""), "estimated_calls": (ua.get("estimate") or {}).get("calls", ""),
        "duplicate_of": ua.get("duplicate_of", ""), "reason": ua.get("reason", ""),
        "params": json.dumps(t.params, sort_keys=True) if t.params else "",
        "description": ua.get("description", ""),
    }


def evaluated(trials: list) -> list:
    """Completed trials with their own evaluation (no infeasible or duplicate records)."""
    return [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated"]


def front_trials(trials: list) -> list:
    ev = evaluated(trials)
    idx = pareto_front([tuple(t.values) for t in ev])
    return [ev[i] for i in idx]


def write_tables(run_dir: Path, trials: list) -> None:
    rows = [trial_row(t) for t in sorted(trials, key=lambda t: t.number)]
    atomic_write(run_dir / "trials.csv", _csv(rows))
    front = {t.number for t in front_trials(trials)}
    atomic_write(run_dir / "pareto.csv", _csv([r for r in rows if r["trial"] in front]))


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TRIAL_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_trial_folder(run_dir: Path, t: Any, questions_jsonl: str | None = None) -> Path:
    """trials/<n>/: architecture.yaml, metrics.json and questions.jsonl (full outputs when given, else the
    per-question scores and usage stored with the trial in the study)."""
    import yaml

    folder = run_dir / "trials" / str(t.number)
    ua = t.user_attrs
    arch = ua.get("architecture")
    if arch is not None:
        atomic_write(folder / "architecture.yaml", yaml.safe_dump(arch, sort_keys=False, default_flow_style=None,
                                                                  width=110))
    atomic_write(folder / "metrics.json", json.dumps({
        "trial": t.number, "state": t.state.name, "status": ua.get("itas_status"), "kind": ua.get("itas_kind"),
        "values": list(t.values) if t.values else None, "metrics": ua.get("metrics"),
        "estimate": ua.get("estimate"), "duplicate_of": ua.get("duplicate_of"), "reason": ua.get("reason"),
        "params": t.params}, indent=2))
    if questions_jsonl is not None:
        atomic_write(folder / "questions.jsonl", questions_jsonl)
    elif not (folder / "questions.jsonl").exists() and ua.get("questions"):
        keys = ["id", "score", "calls", "prompt_tokens", "completion_tokens", "latency", "cost"]
        atomic_write(folder / "questions.jsonl",
                     "".join(json.dumps(dict(zip(keys, q, strict=False))) + "\n" for q in ua["questions"]))
    return folder


def rebuild(run_dir: Path, trials: list) -> None:
    """Make the folders and tables agree with the study (after a resume, or a kill between two writes)."""
    for t in trials:
        if t.state.name in ("COMPLETE", "FAIL") and not (run_dir / "trials" / str(t.number) / "metrics.json").exists():
            write_trial_folder(run_dir, t)
    write_tables(run_dir, trials)
