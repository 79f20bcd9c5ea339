"""``run_search``: Optuna over a search space, within a compute budget, resumable from its results directory.

The budget (``--budget N``) is N completed trials, the single-call baselines of each pool model (the first
trials of every search) included. An architecture over a constraint is recorded as infeasible (a complete trial
with a positive constraint violation, accuracy 0 and its estimated latency and cost, so that TPE learns to
avoid it and it is never on the front) without any call, and does not count. An architecture already evaluated
is answered from its earlier trial (same values, ``duplicate_of``) and does not count; after 3 such duplicates in
a row the values come from random search until a new architecture is evaluated (``Proposer``). The search stops with
exit 1 after 5 failed trials in a row, with exit 2 after 20·N infeasible samples (the space is too
constrained), and cleanly once ``--max-spend`` is reached.

With ``--staged`` (kept in the run's configuration, so a resume keeps it) a sampled architecture is scored rung
by rung on the subset and stopped as soon as it cannot reach the current front (``itas.search.staged``): a
stopped trial is PRUNED, counts towards the budget, and is listed in trials.csv with status ``stopped`` and its
reason. Baselines and enqueued architectures are always scored on the whole subset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas import __version__
from itas.errors import InputError, ItasError
from itas.search import store
from itas.search.pareto import DIRECTIONS
from itas.search.space import SearchSpace, load_space

FAILED_IN_A_ROW = 5
INFEASIBLE_FACTOR = 20
TABLES_EVERY = 2.0  # seconds between two writes of trials.csv and pareto.csv during a search


class SearchFailed(ItasError):
    exit_code = 1


class SpaceTooConstrained(InputError):
    pass


@dataclass
class SearchRequest:
    benchmark: str | None  # None: a resume's own
    budget: int | None  # None: a resume's own
    out: Path | None = None
    resume: Path | None = None
    space: str | None = None
    pool: str | None = None
    subset: int = 20
    seed: int = 0
    sampler: str = "tpe"
    jobs: int | None = None  # None: enough trials at once to fill the pool's servers (auto_jobs)
    max_spend: float | None = None
    dry_run: bool = False
    enqueue: list[str] = field(default_factory=list)
    storage: str | None = None
    cache: str | None = None
    data_dir: str | None = None
    timeout: float = 600.0
    staged: bool = False  # staged evaluation (itas.search.staged); on resume, True turns it on, False keeps it


@dataclass
class Progress:
    """Live counters for the display (read by the CLI's progress renderer)."""

    budget: int = 0
    counted: int = 0
    running: int = 0
    infeasible: int = 0
    duplicates: int = 0
    failed: int = 0
    stopped: int = 0  # staged evaluation: sampled trials stopped before the last rung
    front: list = field(default_factory=list)  # (trial, accuracy, latency, cost)
    pool_stats: Any = None
    spent: float = 0.0
    cost_unit: str = "tokens"
    events: list = field(default_factory=list)


@dataclass
class SearchOutcome:
    run_dir: Path
    counted: int
    budget: int
    stopped: str  # "budget" | "max-spend" | "exhausted" | "dry-run"
    front: list  # FrozenTrials
    projection: dict


# ---- configuration ------------------------------------------------------------------------------------------
def resolve(request: SearchRequest, report: Callable[[str], None]) -> tuple[Path, dict, bool]:
    """The run directory and its resolved configuration; ``True`` when resuming an existing search."""
    if request.resume is not None:
        run_dir = Path(request.resume)
        config = store.read_config(run_dir)
        if config is None:
            raise InputError(f"{run_dir}: not a search results directory (no {store.CONFIG}); "
                             f"give a directory written by itas search")
        if config.get("kind") != "search":
            raise InputError(f"{run_dir}: holds a '{config.get('kind')}' run, not a search")
        if request.benchmark and request.benchmark != config["benchmark"]:
            raise InputError(f"--benchmark {request.benchmark}: {run_dir} is a search on {config['benchmark']}; "
                             f"leave --benchmark out to resume it, or give a new --out for a search on "
                             f"{request.benchmark}")
        if request.budget and request.budget != config["budget"]:
            report(f"budget changed from {config['budget']} to {request.budget}")
            config["budget"] = request.budget
        _keep_staged(config, request, report)
        _check_storage(config, request)
        return run_dir, config, True
    run_dir = Path(request.out) if request.out else _default_dir(request.benchmark)
    if request.space is None:
        from itas.search.space import default_space_for

        request.space = default_space_for(request.benchmark)
    space = load_space(request.space)
    if request.pool:
        from itas.pool.config import load_pool

        load_pool(request.pool)  # a missing or malformed --pool is reported as such, not read blindly below
    pool_text = Path(request.pool).read_text() if request.pool else None
    fresh = {
        "kind": "search", "itas_version": __version__, "benchmark": request.benchmark,
        "data_dir": request.data_dir, "budget": request.budget, "subset": request.subset, "seed": request.seed,
        "sampler": request.sampler, "jobs": request.jobs, "max_spend": request.max_spend,
        "space_name": space.name, "space_sha": _sha(space.text), "pool_sha": _sha(pool_text or "default"),
        "timeout": request.timeout, "storage": _redacted(request.storage), "cache": request.cache,
        "study_name": None, "question_ids": None, "enqueue": [], "staged": bool(request.staged),
    }
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir} is a file, not a directory; give a new or empty directory")
    existing = store.read_config(run_dir) if run_dir.exists() else None
    if existing is not None:
        same = all(existing.get(k) == fresh[k] for k in ("benchmark", "subset", "seed", "space_sha", "pool_sha",
                                                          "sampler"))
        if existing.get("kind") != "search" or not same:
            diff = [k for k in ("kind", "benchmark", "subset", "seed", "space_sha", "pool_sha", "sampler")
                    if existing.get(k) != fresh.get(k)]
            raise InputError(f"{run_dir} holds another search (different {', '.join(diff)}); give a new --out, "
                             f"or --resume {run_dir} to continue that one")
        if request.budget != existing["budget"]:
            existing["budget"] = request.budget
        _keep_staged(existing, request, report)
        _check_storage(existing, request)
        return run_dir, existing, True
    # what a search killed before it wrote its configuration leaves behind is not in the way of a new start
    started = {"space.yaml", "pool.yaml", "enqueue", ".itas.lock"}
    if run_dir.exists() and any(p.name not in started and not (p.name.startswith(".") and p.name.endswith(".tmp"))
                                for p in run_dir.iterdir()):
        raise InputError(f"{run_dir} exists and is not an itas search directory; give an empty or new --out")
    return run_dir, fresh, False


