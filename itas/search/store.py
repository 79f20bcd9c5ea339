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


LATENCY = "latency.json"


def read_latency(run_dir: Path) -> dict:
    """The latency models (per pool model) the search's trials were scored with: kept from its first run, so that
    a resume calibrating on a busier machine does not make its later trials look slower. Empty when there are
    none yet (or the file is damaged: the servers are calibrated again)."""
    from itas.pool.latency import LatencyModel

    try:
        data = json.loads((run_dir / LATENCY).read_text())
        return {name: LatencyModel.from_dict(d) for name, d in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_latency(run_dir: Path, models: dict) -> None:
    if models:
        atomic_write(run_dir / LATENCY, json.dumps({k: v.to_dict() for k, v in sorted(models.items())}, indent=2))


INTERRUPTED = "interrupted (the search was killed); evaluated again"


def trial_status(t: Any) -> str:
    """evaluated | infeasible | duplicate | failed | interrupted (left running by a killed search, and its
    architecture evaluated again) | running | ..."""
    if t.state.name == "FAIL":
        return "interrupted" if t.user_attrs.get("reason") == INTERRUPTED else "failed"
    return t.user_attrs.get("itas_status") or t.state.name.lower()


def trial_row(t: Any) -> dict:
    """A row of trials.csv from an Optuna FrozenTrial."""
    ua = t.user_attrs
    m = ua.get("metrics") or {}
    status = trial_status(t)
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
    atomic_write(run_dir / "trials.csv", _csv(rows), sync=False)  # derived from the study, rebuilt on resume
    front = {t.number for t in front_trials(trials)}
    atomic_write(run_dir / "pareto.csv", _csv([r for r in rows if r["trial"] in front]), sync=False)


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
        # libyaml's emitter where PyYAML has it: the same text, a quarter of the CPU (a search writes one a trial)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        atomic_write(folder / "architecture.yaml", yaml.dump(arch, Dumper=dumper, sort_keys=False,
                                                             default_flow_style=None, width=110))
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
    """Make the folders and tables agree with the study (after a resume, or a kill between two writes). A trial
    folder whose metrics.json, or the last line of its questions.jsonl, does not parse (a damaged file) is
    written again from the study; temporary files left by a write that was killed are removed."""
    for t in trials:
        if t.state.name in ("COMPLETE", "FAIL"):
            folder = run_dir / "trials" / str(t.number)
            if not _json_ok(folder / "metrics.json"):
                write_trial_folder(run_dir, t)
            questions = folder / "questions.jsonl"
            if questions.exists() and not _last_line_ok(questions):
                questions.unlink()  # damaged: the per-question scores and usage stored in the study replace it
                write_trial_folder(run_dir, t)
    for tmp in run_dir.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    write_tables(run_dir, trials)


def _json_ok(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def _last_line_ok(path: Path, tail: int = 1 << 20) -> bool:
    """A JSONL file ends with a newline and its last line parses (it was not cut in the middle of a record)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - tail))
            data = f.read()
        if data and not data.endswith(b"\n"):
            return False
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if last:
            json.loads(last)
        return True
    except (OSError, ValueError):
        return False


def check_writable(run_dir: Path) -> None:
    """The results directory (or, for a new one, its nearest existing parent) can be written to."""
    import os

    from itas.errors import InputError

    target = run_dir
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise InputError(f"{run_dir}: {target} is a file, not a directory; give a directory for --out")
    if not os.access(target, os.W_OK | os.X_OK):
        where = "the results directory" if target == run_dir else f"{target}, where it would be made,"
        raise InputError(f"{run_dir}: {where} is not writable (a read-only file system, or permissions); give a "
                         f"writable --out, or copy the directory somewhere writable and --resume the copy")


def check_database(path: Path, what: str, advice: str) -> None:
    """A SQLite file that the search will use is intact (``PRAGMA quick_check``), checked before anything in the
    results directory is written; a damaged one is an InputError naming it."""
    if not path.exists():
        return
    import sqlite3

    from itas.errors import InputError

    try:
        db = sqlite3.connect(path, timeout=60)
        try:
            found = [r[0] for r in db.execute("PRAGMA quick_check(3)").fetchall()]
        finally:
            db.close()
        problem = None if found == ["ok"] else "; ".join(map(str, found))
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem:
        raise InputError(f"{path}: the {what} is damaged ({problem}); {advice}")
