"""Evaluate one architecture on a benchmark subset, end to end: what ``itas run`` calls.

Loads the architecture (a file, or a shipped example by name; Archon ``.json`` with a model map), checks its
models against the pool before any server starts, loads the benchmark and takes the seeded subset, opens the
pool (starting or adopting its managed servers, stopping them afterwards), runs, and writes the outputs.

``evaluate_trial`` (``itas run --from results/<run> --trial N``) re-runs a search trial's architecture on the
search's own subset, through the search's pool and call cache: every call is answered from the cache, so it
reproduces the reported accuracy exactly, with no new call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.arch.context import CallRecord
from itas.arch.estimate import Estimate, context_lengths_of, estimate, question_prompt_tokens
from itas.arch.executor import run_architecture
from itas.arch.result import QuestionRecord, RunResult, write_run
from itas.arch.spec import Architecture, load_architecture
from itas.errors import InputError


@dataclass(frozen=True)
class RunRequest:
    arch: str
    benchmark: str
    limit: int | None = None
    pool: Path | None = None
    model_map: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    out: Path | None = None
    cache: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class RunOutcome:
    arch: Architecture
    result: RunResult
    estimate: Estimate
    out_dir: Path
    reported: dict | None = None  # with --from: the trial as the search recorded it (trial, metrics)


@dataclass(frozen=True)
class TrialRunRequest:
    """``itas run --from RUN_DIR --trial N``."""

    run_dir: Path
    trial: int
    pool: Path | None = None  # default: the search's pool (its pool.yaml, else the default pool)
    data_dir: Path | None = None  # default: the search's
    out: Path | None = None


def parse_model_map(items: Sequence[str]) -> dict[str, str]:
    """``["archon-name=pool-name", ...]`` -> a dict; a malformed item is an InputError."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InputError(f"--model-map '{item}': expected NAME=POOL_MODEL, e.g. "
                             f"'Qwen/Qwen2-72B-Instruct=smollm2'")
        out[name.strip()] = target.strip()
    return out