def _keep_staged(config: dict, request: SearchRequest, report: Callable[[str], None]) -> None:
    """A resumed search keeps its staged evaluation; ``--staged`` on resume turns it on for the trials to come."""
    if request.staged and not config.get("staged"):
        report("staged evaluation turned on for the trials to come")
        config["staged"] = True
    config.setdefault("staged", False)


def _redacted(url: str | None) -> str | None:
    from itas.search.shared import redact

    return redact(url) if url else None


def _check_storage(config: dict, request: SearchRequest) -> None:
    stored = config.get("storage")
    if stored and "***" in stored and not request.storage:
        raise InputError(f"the study's storage URL has a password, which is never written to a file: give it "
                         f"again with --storage ({stored})")
    if request.storage and stored and _redacted(request.storage) != stored:
        raise InputError(f"--storage {_redacted(request.storage)} is not the storage of this search ({stored})")


def _default_dir(benchmark: str) -> Path:
    stem = Path(benchmark).stem if benchmark.endswith(".jsonl") else benchmark
    base = Path("results") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _storage_url(run_dir: Path, config: dict, request: SearchRequest) -> str:
    return request.storage or config.get("storage") or f"sqlite:///{(run_dir / 'study.db').resolve()}"


# ---- the search -----------------------------------------------------------------------------------------------
async def run_search(request: SearchRequest, *, report: Callable[[str], None] | None = None,
                     progress: Progress | None = None) -> SearchOutcome:
    import contextlib

    with contextlib.ExitStack() as stack:
        return await _run_search(request, report, progress, stack)


