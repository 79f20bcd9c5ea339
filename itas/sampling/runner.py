"""``itas sample`` as a library call: K samples per question through the call cache, each scored by the
benchmark (and rewarded, with ``--reward``), stored in a results directory that resumes; then the tables and
plots (``report.render``).

Resuming: a directory that already holds a sampling run (``--resume DIR``, or ``--out DIR`` again) keeps its
benchmark, model, questions and sampling parameters (giving a different one is an error); ``--k`` may grow, and
only the new samples are asked for (the cache in the directory holds the others); stored scores and rewards
are reused for samples whose text is unchanged; a new ``--reward`` rewards every sample again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from itas.arch.aio import gather_or_cancel
from itas.errors import CallError, InputError
from itas.sampling import store
from itas.sampling.reward import RewardSpec, parse_reward, reward_of
from itas.sampling.store import SampleConfig, SampleRecord


def _generator_default(name: str):
    from itas.components.generator import Generator

    return next(f.default for f in dataclasses.fields(Generator) if f.name == name)


@dataclass(frozen=True)
class SampleRequest:
    """What the command line asked for; None = not given (the run's recorded value, or the default)."""

    benchmark: str | None = None
    model: str | None = None
    k: int | None = None
    subset: int | None = None
    seed: int | None = None
    out: Path | None = None
    resume: Path | None = None
    reward: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    pool: Path | None = None
    data_dir: Path | None = None


@dataclass(frozen=True)
class SampleOutcome:
    out_dir: Path
    config: SampleConfig
    tables: dict | None  # report.render's result; None when no question has its K samples
    samples_sent: int  # new samples of the sampled model (the rest came from the cache)
    calls_sent: int  # every call the servers answered (samples and judge calls)
    cache_hits: int
    failed: dict[str, str] = field(default_factory=dict)  # question id -> why


def default_out_dir(root: Path = Path("results")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"sample-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"sample-{stamp}-{n}"
    return path


def locate(request: SampleRequest) -> tuple[Path, SampleConfig | None]:
    """The results directory and the run it already holds (None for a new run)."""
    if request.resume is not None and request.out is not None and Path(request.resume) != Path(request.out):
        raise InputError("give --out DIR (a new run, or one to extend) or --resume DIR, not both")
    if request.resume is not None:
        directory = Path(request.resume)
        existing = store.load_config(directory)
        if existing is None:
            raise InputError(f"--resume {directory}: not a sampling run (no {store.CONFIG} there)")
        return directory, existing
    directory = Path(request.out) if request.out is not None else default_out_dir()
    return directory, store.load_config(directory)


def _same(option: str, given: Any, recorded: Any, directory: Path) -> None:
    if given is not None and given != recorded:
        raise InputError(f"{option} {given}: the run in {directory} was made with {recorded}; keep it, or give "
                         f"another --out for a new run")


def resolve_config(request: SampleRequest, existing: SampleConfig | None, directory: Path,
                   report: Callable[[str], None] = lambda _: None) -> SampleConfig:
    """The run's config from the request and the run already in the directory (pure; question ids of a new run
    are left empty, to be filled once the benchmark is loaded)."""
    if request.k is not None and request.k < 1:
        raise InputError(f"--k must be at least 1, got {request.k}")
    if request.subset is not None and request.subset < 1:
        raise InputError(f"--subset must be at least 1, got {request.subset}")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {request.max_tokens}")
    if request.temperature is not None and request.temperature < 0:
        raise InputError(f"--temperature must be at least 0, got {request.temperature}")
    reward = parse_reward(request.reward) if request.reward else None
    pool = str(Path(request.pool).expanduser().resolve()) if request.pool is not None else None
    data_dir = str(Path(request.data_dir).expanduser().resolve()) if request.data_dir is not None else None
    if existing is None:
        missing = [o for o, v in (("--benchmark", request.benchmark), ("--model", request.model),
                                  ("--k", request.k)) if v is None]
        if missing:
            raise InputError(f"a new sampling run needs {', '.join(missing)} (or --resume DIR to continue one)")
        temperature = request.temperature if request.temperature is not None else _generator_default("temperature")
        max_tokens = request.max_tokens if request.max_tokens is not None else _generator_default("max_tokens")
        return SampleConfig(benchmark=str(request.benchmark), model=str(request.model), k=int(request.k),
                            question_ids=(), temperature=float(temperature), max_tokens=int(max_tokens),
                            subset=request.subset, seed=request.seed if request.seed is not None else 0,
                            reward=reward.to_dict() if reward else None, pool=pool, data_dir=data_dir,
                            created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    _same("--benchmark", request.benchmark, existing.benchmark, directory)
    _same("--model", request.model, existing.model, directory)
    _same("--temperature", None if request.temperature is None else float(request.temperature),
          existing.temperature, directory)
    _same("--max-tokens", request.max_tokens, existing.max_tokens, directory)
    _same("--subset", request.subset, existing.subset, directory)
    _same("--seed", request.seed, existing.seed, directory)
    k = existing.k
    if request.k is not None and request.k > existing.k:
        report(f"extending the run from k={existing.k} to k={request.k}: only the new samples are asked for")
        k = request.k
    elif request.k is not None and request.k < existing.k:
        report(f"the run already has k={existing.k} samples per question; keeping them all")
    new_reward = existing.reward
    if reward is not None and reward.name != existing.reward_spec:
        if existing.reward_spec:
            report(f"reward changed from {existing.reward_spec} to {reward.name}: every sample is rewarded again")
        new_reward = reward.to_dict()
    return replace(existing, k=k, reward=new_reward, pool=pool or existing.pool,
                   data_dir=data_dir or existing.data_dir)


async def sample(request: SampleRequest, *, report: Callable[[str], None] | None = None,
                 on_start: Callable[[SampleConfig, Any, list, Path], None] | None = None,
                 on_question: Callable[[str, Any], None] | None = None, plots: bool = True) -> SampleOutcome:
    """Take the samples, score and reward them, store everything, and render the tables and plots.

    ``on_start(config, bench, questions, out_dir)`` once the questions are known; ``on_question(id, pool_stats)``
    after each question. A question whose calls fail for good is recorded in ``failed`` (the others go on; a
    later resume retries it). Bad input raises InputError/ConfigError before any server starts."""
    from itas.benchmarks import load_benchmark
    from itas.pool.config import load_pool
    from itas.pool.session import open_pool
    from itas.pool.types import SamplingParams

    report = report or (lambda _: None)
    directory, existing = locate(request)
    config = resolve_config(request, existing, directory, report)
    reward = _reward_spec(config)
    bench = load_benchmark(config.benchmark, data_dir=config.data_dir)
    if existing is not None:
        questions = bench.by_ids(config.question_ids)
    else:
        questions = bench.subset(config.subset, config.seed) if config.subset else bench.questions()
        config = replace(config, question_ids=tuple(str(q.id) for q in questions))
    if not questions:
        raise InputError(f"benchmark {config.benchmark} has no questions to sample")
    pool_config = load_pool(config.pool)
    models = {config.model}
    pool_config[config.model]  # unknown model -> ConfigError, before any server starts
    if reward is not None:
        pool_config[reward.model]
        models.add(reward.model)
    directory.mkdir(parents=True, exist_ok=True)
    store.save_config(directory, config)  # a run killed from here on resumes
    if on_start is not None:
        on_start(config, bench, questions, directory)

    records = store.load_samples(directory)
    order = list(config.question_ids)
    failed: dict[str, str] = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    counts = {"samples_sent": 0}
    last_save = [time.monotonic()]
    stats = None
    params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens)
    try:
        async with open_pool(pool_config.only(models), cache=directory / store.CACHE, report=report) as pool:
            stats = pool.stats

            async def one(q) -> None:
                try:
                    sent = await sample_question(pool, bench, q, config, reward, params, records)
                    counts["samples_sent"] += sent  # not `+= await ...`: that reads the count before awaiting
                except CallError as exc:
                    failed[str(q.id)] = " ".join(str(exc).split())
                if on_question is not None:
                    on_question(str(q.id), pool.stats)
                if time.monotonic() - last_save[0] > 15:
                    store.save_samples(directory, records, order)
                    last_save[0] = time.monotonic()

            await gather_or_cancel(one(q) for q in questions)
    finally:
        store.save_samples(directory, records, order)
        session = {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "k": config.k,
                   "reward": config.reward_spec, "samples_sent": counts["samples_sent"],
                   "calls_sent": stats.calls_sent if stats else 0, "cache_hits": stats.cache_hits if stats else 0,
                   "failed": len(failed)}
        config = config.with_session(session)
        store.save_config(directory, config)
    if failed:
        report(f"{len(failed)} question(s) failed (e.g. {next(iter(failed.values()))}); "
               f"`itas sample --resume {directory}` retries them")
    from itas.sampling.report import question_samples, render

    complete, _ = question_samples(config, records)
    tables = render(directory, plots=plots) if complete else None
    return SampleOutcome(out_dir=directory, config=config, tables=tables, samples_sent=counts["samples_sent"],
                         calls_sent=stats.calls_sent if stats else 0, cache_hits=stats.cache_hits if stats else 0,
                         failed=failed)


def _reward_spec(config: SampleConfig) -> RewardSpec | None:
    if not config.reward:
        return None
    spec = parse_reward(config.reward["spec"])
    if spec.kind == "judge":  # the recorded judge parameters, not today's defaults
        spec = replace(spec, temperature=float(config.reward.get("temperature", spec.temperature)),
                       max_tokens=int(config.reward.get("max_tokens", spec.max_tokens)))
    return spec


async def sample_question(pool, bench, question, config: SampleConfig, reward: RewardSpec | None, params,
                          records: dict[tuple[str, int], SampleRecord]) -> int:
    """The first K samples of one question, scored and rewarded into ``records`` (stored ones with the same
    text are reused). Returns how many samples the server produced (not from the cache)."""
    qid = str(question.id)
    messages = bench.messages(question)
    completions = await pool.generate(config.model, messages, params, k=config.k, start=0)

    async def finish(c) -> None:
        old = records.get((qid, c.sample_index))
        if old is not None and old.text == c.text:
            rec = old
        else:
            score = await asyncio.to_thread(bench.score, question, c.text)
            rec = SampleRecord(question=qid, index=c.sample_index, text=c.text, extracted=bench.extract(c.text),
                               score=float(score.value), status=str(score.status),
                               prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                               finish_reason=c.finish_reason, detail=str(score.detail or "")[:500])
            records[(qid, c.sample_index)] = rec
        if reward is not None and rec.reward_spec != reward.name:
            value = await reward_of(pool, reward, messages, c.text)
            records[(qid, c.sample_index)] = replace(rec, reward=value, reward_spec=reward.name)

    await gather_or_cancel(finish(c) for c in completions)
    return sum(not c.cached for c in completions)
