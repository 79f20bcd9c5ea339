"""Validation on unseen questions: ``itas report --validate K``.

A front chosen on a small subset overfits it. This evaluates architectures (the front and the single-call
baselines) on K questions of the same benchmark that the search never saw (a seeded subset that excludes the
search's question ids), through the pool the search used (its ``pool.yaml``, else the default pool) and its
call cache, and records the outcome in ``validation/<K>-<seed>.json`` in the results directory. An
architecture already recorded there (by fingerprint, on the same questions) is not evaluated again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from itas.errors import InputError
from itas.report.source import (
    QUESTION_KEYS,
    QuestionOutcome,
    RunData,
    TrialRecord,
    cache_path_of,
    pool_config_of,
    read_json,
)
from itas.report.summary import ValidationSet


def validation_file(run_dir: Path, k: int, seed: int) -> Path:
    return run_dir / "validation" / f"{k}-{seed}.json"


def validation_questions(run: RunData, bench, k: int, seed: int) -> list:
    """K questions of the benchmark outside the search's subset (seeded); an InputError when none is left."""
    if k < 1:
        raise InputError(f"--validate {k}: give the number of new questions, at least 1")
    questions = bench.subset(k, seed, exclude=set(run.question_ids()))
    if not questions:
        raise InputError(f"--validate {k}: benchmark {run.benchmark} has no question outside the search's "
                         f"{len(run.question_ids())}-question subset")
    return questions


def _from_record(data: dict, path: Path) -> ValidationSet:
    archs = data.get("architectures") or {}
    return ValidationSet(
        k=int(data["k"]), seed=int(data["seed"]), question_ids=tuple(data["question_ids"]),
        scores={fp: tuple(QuestionOutcome.from_row(q) for q in a.get("questions", ())) for fp, a in archs.items()},
        failed={fp: int(a.get("failed", 0)) for fp, a in archs.items()}, path=str(path))


async def validate(run: RunData, trials: Sequence[TrialRecord], k: int, *, seed: int | None = None,
                   data_dir: str | Path | None = None, report: Callable[[str], None] | None = None) -> ValidationSet:
    """Evaluate ``trials``' architectures on K new questions; record and return the scores."""
    from itas.arch.aio import gather_or_cancel
    from itas.arch.executor import run_architecture
    from itas.arch.spec import parse_architecture
    from itas.benchmarks import load_benchmark
    from itas.pool.session import open_pool
    from itas.search.store import atomic_write

    report = report or (lambda _: None)
    if run.run_dir is None:
        raise InputError(f"--validate needs a results directory (its pool, cache and benchmark); {run.label} is a "
                         f"study read from its storage alone")
    seed = int(run.config.get("seed", 0)) if seed is None else seed
    bench = load_benchmark(run.benchmark, data_dir=data_dir or run.config.get("data_dir"))
    questions = validation_questions(run, bench, k, seed)
    ids = [str(q.id) for q in questions]
    path = validation_file(run.run_dir, k, seed)
    record = read_json(path) or {}
    if record.get("question_ids") != ids:  # another benchmark version or subset: start afresh
        record = {}
    archs = dict(record.get("architectures") or {})
    todo: dict[str, object] = {}
    for t in trials:
        if t.architecture is None:
            continue
        if t.fingerprint in archs:
            archs[t.fingerprint]["trials"] = sorted(set(archs[t.fingerprint].get("trials", [])) | {t.number})
            continue
        if t.fingerprint not in todo:
            todo[t.fingerprint] = parse_architecture(t.architecture, f"{run.label} trial {t.number}",
                                                     default_name=f"trial-{t.number}")
    if todo:
        pool_config = pool_config_of(run.run_dir)
        models = sorted({m for a in todo.values() for m in a.models})
        for arch in todo.values():
            arch.check_models(pool_config)
        from itas.ttt.lora import lora_for_architectures

        lora = lora_for_architectures(pool_config, todo.values())
        report(f"validating {len(todo)} architecture(s) on {len(questions)} new question(s) of {run.benchmark}")
        async with open_pool(pool_config.only(models), cache=cache_path_of(run), report=report,
                             timeout=float(run.config.get("timeout") or 600.0), lora=lora) as pool:
            results = await gather_or_cancel(run_architecture(a, bench, questions, pool) for a in todo.values())
        for fp, result in zip(todo, results, strict=True):
            m = result.metrics()
            numbers = sorted(t.number for t in trials if t.fingerprint == fp)
            archs[fp] = {
                "trials": numbers, "description": next(t.description for t in trials if t.fingerprint == fp),
                "metrics": {key: getattr(m, key) for key in ("accuracy", "latency_p50", "latency_p95",
                                                             "cost_per_query", "calls_per_query",
                                                             "tokens_per_query", "total_calls", "cached_calls",
                                                             "n_failed")},
                "failed": m.n_failed,
                "questions": [[q.id, q.score, q.n_calls, q.prompt_tokens, q.completion_tokens, round(q.latency, 4),
                               q.cost] for q in result.questions],
            }
            report(f"  trial {numbers[0]} ({archs[fp]['description']}): validation accuracy {m.accuracy:.3f}"
                   + (f" ({m.n_failed} question(s) failed)" if m.n_failed else ""))
    record = {"k": k, "seed": seed, "benchmark": run.benchmark, "question_ids": ids,
              "search_question_ids": run.question_ids(), "columns": list(QUESTION_KEYS), "architectures": archs}
    atomic_write(path, json.dumps(record, indent=1))
    return _from_record(record, path)