async def _run_search(request: SearchRequest, report, progress, stack) -> SearchOutcome:
    import optuna

    from itas.arch.estimate import context_lengths_of, estimate, question_prompt_tokens
    from itas.arch.spec import load_architecture, parse_architecture
    from itas.benchmarks import load_benchmark
    from itas.pool.config import load_pool

    report = report or (lambda _: None)
    progress = progress or Progress()
    if request.budget is not None and request.budget < 1:
        raise InputError(f"--budget {request.budget}: must be at least 1")
    notes: list[str] = []  # said once the input is known to be good, so that bad input is one line alone
    run_dir, config, resuming = resolve(request, notes.append)

    # everything that can be checked before a call is checked here, before the run directory is touched
    if resuming:
        space = load_space(run_dir / "space.yaml")
        pool_path = run_dir / "pool.yaml"
        pool_config = load_pool(pool_path if pool_path.exists() else None)
    else:
        space = load_space(request.space)
        pool_config = load_pool(request.pool)
    space.check_models(pool_config.names)
    bench = load_benchmark(config["benchmark"], data_dir=request.data_dir or config.get("data_dir"))
    if config["question_ids"] is None:
        questions = bench.subset(config["subset"], config["seed"])
    else:
        by_id = {q.id: q for q in bench.questions()}
        missing = [i for i in config["question_ids"] if i not in by_id]
        if missing:
            raise InputError(f"{run_dir}: question {missing[0]} of the search's subset is not in benchmark "
                             f"{config['benchmark']} any more")
        questions = [by_id[i] for i in config["question_ids"]]
    baselines = [parse_architecture(space.baseline(m), f"baseline {m}") for m in pool_config.names]
    budget = int(config["budget"])
    if budget < len(baselines):
        raise InputError(f"--budget {budget} is less than the {len(baselines)} single-call baselines that every "
                         f"search evaluates first (one per pool model); give --budget {len(baselines)} or more")
    enqueued = []
    for ref in request.enqueue:
        arch = load_architecture(ref, report=report)
        arch.check_models(pool_config)
        enqueued.append(arch)
    from itas.ttt.lora import lora_for_search

    lora_for_search(pool_config, space, enqueued)  # a pool that cannot serve the ttt adapters: before any write
    make_sampler(config["sampler"], config["seed"], budget)  # a bad --sampler, before anything is written
    if not request.dry_run:
        from itas.pool.session import check_reachable

        store.check_writable(run_dir)
        if resuming and not (config.get("storage") or request.storage):
            store.check_database(run_dir / "study.db", "study (the record of every trial)",
                                 "restore it from a copy, or start a new search with another --out")
        store.check_database(Path(config.get("cache") or run_dir / "calls.sqlite"), "call cache",
                             "move it away to continue with an empty cache (its calls are made again)")
        check_reachable(pool_config)
    if config.get("staged") and (config.get("storage") or request.storage):
        raise InputError("--staged does not work with --storage (several workers) yet: the workers' shared budget "
                         "counts fully evaluated trials only; run the search without one of them")
    for note in notes:
        report(note)
    prompt_tokens = question_prompt_tokens(bench, questions)
    ctx = context_lengths_of(pool_config)

    def est(arch):
        return estimate(arch, kind=bench.kind, prompt_tokens=prompt_tokens, context_lengths=ctx)

    projection = project(space, baselines, budget, len(questions), est, pool_config, request.seed)
    if config.get("jobs") is None:  # --jobs auto, settled once and kept in the configuration for a resume
        config["jobs"] = auto_jobs(pool_config, projection, budget)
        report(f"--jobs auto: {config['jobs']} trials at once (each sends up to about "
               f"{projection['calls_in_flight']:,.0f} calls at once; the servers take {_slots(pool_config):,})")
    report(f"projected for {budget} trials on {len(questions)} questions: about {projection['calls']:,} calls, "
           f"{projection['tokens']:,} tokens, cost {projection['cost']:,.4g} {pool_config.cost_unit} "
           f"(upper bounds; the call cache makes the real numbers smaller)")
    if request.dry_run:
        return SearchOutcome(run_dir=run_dir, counted=0, budget=budget, stopped="dry-run", front=[],
                             projection=projection)

    # ---- the run directory ----
    from itas.search.shared import RunDirLock

    stack.enter_context(RunDirLock(run_dir))
    if not resuming:
        run_dir.mkdir(parents=True, exist_ok=True)
        store.atomic_write(run_dir / "space.yaml", space.text)
        if request.pool:
            store.atomic_write(run_dir / "pool.yaml", Path(request.pool).read_text())
        config["question_ids"] = [q.id for q in questions]
        config["study_name"] = f"itas-{run_dir.name}"
        for i, arch in enumerate(enqueued):
            dest = run_dir / "enqueue" / f"{i:02d}-{arch.name}.yaml"
            store.atomic_write(dest, arch.to_yaml())
            config["enqueue"].append(str(dest.relative_to(run_dir)))
        store.write_config(run_dir, config)
    else:
        for i, arch in enumerate(enqueued):  # more enqueued architectures on resume
            dest = run_dir / "enqueue" / f"{len(config['enqueue']) + i:02d}-{arch.name}.yaml"
            store.atomic_write(dest, arch.to_yaml())
            config["enqueue"].append(str(dest.relative_to(run_dir)))
        store.write_config(run_dir, config)
    enqueued = [load_architecture(run_dir / p) for p in config["enqueue"]]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from itas.search.shared import BudgetGate, make_storage

    shared = bool(config.get("storage"))
    url = _storage_url(run_dir, config, request)
    sampler = make_sampler(config["sampler"], config["seed"], budget, jobs=config["jobs"])
    storage = make_storage(url, shared)
    try:
        study = optuna.create_study(storage=storage, study_name=config["study_name"],
                                    directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True)
    except Exception as exc:  # a corrupt or foreign study.db
        raise InputError(f"{run_dir}: cannot open the study storage ({type(exc).__name__}: {exc})") from None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["accuracy", "latency", "cost"])
    if "itas_config" not in study.user_attrs:  # what `itas worker` needs to join from the database alone
        study.set_user_attr("itas_config", {k: v for k, v in config.items() if k != "enqueue"})
        study.set_user_attr("itas_space", space.text)
        pool_file = run_dir / "pool.yaml"
        study.set_user_attr("itas_pool", pool_file.read_text() if pool_file.exists() else None)
    if shared:
        report(f"study {config['study_name']} in {_redacted(url)}: more workers join with "
               f"itas worker --storage URL --study {config['study_name']}")

    if not shared:
        # trials left running by a killed process: failed, and their architectures evaluated again (sampled
        # ones through their parameters, enqueued for the sampler; baselines and enqueued ones are redone below).
        # With shared storage, other workers' trials are running: Optuna's heartbeat finds the stale ones.
        interrupted = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])
        for t in interrupted:
            study._storage.set_trial_user_attr(t._trial_id, "reason", store.INTERRUPTED)
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            if t.params and t.user_attrs.get("itas_kind") == "sampled":
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        if interrupted:
            report(f"{len(interrupted)} trial(s) left running by an interrupted search: evaluated again")
    else:
        optuna.storages.fail_stale_trials(study)
    store.rebuild(run_dir, study.get_trials(deepcopy=False))

    cache_path = Path(config.get("cache") or run_dir / "calls.sqlite")
    runner = _Runner(study=study, space=space, bench=bench, questions=questions, est=est, run_dir=run_dir,
                     budget=budget, jobs=max(1, int(config["jobs"])), max_spend=config.get("max_spend"),
                     progress=progress, report=report, pool_config=pool_config,
                     staged=bool(config.get("staged")))
    runner.proposer = Proposer(study, int(config["seed"]))
    runner.fixed = [("baseline", a) for a in baselines] + [("enqueued", a) for a in enqueued]
    runner.gate = BudgetGate(url, study, budget) if shared else None
    from itas.pool.session import open_pool

    progress.budget = budget
    progress.cost_unit = pool_config.cost_unit
    runner.refresh_counts()
    if runner.counted() >= budget:
        report(f"the budget of {budget} trials is already met")
        stopped = "budget"
    else:
        lora = lora_for_search(pool_config, space, enqueued)  # models whose servers load ttt adapters
        kept = store.read_latency(run_dir)  # the latency models the search's trials were scored with, if any
        if kept:
            report("latency models of the search's first run kept (" + ", ".join(kept) + ")")
        async with open_pool(pool_config, cache=cache_path, report=report, timeout=config.get("timeout", 600.0),
                             lora=lora, latency=kept) as pool:
            store.write_latency(run_dir, pool.latency)
            runner.pool = pool
            progress.pool_stats = pool.stats
            stopped = await runner.run()
    trials = study.get_trials(deepcopy=False)
    store.rebuild(run_dir, trials)
    return SearchOutcome(run_dir=run_dir, counted=runner.counted(), budget=budget, stopped=stopped,
                         front=store.front_trials(trials), projection=projection)


