"""A recorded table of a whole search space: every architecture's per-question outcomes, measured once.

``make bench`` replays searches against it without any model (``itas.search.replay``), so that samplers and
staged evaluation can be compared over many seeds on real outcomes. The table is a JSON-lines file:

- line 1, the header: ``{"kind": "header", "space": <the space YAML>, "benchmark": ..., "question_ids": [...],
  "max_tokens": ..., "models": [...], "cost_unit": ...}``;
- one line per architecture: ``{"kind": "arch", "fingerprint": ..., "params": {<Optuna parameters>},
  "description": ..., "status": "evaluated" | "failed", "questions": [[score, calls, prompt_tokens,
  completion_tokens, latency, cost], ...]}`` in the order of ``question_ids``.

Recording appends one line per architecture as it finishes (flushed and synced), so a killed recording resumes
where it stopped; a damaged last line (a kill mid-write) is dropped on resume.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.errors import DataError
from itas.search.space import SearchSpace, parse_space

COLUMNS = ("score", "calls", "prompt_tokens", "completion_tokens", "latency", "cost")


class _GridTrial:
    """Answers ``suggest_categorical`` from a path of choice indices, recording how many values each had."""

    def __init__(self, path: list[int]):
        self.path = path
        self.sizes: list[int] = []
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: list) -> Any:
        i = len(self.sizes)
        pick = self.path[i] if i < len(self.path) else 0
        self.sizes.append(len(choices))
        self.params[name] = choices[pick]
        return choices[pick]


def enumerate_space(space: SearchSpace) -> Iterator[tuple[dict, dict]]:
    """Every (params, architecture dict) the space can build, conditional choices included, in a fixed order.

    Different parameters can build the same architecture; every combination is yielded (callers dedupe by
    fingerprint)."""
    path: list[int] = []
    while True:
        trial = _GridTrial(path)
        arch = space.suggest(trial)
        yield dict(trial.params), arch
        path = path + [0] * (len(trial.sizes) - len(path))
        j = len(trial.sizes) - 1
        while j >= 0 and path[j] + 1 >= trial.sizes[j]:
            j -= 1
        if j < 0:
            return
        path = path[:j] + [path[j] + 1]


@dataclass
class Table:
    header: dict
    rows: dict[str, dict] = field(default_factory=dict)  # fingerprint -> row

    @property
    def space(self) -> SearchSpace:
        import yaml

        return parse_space(yaml.safe_load(self.header["space"]), "table space", text=self.header["space"])

    @property
    def question_ids(self) -> list[str]:
        return list(self.header["question_ids"])

    def evaluated(self) -> dict[str, dict]:
        return {fp: r for fp, r in self.rows.items() if r["status"] == "evaluated"}

    def metrics(self, fp: str, n: int | None = None) -> tuple[float, float, float]:
        """(accuracy, latency p50, cost per query) of an architecture on the first ``n`` questions (all by
        default): the three objectives of a search."""
        qs = self.rows[fp]["questions"][:n]
        acc = sum(q[0] for q in qs) / len(qs)
        lat = sorted(q[4] for q in qs)
        mid = len(lat) // 2
        p50 = lat[mid] if len(lat) % 2 else (lat[mid - 1] + lat[mid]) / 2
        return acc, p50, sum(q[5] for q in qs) / len(qs)


def load_table(path: str | Path) -> Table:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such table; record it with `make bench-table`") from None
    if not lines:
        raise DataError(f"{path}: empty table (no header line)")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise DataError(f"{path}: line 1 is not a JSON header") from None
    if header.get("kind") != "header":
        raise DataError(f"{path}: line 1 is not a table header")
    table = Table(header=header)
    for i, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines):  # a recording killed mid-write: the last line is redone on resume
                break
            raise DataError(f"{path}: line {i} is not valid JSON") from None
        table.rows[row["fingerprint"]] = row
    return table


async def record_table(space: SearchSpace, bench: Any, questions: list, pool: Any, path: Path, *,
                       header_extra: dict | None = None, concurrency: int = 24,
                       report: Callable[[str], None] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Table:
    """Evaluate every architecture of ``space`` on ``questions`` and append each to the table at ``path``;
    architectures already in the table are skipped (resume)."""
    from itas.arch.executor import run_architecture
    from itas.arch.spec import parse_architecture

    report = report or (lambda _: None)
    header = {"kind": "header", "space": space.text, "benchmark": getattr(bench, "name", "?"),
              "question_ids": [str(q.id) for q in questions], "max_tokens": space.max_tokens,
              "models": list(pool.config.names), "cost_unit": getattr(pool.config, "cost_unit", "tokens"),
              "columns": list(COLUMNS), **(header_extra or {})}
    if path.exists() and path.stat().st_size:
        table = load_table(path)
        for key in ("question_ids", "space", "max_tokens"):
            if table.header.get(key) != header[key]:
                raise DataError(f"{path}: recorded with another {key.replace('_', ' ')}; move it away to record "
                                f"a new table")
        _rewrite_without_damaged_tail(path, table)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n")
        table = Table(header=header)
    todo: dict[str, tuple[dict, Any]] = {}
    for params, arch_dict in enumerate_space(space):
        arch = parse_architecture(arch_dict, space.source)
        fp = arch.fingerprint()
        if fp not in table.rows and fp not in todo:
            todo[fp] = (params, arch)
    total = len(todo) + len(table.rows)
    report(f"{total} architectures in the space; {len(table.rows)} recorded, {len(todo)} to go")
    lock = asyncio.Lock()
    sem = asyncio.Semaphore(concurrency)
    done = len(table.rows)

    async def one(fp: str, params: dict, arch: Any) -> None:
        nonlocal done
        from itas.search.runner import describe

        async with sem:
            result = await run_architecture(arch, bench, questions, pool)
        failed = [q for q in result.questions if q.failed]
        row = {"kind": "arch", "fingerprint": fp, "params": params, "description": describe(arch),
               "status": "failed" if failed else "evaluated",
               "questions": [[q.score, q.n_calls, q.prompt_tokens, q.completion_tokens, round(q.latency, 4),
                              q.cost] for q in result.questions]}
        if failed:
            row["reason"] = failed[0].error
        async with lock:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            table.rows[fp] = row
            done += 1
            if progress is not None:
                progress(done, total)

    await asyncio.gather(*(one(fp, p, a) for fp, (p, a) in todo.items()))
    return table


def _rewrite_without_damaged_tail(path: Path, table: Table) -> None:
    text = path.read_text()
    if text and not text.endswith("\n") or len(text.splitlines()) != len(table.rows) + 1:
        from itas.fsutil import atomic_write

        lines = [json.dumps(table.header)] + [json.dumps(r) for r in table.rows.values()]
        atomic_write(path, "\n".join(lines) + "\n")
