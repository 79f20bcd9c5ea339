"""Shared by the reliability tests: pool and space files, the CLI as a subprocess, results-directory checks."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# two generator models, an optional fuser and vote: trials of one to three layers, one to eight calls per query
SPACE = {"name": "reliability", "max_tokens": 32, "stages": [
    {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}},
    {"fuse": {"layers": [0, 1], "model": ["smollm2", "gemma3"]}},
    {"vote": {"optional": True}}]}


def write_yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pool_file(path: Path, urls: dict[str, str], served: dict[str, str] | None = None) -> Path:
    """A pool of unmanaged endpoints: model name -> base URL (served ids fake-a, fake-b unless given)."""
    served = served or {"smollm2": "fake-a", "gemma3": "fake-b"}
    return write_yaml(path, {"models": {name: {"model": served[name], "endpoints": [url]}
                                        for name, url in urls.items()}})


def seed_calibration(state_dir: Path, entries: dict[str, dict]) -> None:
    """Latency models for (url|served model) keys, so that no calibration request is sent (or faulted)."""
    path = state_dir / "calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(path.read_text()) if path.exists() else {}
    known.update(entries)
    path.write_text(json.dumps(known, indent=2))


FLAT_LATENCY = {"ttft_base": 0.05, "ttft_per_prompt_token": 0.0001, "time_per_output_token": 0.002}


def itas_env(state_dir: Path, **extra: str) -> dict:
    return {**os.environ, "ITAS_STATE_DIR": str(state_dir), "COLUMNS": "200", "PYTHONPATH": str(REPO), **extra}


def itas(*args: str, env: dict, timeout: float = 300, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "itas", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def study_trials(run: Path) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = json.loads((run / "config.json").read_text())
    try:
        study = optuna.load_study(study_name=cfg["study_name"], storage=f"sqlite:///{run / 'study.db'}")
    except KeyError:  # killed after study.db was created and before the study was written into it
        return []
    return study.get_trials(deepcopy=False)


def cache_counts(path: Path) -> Counter:
    """Stored samples per request key of a call cache (empty when it does not exist yet)."""
    if not path.exists():
        return Counter()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return Counter(dict(db.execute("SELECT key, COUNT(*) FROM calls GROUP BY key").fetchall()))
    except sqlite3.OperationalError:  # not created yet
        return Counter()


def dir_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def request_key_of(body: dict) -> str:
    """The call-cache key of a logged request body."""
    from itas.pool.cache import request_key
    from itas.pool.types import SamplingParams

    params = SamplingParams(temperature=body["temperature"], max_tokens=body["max_tokens"],
                            top_p=body.get("top_p", 1.0), stop=tuple(body.get("stop") or ()))
    return request_key(body["model"], body["messages"], params)


def is_calibration(body: dict) -> bool:
    return "apple" in body["messages"][0]["content"]


def check_table_matches_study(run: Path) -> list:
    """trials.csv has one row per study trial, with the same status; returns the study's trials."""
    trials = study_trials(run)
    table = rows(run)
    assert [int(r["trial"]) for r in table] == [t.number for t in sorted(trials, key=lambda t: t.number)]
    for r, t in zip(table, sorted(trials, key=lambda t: t.number), strict=True):
        if t.state.name == "FAIL":
            # left running by a killed search: "interrupted" (evaluated again); any other failure: "failed"
            want = "interrupted" if r["reason"].startswith("interrupted") else "failed"
            assert r["status"] == want and r["reason"], r
        elif t.state.name == "COMPLETE":
            assert r["status"] == t.user_attrs.get("itas_status"), r
    return trials