async def run_worker(storage: str, study_name: str, *, out: Path | None = None, pool: str | None = None,
                     data_dir: str | None = None, jobs: int | None = None,
                     report: Callable[[str], None] | None = None, progress: Progress | None = None) -> SearchOutcome:
    """Join a search started elsewhere: its configuration comes from the study in ``storage``; this worker keeps
    its own local artifacts in ``out``."""
    import os
    import socket

    import optuna

    from itas.search.shared import make_storage, redact

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage, shared=True))
    except KeyError:
        raise InputError(f"no study named '{study_name}' in {redact(storage)}; start the search with itas search "
                         f"--storage first") from None
    attrs = study.user_attrs
    if "itas_config" not in attrs:
        raise InputError(f"study '{study_name}' in {redact(storage)} was not made by itas search")
    config = dict(attrs["itas_config"])
    run_dir = Path(out) if out else Path("results") / f"{study_name}-worker-{socket.gethostname()}-{os.getpid()}"
    if store.read_config(run_dir) is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        store.atomic_write(run_dir / "space.yaml", attrs["itas_space"])
        pool_text = Path(pool).read_text() if pool else attrs.get("itas_pool")
        if pool_text:
            store.atomic_write(run_dir / "pool.yaml", pool_text)
        config["enqueue"] = []
        if jobs:
            config["jobs"] = jobs
        store.write_config(run_dir, config)
    request = SearchRequest(benchmark=config["benchmark"], budget=config["budget"], resume=run_dir, storage=storage,
                            data_dir=data_dir)
    return await run_search(request, report=report, progress=progress)


def tpe_startup(budget: int) -> int:
    """The random trials TPE starts with (after the baselines), scaled to the budget: 4 to 10."""
    return max(4, min(10, budget // 5))


def make_sampler(name: str, seed: int, budget: int, jobs: int = 1):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # multivariate TPE with grouped conditional parameters: Optuna's recommendation for small, categorical,
        # conditional, multi-objective budgets; a short random start-up scaled to the budget
        startup = tpe_startup(budget)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=startup,
                                              constant_liar=jobs > 1)
    raise InputError(f"--sampler {name!r} is not allowed; allowed: tpe, random")


class Proposer:
    """Where a sampled trial's values come from: the study's sampler, except after it proposed ``after``
    architectures in a row already evaluated (or being evaluated), when they come from random search until a new
    architecture is evaluated.

    TPE that has settled on a few architectures proposes them again and again, and each proposal costs a full
    TPE draw over every trial so far: a 50-trial search of a tightly constrained space made 753 duplicate
    proposals, about 20 per new architecture at up to half a second each, while the engine ran dry
    (bench/results/engine-use.md). A few duplicates are useful (they cost no evaluation, and the next proposal is
    near the front): switching after the first one made TPE slower to find a best architecture on the recorded
    tables, switching after 3 did not (bench/results/search-efficiency.md)."""

    after = 3  # duplicates in a row before random search takes over

    def __init__(self, study, seed: int):
        import optuna

        self.study = study
        self.random = (None if isinstance(study.sampler, optuna.samplers.RandomSampler)
                       else optuna.samplers.RandomSampler(seed=seed + 1))
        self.exploring = False
        self.streak = 0  # duplicate proposals in a row

    def duplicate(self) -> None:
        self.streak += 1
        self.exploring = self.streak >= self.after

    def new(self) -> None:
        self.streak = 0
        self.exploring = False

    def ask(self, space: SearchSpace):
        """A new trial and the space's architecture dict for it (``ItasError`` when the space cannot build one;
        the trial is then ``self.last``, still to be told)."""
        keep = self.study.sampler
        if self.exploring and self.random is not None:
            self.study.sampler = self.random  # both the trial's creation and its suggest calls sample from it
        batched = getattr(self.study._storage, "batched_params", contextlib.nullcontext)
        try:
            with batched():  # the trial's parameters in one transaction
                self.last = self.study.ask()
                return self.last, space.suggest(self.last)
        finally:
            self.study.sampler = keep


def project(space: SearchSpace, baselines: list, budget: int, n_questions: int, est, pool_config, seed: int) -> dict:
    """Projected calls, tokens and cost of a search: baselines exactly, the rest as the mean estimate of random
    feasible architectures of the space (upper bounds: the cache makes the real numbers smaller)."""
    import optuna

    from itas.arch.spec import parse_architecture

    base = [est(a) for a in baselines]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), directions=["minimize"])
    samples = []
    for _ in range(200):
        t = probe.ask()
        try:
            e = est(parse_architecture(space.suggest(t), space.source))
        except ItasError:
            probe.tell(t, 0.0)
            continue
        probe.tell(t, 0.0)
        if _violation(space, e) <= 0:
            samples.append(e)
    rest = max(0, budget - len(base))
    mean = (lambda f: sum(f(e) for e in samples) / len(samples)) if samples else (lambda f: 0.0)
    calls = sum(e.calls for e in base) + rest * mean(lambda e: e.calls)
    tokens = sum(e.tokens for e in base) + rest * mean(lambda e: e.tokens)
    cost = sum(e.cost(pool_config) for e in base) + rest * mean(lambda e: e.cost(pool_config))
    peak = mean(lambda e: max((layer.calls for layer in e.layers), default=0))
    return {"calls": int(calls * n_questions), "tokens": int(tokens * n_questions), "cost": cost * n_questions,
            "questions": n_questions, "trials": budget, "feasible_share": len(samples) / 200,
            "calls_in_flight": peak * n_questions}


def _slots(pool_config) -> int:
    """Requests the pool's servers take at once (a managed model has one server until it is started)."""
    return sum(sum(e.max_concurrency for e in m.endpoints) if m.endpoints else m.max_concurrency
               for m in pool_config.models)