def default_out_dir(root: Path = Path("results")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"run-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"run-{stamp}-{n}"
    return path


async def evaluate(request: RunRequest, *, report: Callable[[str], None] | None = None,
                   on_call: Callable[[CallRecord], None] | None = None,
                   on_question: Callable[[QuestionRecord], None] | None = None,
                   on_start: Callable[[Architecture, Any, list, Estimate], None] | None = None) -> RunOutcome:
    from itas.benchmarks import load_benchmark
    from itas.pool.config import load_pool
    from itas.pool.session import open_pool
    from itas.ttt.lora import lora_for_architectures

    report = report or (lambda _: None)
    arch = load_architecture(request.arch, model_map=request.model_map, report=report)
    pool_config = load_pool(request.pool)
    arch.check_models(pool_config)  # before any server starts
    lora = lora_for_architectures(pool_config, [arch])  # the models whose servers load ttt adapters
    bench = load_benchmark(request.benchmark, data_dir=request.data_dir)
    questions = bench.subset(request.limit, request.seed) if request.limit else bench.questions()
    if not questions:
        raise InputError(f"benchmark {bench.name} has no questions to run")
    from itas.pool.session import check_reachable

    check_reachable(pool_config.only(arch.models))
    est = estimate(arch, kind=bench.kind, prompt_tokens=question_prompt_tokens(bench, questions),
                   context_lengths=context_lengths_of(pool_config))
    if on_start is not None:
        on_start(arch, bench, questions, est)
    out_dir = request.out or default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = request.cache or out_dir / "calls.sqlite"
    async with open_pool(pool_config.only(arch.models), cache=cache, report=report, lora=lora) as pool:
        result = await run_architecture(arch, bench, questions, pool, on_call=on_call, on_question=on_question)
    run_info = {"benchmark": bench.name, "kind": bench.kind, "limit": request.limit, "seed": request.seed,
                "question_ids": [str(q.id) for q in questions], "pool": pool_config.source,
                "cache": str(cache), "architecture_source": arch.source, "model_map": dict(request.model_map)}
    write_run(out_dir, result, arch, extra={"estimate": est.to_dict(), "run": run_info})
    return RunOutcome(arch=arch, result=result, estimate=est, out_dir=out_dir)


async def evaluate_trial(request: TrialRunRequest, *, report: Callable[[str], None] | None = None,
                         on_call: Callable[[CallRecord], None] | None = None,
                         on_question: Callable[[QuestionRecord], None] | None = None,
                         on_start: Callable[[Architecture, Any, list, Estimate], None] | None = None) -> RunOutcome:
    """Re-run trial N of a search on the search's subset, with its pool and call cache."""
    from itas.arch.spec import parse_architecture
    from itas.benchmarks import load_benchmark
    from itas.pool.config import load_pool
    from itas.pool.session import open_pool
    from itas.report.source import cache_path_of, load_run, pool_config_of
    from itas.ttt.lora import lora_for_architectures

    report = report or (lambda _: None)
    run = load_run(request.run_dir)
    asked = run.trial(request.trial)
    trial = run.resolve(asked)
    if not trial.evaluated:
        numbers = ", ".join(str(t.number) for t in run.evaluated())
        why = f" ({trial.reason})" if trial.reason else ""
        raise InputError(f"{request.run_dir}: trial {request.trial} is {trial.status}{why}, so it has no accuracy "
                         f"to reproduce; evaluated trials: {numbers}")
    if trial.number != asked.number:
        report(f"trial {asked.number} duplicates trial {trial.number}: re-running that one")
    if trial.architecture is None:
        raise InputError(f"{request.run_dir}: trial {trial.number} has no recorded architecture")
    arch = parse_architecture(trial.architecture, str(Path(request.run_dir) / "trials" / str(trial.number) /
                                                      "architecture.yaml"), default_name=f"trial-{trial.number}")
    if trial.fingerprint and arch.fingerprint() != trial.fingerprint:
        report(f"trial {trial.number}: the architecture parses differently now (fingerprint {arch.fingerprint()} "
               f"instead of {trial.fingerprint}); cached calls may not all match")
    pool_config = load_pool(request.pool) if request.pool else pool_config_of(Path(request.run_dir))
    arch.check_models(pool_config)  # before any server starts
    lora = lora_for_architectures(pool_config, [arch])
    bench = load_benchmark(run.benchmark, data_dir=request.data_dir or run.config.get("data_dir"))
    ids = run.question_ids()
    if not ids:
        raise InputError(f"{request.run_dir}: the search recorded no question ids")
    questions = bench.by_ids(ids)
    cache = cache_path_of(run)
    if not cache.exists():
        raise InputError(f"{cache}: the search's call cache is missing, so the trial cannot be re-run from it")
    est = estimate(arch, kind=bench.kind, prompt_tokens=question_prompt_tokens(bench, questions),
                   context_lengths=context_lengths_of(pool_config))
    if on_start is not None:
        on_start(arch, bench, questions, est)
    out_dir = request.out or default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    async with open_pool(pool_config.only(arch.models), cache=cache, report=report,
                         timeout=float(run.config.get("timeout") or 600.0), lora=lora) as pool:
        result = await run_architecture(arch, bench, questions, pool, on_call=on_call, on_question=on_question)
    m = result.metrics()
    reported = {"trial": trial.number, "asked": asked.number, "metrics": dict(trial.metrics),
                "scores": trial.scores()}
    run_info = {"benchmark": bench.name, "kind": bench.kind, "question_ids": [str(q.id) for q in questions],
                "pool": pool_config.source, "cache": str(cache), "architecture_source": arch.source,
                "from": str(request.run_dir), "trial": trial.number}
    extra = {"estimate": est.to_dict(), "run": run_info,
             "reproduction": {"reported_accuracy": trial.accuracy, "accuracy": m.accuracy,
                              "same_accuracy": m.accuracy == trial.accuracy,
                              "new_calls": m.total_calls - m.cached_calls, "cached_calls": m.cached_calls}}
    write_run(out_dir, result, arch, extra=extra)
    return RunOutcome(arch=arch, result=result, estimate=est, out_dir=out_dir, reported=reported)