def auto_jobs(pool_config, projection: dict, budget: int) -> int:
    """Trials at once for ``--jobs auto``: enough that their widest layers together fill the servers' slots
    (the engine's batch), but at most a quarter of the budget (so that the sampler learns from finished trials)
    and at least 2."""
    import math

    per_trial = max(1.0, projection.get("calls_in_flight") or 1.0)
    want = math.ceil(_slots(pool_config) / per_trial)
    return max(2, min(want, budget // 4))


def _violation(space: SearchSpace, e) -> float:
    c = space.constraints
    v = 0.0
    if c.max_calls_per_query is not None:
        v = max(v, e.calls - c.max_calls_per_query)
    if c.max_tokens_per_query is not None:
        v = max(v, (e.tokens - c.max_tokens_per_query) / 1000)
    return v


class _Runner:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.pool = None
        self.fixed: list = []
        self.by_fingerprint: dict[str, Any] = {}
        self.stopped_by_fingerprint: dict[str, Any] = {}  # staged evaluation: stopped trials
        self.pending: dict[str, asyncio.Future] = {}
        self.failed_in_a_row = 0
        self.infeasible_seen = 0
        self.duplicates_in_a_row = 0
        self.in_eval = 0
        self.gate = None
        self.own_running: set[int] = set()  # trial ids this worker evaluates (for heartbeats)
        self.spent_before = float(self._spent_record().get("spent", 0.0))
        self.tables_at = float("-inf")  # when trials.csv and pareto.csv were last written (time.monotonic)
        self.tables_due = None  # the timer of a write put off (``_tables``)

    # ---- accounting ----
    def trials(self):
        return self.study.get_trials(deepcopy=False)

    def counted(self) -> int:
        return _counted(self.trials())

    def refresh_counts(self, trials: list | None = None) -> None:
        trials = self.trials() if trials is None else trials
        p = self.progress
        p.counted = _counted(trials)
        p.stopped = sum(1 for t in trials if _stopped(t))
        p.infeasible = sum(1 for t in trials if t.user_attrs.get("itas_status") == "infeasible")
        p.duplicates = sum(1 for t in trials if t.user_attrs.get("itas_status") == "duplicate")
        p.failed = sum(1 for t in trials if t.state.name == "FAIL")
        p.front = [(t.number, *t.values) for t in store.front_trials(trials)]
        for t in store.evaluated(trials):
            self.by_fingerprint.setdefault(t.user_attrs.get("fingerprint"), t)
        for t in trials:
            if _stopped(t):
                self.stopped_by_fingerprint.setdefault(t.user_attrs.get("fingerprint"), t)
        p.spent = self.spent()

    def spent(self) -> float:
        return self.spent_before + (self.pool.stats.cost if self.pool is not None else 0.0)

    def _spent_record(self) -> dict:
        path = self.run_dir / "spend.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            self.report(f"{path}: damaged ({exc}); the spend of earlier runs is not known and counts as 0")
            return {}

    def _save_spent(self) -> None:
        # rewritten at every trial's end: not synced, as the study it goes with is not (shared.make_storage)
        store.atomic_write(self.run_dir / "spend.json", json.dumps({"spent": self.spent()}), sync=False)

    # ---- the loop ----
    async def run(self) -> str:
        done_fixed = {(t.user_attrs.get("itas_kind"), t.user_attrs.get("fingerprint")) for t in self.trials()
                      if t.state.name == "COMPLETE"}
        queue = [(kind, arch) for kind, arch in self.fixed if (kind, arch.fingerprint()) not in done_fixed]
        tasks: set[asyncio.Task] = set()
        heartbeat = asyncio.create_task(self._heartbeat()) if self.gate is not None else None
        stopped = "budget"
        budget_infeasible = INFEASIBLE_FACTOR * self.budget
        exhausted_after = max(200, INFEASIBLE_FACTOR * self.budget)
        try:
            while True:
                if self.failed_in_a_row >= FAILED_IN_A_ROW:
                    await self._drain(tasks)
                    raise SearchFailed(f"{FAILED_IN_A_ROW} trials failed in a row; last reason: {self.last_reason}")
                if self.max_spend is not None and self.spent() >= self.max_spend:
                    stopped = "max-spend"
                    self.report(f"spend cap reached ({self.spent():,.4g} >= {self.max_spend:,.4g} "
                                f"{self.pool.config.cost_unit}): finishing the running trials and stopping")
                    await self._drain(tasks)
                    break
                if self.gate is not None:  # several workers: the budget is shared through the storage
                    import optuna

                    await asyncio.to_thread(optuna.storages.fail_stale_trials, self.study)
                    trials = self.trials()
                    if len(store.evaluated(trials)) >= self.budget:
                        await self._drain(tasks)
                        break
                    if self.gate.used(trials) >= self.budget or self.in_eval >= self.jobs:
                        # every slot is taken (here or by other workers): wait for one to finish or fail
                        if tasks:
                            await asyncio.wait(tasks, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                            tasks = {t for t in tasks if not t.done() or self._reap(t)}
                        else:
                            await asyncio.sleep(1.0)
                        continue
                elif self.progress.counted + self.in_eval >= self.budget:  # kept by refresh_counts at each end
                    if not tasks:
                        break
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    tasks = {t for t in tasks if not t.done()}
                    continue
                if self.in_eval >= self.jobs:
                    _, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    tasks = {t for t in tasks if not t.done()}
                    continue
                if self.infeasible_seen >= budget_infeasible:
                    await self._drain(tasks)
                    raise SpaceTooConstrained(
                        f"the search space is too constrained: {self.infeasible_seen} infeasible architectures "
                        f"sampled (limit 20 x budget); relax the constraints in {self.space.source}")
                if self.duplicates_in_a_row >= exhausted_after:
                    self.report("the space seems exhausted: no new architecture in "
                                f"{self.duplicates_in_a_row} samples; stopping")
                    stopped = "exhausted"
                    await self._drain(tasks)
                    break
                item = queue.pop(0) if queue else None
                task = await self._start(item)
                if task is not None:
                    tasks.add(task)
                else:
                    await asyncio.sleep(0)  # an infeasible or duplicate sample: no evaluation started
                tasks = {t for t in tasks if not t.done() or self._reap(t)}
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.tables_due is not None:  # a write put off: done now, as the search ends here
                self.tables_due.cancel()
                self._tables_later()
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if self.pool is not None:
                self._save_spent()
        try:
            await self._drain(tasks)
        finally:
            if self.tables_due is not None:  # a write put off: done now, as the trials have all ended
                self.tables_due.cancel()
                self._tables_later()
        return stopped

    async def _heartbeat(self) -> None:
        from itas.search.shared import HEARTBEAT_SECONDS

        while True:
            for tid in list(self.own_running):
                try:
                    await asyncio.to_thread(self.study._storage.record_heartbeat, tid)
                except Exception:  # a missed beat is retried at the next one
                    pass
            await asyncio.sleep(max(0.5, HEARTBEAT_SECONDS / 2))

    def _reap(self, task: asyncio.Task) -> bool:
        exc = task.exception()
        if exc is not None:
            raise exc
        return False

    async def _drain(self, tasks) -> None:
        if tasks:
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                    raise r

    async def _start(self, item) -> asyncio.Task | None:
        import optuna

        from itas.arch.spec import parse_architecture

        if item is None:
            kind = "sampled"
            try:
                # in a worker thread: the sampler's draw and its writes leave the event loop free to send the
                # running trials' calls and take their answers (bench/results/engine-use.md, section 12)
                trial, arch_dict = await asyncio.to_thread(self.proposer.ask, self.space)
                arch = parse_architecture(arch_dict, f"{self.space.source} (trial {trial.number})",
                                          default_name=f"trial-{trial.number}")
            except ItasError as exc:  # a space that builds an invalid architecture: not the trial's fault
                trial = self.proposer.last
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self._attr(trial, "reason", f"invalid architecture: {exc}")
                self.failed_in_a_row += 1
                self.last_reason = str(exc)
                return None
        else:
            kind, arch = item
            trial = self.study.ask()
        fp = arch.fingerprint()
        e = self.est(arch)
        self._attrs(trial, {"itas_kind": kind, "architecture": arch.to_dict(full=True), "fingerprint": fp,
                            "description": describe(arch),
                            "estimate": {"calls": e.calls, "tokens": e.tokens, "exact": e.exact,
                                         "cost": e.cost(self.pool_config)}})
        violation = _violation(self.space, e) if kind == "sampled" else 0.0
        if violation > 0:
            self._set_constraint(trial, violation)
            self._attrs(trial, {"itas_status": "infeasible", "reason": _infeasible_reason(self.space, e)})
            lat = estimated_latency(arch, e, self.pool)
            self.study.tell(trial, [0.0, lat, e.cost(self.pool_config)])
            self.infeasible_seen += 1
            self.progress.infeasible += 1
            self._after(trial.number)
            return None
        earlier = self.by_fingerprint.get(fp) or self.stopped_by_fingerprint.get(fp)
        if earlier is not None or fp in self.pending:
            if kind == "sampled":
                self.proposer.duplicate()
        if earlier is not None:
            self._duplicate(trial, earlier)
            return None
        if fp in self.pending:  # the same architecture is being evaluated by another job
            return asyncio.create_task(self._await_duplicate(trial, fp))
        self.duplicates_in_a_row = 0
        if kind == "sampled":
            self.proposer.new()
        if self.gate is not None:
            self.study._storage.record_heartbeat(trial._trial_id)
            verdict, other = self.gate.reserve(trial, fp)
            if verdict == "done":
                self._duplicate(trial, other)
                return None
            if verdict == "running":
                self.own_running.add(trial._trial_id)  # keep this waiting trial alive
                self.in_eval += 1  # it holds a job slot while it waits, and may evaluate after all
                return asyncio.create_task(self._await_other_worker(trial, other, arch, fp))
            if verdict == "full":
                # the other workers took the last slots: stop before the first call, recorded as such
                self._attr(trial, "reason", "started past the budget (other workers completed it); no call made")
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self._after(trial.number)
                return None
            self.own_running.add(trial._trial_id)
        self.pending[fp] = asyncio.get_running_loop().create_future()
        self.in_eval += 1
        self.progress.running = self.in_eval
        return asyncio.create_task(self._evaluate(trial, arch, fp, staged=self.staged and kind == "sampled"))

    def _attr(self, trial, key, value) -> None:
        self.study._storage.set_trial_user_attr(trial._trial_id, key, value)

    def _attrs(self, trial, values: dict) -> None:
        """Several attributes: in one transaction where the storage can (``shared._only_writer``)."""
        many = getattr(self.study._storage, "set_trial_user_attrs", None)
        if many is not None:
            return many(trial._trial_id, values)
        for key, value in values.items():
            self._attr(trial, key, value)

    def _set_constraint(self, trial, value: float) -> None:
        trial.set_constraint("compute", float(value))

    def _duplicate(self, trial, earlier) -> None:
        import optuna

        self._set_constraint(trial, 0.0)
        self._attrs(trial, {"itas_status": "duplicate", "duplicate_of": earlier.number,
                            "metrics": earlier.user_attrs.get("metrics")})
        if _stopped(earlier):  # answered from a stopped trial: stopped as well
            self._attr(trial, "reason", f"stopped as trial {earlier.number}")
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, list(earlier.values))
        self.duplicates_in_a_row += 1
        self.progress.duplicates += 1
        self._after(trial.number)

    async def _await_other_worker(self, trial, number: int, arch, fp) -> None:
        """Another worker is evaluating the same architecture (as trial ``number``): answer from it when done; if
        that worker dies (its trial fails through a stale heartbeat), evaluate it here."""
        import optuna

        evaluating = False
        try:
            while True:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(optuna.storages.fail_stale_trials, self.study)
                other = next(t for t in self.trials() if t.number == number)
                if other.state.name == "COMPLETE":
                    return self._duplicate(trial, other)
                if other.state.name == "RUNNING":
                    continue
                verdict, found = self.gate.reserve(trial, fp)
                if verdict == "done":
                    return self._duplicate(trial, found)
                if verdict == "running":
                    number = found
                    continue
                if verdict == "full":
                    self._attr(trial, "reason", "started past the budget (other workers completed it); no call made")
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    return self._after(trial.number)
                evaluating = True
                self.pending[fp] = asyncio.get_running_loop().create_future()
                return await self._evaluate(trial, arch, fp)  # releases the job slot itself
        finally:
            if not evaluating:
                self.in_eval -= 1
                self.progress.running = self.in_eval
            self.own_running.discard(trial._trial_id)

    async def _await_duplicate(self, trial, fp) -> None:
        import optuna

        try:
            earlier = await asyncio.shield(self.pending[fp])
        except Exception:
            earlier = None
        if earlier is None:
            self._attr(trial, "reason", "the same architecture, evaluated at the same time, failed")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        self._duplicate(trial, earlier)

    async def _evaluate(self, trial, arch, fp, staged: bool = False) -> None:

        from itas.arch.executor import run_architecture

        fut = self.pending[fp]
        try:
            try:
                if staged:
                    result, stop_reason = await self._run_staged(arch)
                else:
                    result, stop_reason = await run_architecture(arch, self.bench, self.questions, self.pool), None
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a trial never crashes the search: it is recorded as failed
                return self._fail(trial, f"{type(exc).__name__}: {exc}")
            failed = [q for q in result.questions if q.failed]
            if failed:
                return self._fail(trial, f"{len(failed)} of {len(result.questions)} questions failed; first: "
                                         f"{failed[0].error}")
            m = result.metrics()
            metrics = {k: getattr(m, k) for k in ("accuracy", "latency_p50", "latency_p95", "wall_p50", "wall_p95",
                                                  "cost_per_query", "calls_per_query", "tokens_per_query",
                                                  "total_calls", "cached_calls", "fallbacks", "truncations")}
            metrics.update(m.training())  # test-time training's share of cost and latency, when it trained
            if stop_reason is not None:
                metrics["questions_scored"] = len(result.questions)
            self._set_constraint(trial, 0.0)
            self._attrs(trial, {"metrics": metrics,
                                "questions": [[q.id, q.score, q.n_calls, q.prompt_tokens, q.completion_tokens,
                                               round(q.latency, 4), q.cost] for q in result.questions],
                                **({"itas_status": "evaluated"} if stop_reason is None else {})})
            questions_jsonl = "".join(json.dumps({k: v for k, v in q.to_dict().items() if k != "final_state"},
                                                 default=str) + "\n" for q in result.questions)
            if stop_reason is not None:
                return self._stop(trial, arch, fp, fut, stop_reason, questions_jsonl)
            self.study.tell(trial, [m.accuracy, m.latency_p50, m.cost_per_query])
            self.failed_in_a_row = 0
            frozen = self.study._storage.get_trial(trial._trial_id)
            self.by_fingerprint[fp] = frozen
            store.write_trial_folder(self.run_dir, frozen, questions_jsonl)
            if not fut.done():
                fut.set_result(frozen)
            self.report(f"trial {trial.number} ({describe(arch)}): accuracy {m.accuracy:.3f}, latency "
                        f"{m.latency_p50:.2f} s, cost {m.cost_per_query:,.4g}/query, {m.calls_per_query:.1f} calls/query")
            self._after(trial.number)
        except Exception as exc:
            import optuna

            from itas.search.shared import GRACE_SECONDS

            if not isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
                raise
            # several workers: another one failed this trial while it ran (no heartbeat within the grace period,
            # e.g. on an overloaded machine); the retry callback has enqueued it again, so the result is dropped
            self.report(f"trial {trial.number} was marked failed by another worker while it ran (no heartbeat "
                        f"within {GRACE_SECONDS:g} s); its result is dropped and it is evaluated again, its calls "
                        f"from the cache")
            self._after(trial.number)
        finally:
            self.own_running.discard(trial._trial_id)
            if not fut.done():
                fut.set_result(None)
            self.pending.pop(fp, None)
            self.in_eval -= 1
            self.progress.running = self.in_eval

    async def _run_staged(self, arch) -> tuple[Any, str | None]:
        """Staged evaluation (``itas.search.staged``): the architecture's result on the questions it was scored on,
        and why it was stopped (``None`` when it was promoted to the whole subset, or a question failed)."""
        from itas.arch.executor import run_architecture
        from itas.arch.result import RunResult
        from itas.search.staged import blocking_point, optimistic_accuracy, paired_point, rung_sizes

        n = len(self.questions)
        records: list = []
        elapsed, seen = 0.0, 0
        for size in rung_sizes(n):
            part = await run_architecture(arch, self.bench, self.questions[seen:size], self.pool)
            records += part.questions
            elapsed += part.elapsed
            seen = size
            result = RunResult(architecture=part.architecture, benchmark=part.benchmark, questions=tuple(records),
                               cost_unit=part.cost_unit, elapsed=elapsed)
            if size == n or any(q.failed for q in records):
                return result, None
            # latency and cost of the new architecture and of the front's trials on the same questions, from the
            # same per-question figures (rounded as the trials keep them)
            scores = [q.score for q in records]
            _, latency, cost_now = paired_point(0.0, [round(q.latency, 4) for q in records],
                                                [q.cost for q in records], size)
            front = store.front_trials(self.trials())
            points = [paired_point(t.values[0], [q[5] for q in t.user_attrs["questions"]],
                                   [q[6] for q in t.user_attrs["questions"]], size)
                      if len(t.user_attrs.get("questions") or ()) == n else tuple(t.values) for t in front]
            i = blocking_point(scores, n, latency, cost_now, points)
            if i is not None:
                acc, lat, cost = points[i]
                return result, (f"stopped after {size} of {n} questions: with every other question right (accuracy "
                                f"{optimistic_accuracy(scores, n):.3f}), latency {latency:.2f} s and cost "
                                f"{cost_now:,.4g}/query, it is dominated by trial {front[i].number} "
                                f"(accuracy {acc:.3f}; on the same questions latency {lat:.2f} s, cost "
                                f"{cost:,.4g}/query)")
        raise AssertionError("the last rung is the whole subset")

    def _stop(self, trial, arch, fp, fut, reason: str, questions_jsonl: str) -> None:
        """Staged evaluation stopped the trial: PRUNED (see ``itas.search.staged``), counted, with its reason."""
        import optuna

        self._attrs(trial, {"itas_status": "stopped", "reason": reason})
        self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        self.failed_in_a_row = 0
        frozen = self.study._storage.get_trial(trial._trial_id)
        self.stopped_by_fingerprint[fp] = frozen
        store.write_trial_folder(self.run_dir, frozen, questions_jsonl)
        if not fut.done():
            fut.set_result(frozen)
        self.report(f"trial {trial.number} ({describe(arch)}): {reason}")
        self._after(trial.number)

    def _fail(self, trial, reason: str) -> None:
        import optuna

        self._attr(trial, "reason", reason)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.failed_in_a_row += 1
        self.last_reason = reason
        self.report(f"trial {trial.number} failed: {reason}")
        self._after(trial.number)

    def _after(self, number: int) -> None:
        trials = self.trials()
        t = next(x for x in trials if x.number == number)
        if t.user_attrs.get("itas_status") != "evaluated":
            store.write_trial_folder(self.run_dir, t)
        self._tables(trials)
        self.refresh_counts(trials)
        if self.pool is not None:
            self._save_spent()

    def _tables(self, trials) -> None:
        """trials.csv and pareto.csv, at most once every ``TABLES_EVERY`` seconds: when trials end faster, the
        last write is put off until then (the tables are derived from the study, which is written first; a kill
        loses nothing, as a resume rebuilds them, and the search's end writes them once more)."""
        now = time.monotonic()
        if now - self.tables_at >= TABLES_EVERY:
            self.tables_at = now
            store.write_tables(self.run_dir, trials)
        elif self.tables_due is None:
            self.tables_due = asyncio.get_running_loop().call_later(self.tables_at + TABLES_EVERY - now,
                                                                    self._tables_later)

    def _tables_later(self) -> None:
        self.tables_due = None
        self.tables_at = time.monotonic()
        store.write_tables(self.run_dir, self.trials())


def _stopped(t) -> bool:
    """A trial that staged evaluation stopped (not a duplicate of one)."""
    return t.state.name == "PRUNED" and t.user_attrs.get("itas_status") == "stopped"


def _counted(trials: list) -> int:
    """Trials that count towards the budget: evaluated ones, and those that staged evaluation stopped."""
    return len(store.evaluated(trials)) + sum(1 for t in trials if _stopped(t))


def estimated_latency(arch, e, pool) -> float:
    """An infeasible architecture's latency estimate: its layers' token estimates through the latency models."""
    total = 0.0
    for layer in e.layers:
        calls = max(1, layer.calls)
        per_call_prompt = layer.prompt_tokens // calls
        per_call_out = layer.completion_tokens // calls
        lm = next(iter(pool.latency.values()), None) if pool is not None else None
        total += lm.predict(per_call_prompt, per_call_out) if lm else 0.0
    return total


def _infeasible_reason(space: SearchSpace, e) -> str:
    c = space.constraints
    parts = []
    if c.max_calls_per_query is not None and e.calls > c.max_calls_per_query:
        parts.append(f"{e.calls} calls per query > max_calls_per_query {c.max_calls_per_query}")
    if c.max_tokens_per_query is not None and e.tokens > c.max_tokens_per_query:
        parts.append(f"{e.tokens} tokens per query > max_tokens_per_query {c.max_tokens_per_query}")
    return "; ".join(parts)


def describe(arch) -> str:
    """One line: what each layer does, e.g. 'smollm2x4 + gemma3x2 → rank(3) → critic → fuse'."""
    parts = []
    for layer in arch.layers:
        items = []
        for c in layer:
            d = c.to_dict(full=False) if hasattr(c, "to_dict") else {}
            t = d.get("type", getattr(c, "type", "?"))
            if t == "generator":
                items.append(f"{d.get('model')}x{d.get('samples', 1)}")
            elif t == "ranker":
                items.append(f"rank({d.get('top_k', 3)})")
            elif t == "fuser":
                items.append(f"fuse[{d.get('model')}]")
            elif t == "best_of_n":
                items.append(f"{d.get('mode', 'best')}-of-n")
            elif t == "unit_test_generator":
                items.append("tests")
            elif t == "unit_test_evaluator":
                items.append("run-tests")
            elif t == "augment_vote":
                items.append(f"{c.model}x{c.samples} vote over {c.augmentations} {c.transforms} views")
            elif t == "ttt":
                views = f", vote over {c.augmentations} views" if c.augmentations else ""
                items.append(f"ttt[{c.model}x{c.samples}, {c.steps} steps r{c.rank} lr {c.learning_rate:g}{views}]")
            else:
                items.append(t)
        merged: list[str] = []
        for it in items:
            if merged and merged[-1].split(" x")[0] == it and it.startswith("fuse"):
                base, _, n = merged[-1].partition(" x")
                merged[-1] = f"{base} x{int(n or 1) + 1}"
            else:
                merged.append(it)
        parts.append(" + ".join(merged))
    return " → ".join(parts)


def copy_for_resume(src: Path, dst: Path) -> None:  # pragma: no cover - used by tests to snapshot a run
    shutil.copytree(src, dst)
