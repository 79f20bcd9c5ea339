"""Replay searches against a recorded table (``itas.search.table``), without any model.

A replay is the real search with the model calls replaced by the table: the same ``SearchSpace.suggest``, the
same samplers (``runner.make_sampler``, for one job: trials one after another, so TPE's constant liar is off), a
real in-memory Optuna study with the search's directions (accuracy up, latency and cost down), and the search's
accounting (``runner._Runner``):

- the single-call baselines of the table's models come first and count, as in every search (a baseline that
  the table does not hold, because the space cannot build it, is skipped: its outcome is unknown);
- an evaluation counts towards the budget; an architecture already evaluated (or stopped) is answered from its
  earlier trial with the same values (or state) and does not count, and after 3 in a row the values come from
  random search until a new architecture is evaluated (``runner.Proposer``);
- an architecture over the space's constraints is infeasible (told with a positive constraint, accuracy 0), does
  not count; the table's measured calls and tokens per query stand in for the search's estimate;
- an architecture the table recorded as failed (a question's call failed while recording), or does not hold at
  all (a table still being recorded), is a failed trial that does not count; as the table cannot say what a
  second attempt would give, it brings nothing new, like a duplicate (the search would try it again);
- the replay stops at the budget, after ``20 x budget`` infeasible samples, or when ``max(200, 20 x budget)``
  samples in a row were duplicates (the space is exhausted).

With ``staged`` an architecture is scored rung by rung and stopped as soon as it cannot reach the front of the
fully evaluated trials (``itas.search.staged``, which also says how a stopped trial is told to Optuna). Calls are
the table's ``calls`` column summed over every question an evaluation scored.

``compare`` runs TPE and random search over many seeds and summarises: the evaluations until an architecture
with the table's highest accuracy is evaluated (the budget when none is), the hypervolume of the found front
relative to the table's true front, and what staged evaluation saves and loses against full evaluation. On a
table whose highest accuracy stands a question or two above many others (the noise of a small subset),
``within`` also counts the architectures that many questions below it as best ones.
"""

from __future__ import annotations

import copy
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from itas.errors import ItasError
from itas.search.pareto import DIRECTIONS, MAXIMIZE, dominates, pareto_front
from itas.search.staged import RUNGS, blocking_point, rung_sizes
from itas.search.table import Table

Point = tuple[float, float, float]  # accuracy, latency p50, cost per query
REFERENCE = 1.1  # the hypervolume reference point, in normalised objectives (0 best, 1 worst in the table)


@dataclass(frozen=True)
class Staging:
    """Staged evaluation: the rungs (fractions of the subset) and the accuracy bound of ``itas.search.staged``."""

    rungs: tuple[float, ...] = RUNGS
    bound: str = "all-correct"

    @property
    def label(self) -> str:
        return f"{self.bound}, rungs {'/'.join(f'{f:g}' for f in self.rungs)}"


class TableIndex:
    """A table prepared for many replays: the space, every architecture's full and per-rung objectives, its calls,
    the table's best accuracy, true front and objective ranges."""

    def __init__(self, table: Table, within: int = 0):
        from itas.arch.spec import parse_architecture

        self.table = table
        self.within = within  # questions below the highest accuracy that still count as a best architecture
        self.space = table.space
        self.n_questions = len(table.question_ids)
        self.rows = table.rows
        self.evaluated = table.evaluated()
        self.full: dict[str, Point] = {fp: table.metrics(fp) for fp in self.evaluated}
        self._partial: dict[tuple[str, int], Point] = {}
        self.per_query: dict[str, tuple[float, float]] = {}  # fp -> (calls, tokens) per query, for constraints
        for fp, row in table.rows.items():
            qs = row["questions"]
            n = max(1, len(qs))
            self.per_query[fp] = (sum(q[1] for q in qs) / n, sum(q[2] + q[3] for q in qs) / n)
        baselines = {m: parse_architecture(self.space.baseline(m), f"baseline {m}").fingerprint()
                     for m in table.header.get("models", [])}
        self.baselines = [fp for fp in baselines.values() if fp in self.evaluated]
        self.missing_baselines = [m for m, fp in baselines.items() if fp not in self.evaluated]
        self.fp_of: dict[tuple, str] = {}  # Optuna params -> fingerprint (suggest depends on the params only)
        self.best_accuracy = max((p[0] for p in self.full.values()), default=0.0)
        self.best = self._best(within)
        points = list(self.full.values())
        self.lo = tuple(min(p[i] for p in points) for i in range(3)) if points else (0.0, 0.0, 0.0)
        self.hi = tuple(max(p[i] for p in points) for i in range(3)) if points else (1.0, 1.0, 1.0)
        fps = list(self.full)
        self.true_front_fps = {fps[i] for i in pareto_front([self.full[fp] for fp in fps])}
        self.true_front = [self.full[fp] for fp in self.true_front_fps]

    def _best(self, within: int) -> set[str]:
        threshold = self.best_accuracy - within / max(1, self.n_questions) - 1e-9
        return {fp for fp, p in self.full.items() if p[0] >= threshold}

    def with_within(self, within: int) -> TableIndex:
        """The same index (sharing its caches) with another ``within``."""
        other = copy.copy(self)
        other.within, other.best = within, self._best(within)
        return other

    def partial(self, fp: str, n: int) -> Point:
        key = (fp, n)
        if key not in self._partial:
            self._partial[key] = self.table.metrics(fp, n)
        return self._partial[key]

    def calls(self, fp: str, start: int, stop: int) -> int:
        return int(sum(q[1] for q in self.rows[fp]["questions"][start:stop]))

    def hypervolume_ratio(self, found: Sequence[Point]) -> float:
        return hypervolume_ratio(found, self.true_front, bounds=(self.lo, self.hi))


@dataclass
class ReplayResult:
    sampler: str
    seed: int
    budget: int
    staging: Staging | None
    evaluated: list[str] = field(default_factory=list)  # fingerprints in the order their evaluations counted
    stopped: list[str] = field(default_factory=list)  # those of them stopped before the last rung
    evaluations_to_best: int = 0  # 1-based; the budget when no best architecture was fully evaluated
    found_best: bool = False
    calls: int = 0  # the table's calls over every question scored
    front: list[Point] = field(default_factory=list)  # the found front (fully evaluated architectures)
    front_fps: list[str] = field(default_factory=list)
    duplicates: int = 0
    infeasible: int = 0
    failed: int = 0
    missing: int = 0  # sampled architectures that the table does not hold
    stop: str = "budget"  # budget | exhausted | failed | too-constrained

    @property
    def counted(self) -> int:
        return len(self.evaluated)


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*set_metric_names.*")


def replay(table: Table | TableIndex, sampler: str, seed: int, budget: int,
           staged: Staging | None = None) -> ReplayResult:
    """One search of ``budget`` evaluations against the table (see the module's docstring)."""
    import optuna

    from itas.arch.spec import parse_architecture
    from itas.search.runner import FAILED_IN_A_ROW, INFEASIBLE_FACTOR, Proposer, _violation, make_sampler

    index = table if isinstance(table, TableIndex) else TableIndex(table)
    _quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler(sampler, seed, budget))
    proposer = Proposer(study, seed)
    out = ReplayResult(sampler=sampler, seed=seed, budget=budget, staging=staged)
    values: dict[str, Point] = {}  # fully evaluated: fp -> objectives
    stopped: set[str] = set()
    front_fps: list[str] = []  # the current front of the fully evaluated
    sizes = rung_sizes(index.n_questions, staged.rungs) if staged else [index.n_questions]
    PRUNED, FAIL = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL

    def count(fp: str, point: Point | None) -> None:
        nonlocal front_fps
        out.evaluated.append(fp)
        if point is None:
            out.stopped.append(fp)
            stopped.add(fp)
            return
        values[fp] = point
        front_fps = [f for f in front_fps if not dominates(point, values[f])]
        if not any(dominates(values[f], point) for f in front_fps):
            front_fps.append(fp)
        if not out.found_best and fp in index.best:
            out.found_best = True
            out.evaluations_to_best = out.counted

    for fp in index.baselines:  # the single-call baselines: no parameters, always fully evaluated
        if out.counted >= budget:
            break
        trial = study.ask()
        trial.set_constraint("compute", 0.0)
        study.tell(trial, list(index.full[fp]))
        out.calls += index.calls(fp, 0, index.n_questions)
        count(fp, index.full[fp])

    failed_in_a_row = duplicates_in_a_row = 0
    exhausted_after = max(200, INFEASIBLE_FACTOR * budget)
    while out.counted < budget:
        if failed_in_a_row >= FAILED_IN_A_ROW:
            out.stop = "failed"
            break
        if out.infeasible >= INFEASIBLE_FACTOR * budget:
            out.stop = "too-constrained"
            break
        if duplicates_in_a_row >= exhausted_after:
            out.stop = "exhausted"
            break
        try:
            trial, arch_dict = proposer.ask(index.space)
            key = tuple(sorted(trial.params.items()))
            fp = index.fp_of.get(key)
            if fp is None:
                fp = index.fp_of[key] = parse_architecture(arch_dict, index.space.source).fingerprint()
        except ItasError:
            study.tell(proposer.last, state=FAIL)
            out.failed += 1
            failed_in_a_row += 1
            continue
        row = index.rows.get(fp)
        if row is None or row["status"] != "evaluated":  # nothing the table can tell: nothing new, like a duplicate
            study.tell(trial, state=FAIL)
            if row is None:
                out.missing += 1
            else:
                out.failed += 1
            duplicates_in_a_row += 1
            continue
        calls, tokens = index.per_query[fp]
        violation = _violation(index.space, _Estimate(calls, tokens))
        if violation > 0:
            trial.set_constraint("compute", violation)
            study.tell(trial, [0.0, *index.full.get(fp, (0.0, 0.0, 0.0))[1:]])
            out.infeasible += 1
            continue
        if fp in values or fp in stopped:
            trial.set_constraint("compute", 0.0)
            if fp in values:
                study.tell(trial, list(values[fp]))
            else:
                study.tell(trial, state=PRUNED)
            out.duplicates += 1
            duplicates_in_a_row += 1
            proposer.duplicate()
            continue
        duplicates_in_a_row = failed_in_a_row = 0
        proposer.new()
        trial.set_constraint("compute", 0.0)
        seen = 0
        for size in sizes:
            out.calls += index.calls(fp, seen, size)
            seen = size
            if size == index.n_questions:
                break
            _, lat, cost = index.partial(fp, size)
            scores = [q[0] for q in row["questions"][:size]]
            paired = [(values[f][0], *index.partial(f, size)[1:]) for f in front_fps]
            if blocking_point(scores, index.n_questions, lat, cost, paired, staged.bound) is not None:
                break
        if seen < index.n_questions:
            study.tell(trial, state=PRUNED)
            count(fp, None)
        else:
            study.tell(trial, list(index.full[fp]))
            count(fp, index.full[fp])
    if not out.found_best:
        out.evaluations_to_best = budget
    fps = list(values)
    out.front_fps = [fps[i] for i in pareto_front([values[fp] for fp in fps])]
    out.front = [values[fp] for fp in out.front_fps]
    return out


@dataclass(frozen=True)
class _Estimate:
    calls: float
    tokens: float


# ---- hypervolume -------------------------------------------------------------------------------------------------
def hypervolume_ratio(found: Sequence[Sequence[float]], true_front: Sequence[Sequence[float]],
                      bounds: tuple[Sequence[float], Sequence[float]] | None = None) -> float:
    """The hypervolume of ``found`` divided by that of ``true_front`` (points of (accuracy, latency, cost)).

    Each objective is normalised to [0, 1] over ``bounds`` ((minima), (maxima); by default those of both sets),
    0 the best value (the highest accuracy, the lowest latency and cost) and 1 the worst, and the hypervolume is
    measured up to the reference point (1.1, 1.1, 1.1), with Optuna's exact algorithm."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    if bounds is None:
        both = [tuple(p) for p in found] + [tuple(p) for p in true_front]
        bounds = (tuple(min(p[i] for p in both) for i in range(3)), tuple(max(p[i] for p in both) for i in range(3)))
    lo, hi = bounds

    def hv(points: Sequence[Sequence[float]]) -> float:
        if not points:
            return 0.0
        loss = []
        for p in points:
            row = []
            for i, d in enumerate(DIRECTIONS):
                span = (hi[i] - lo[i]) or 1.0
                row.append((hi[i] - p[i]) / span if d == MAXIMIZE else (p[i] - lo[i]) / span)
            loss.append(row)
        arr = np.array(loss, dtype=float)
        ref = np.full(3, REFERENCE)
        arr = arr[np.all(arr < ref, axis=1)]
        if not len(arr):
            return 0.0
        return float(compute_hypervolume(arr, ref))

    whole = hv(true_front)
    return hv(found) / whole if whole > 0 else 1.0


# ---- the comparison of make bench ------------------------------------------------------------------------------
@dataclass
class StagedSummary:
    staging: Staging
    calls_saved: float  # median over seeds of 1 - staged calls / full-evaluation calls (same seed, TPE)
    hypervolume: float  # median hypervolume ratio of the staged searches' fronts
    hypervolume_lost: float  # median of full evaluation's minus the staged searches'
    evaluations_to_best: float  # median
    true_front_stopped: int  # stops of architectures of the true front, over all seeds
    true_front_sampled: int  # evaluations (full or stopped) of architectures of the true front, over all seeds


@dataclass
class Comparison:
    seeds: int
    budget: int
    best_accuracy: float
    n_best: int
    n_architectures: int  # evaluated rows of the table
    true_front_size: int
    evaluations_to_best: dict[str, float]  # sampler -> median
    found_best: dict[str, int]  # sampler -> seeds whose search evaluated a best architecture
    speedup: float  # random's median evaluations-to-best / TPE's
    hypervolume: dict[str, dict[int, float]]  # sampler -> budget -> median ratio
    staged: list[StagedSummary]
    seconds: float
    missing_baselines: list[str]


def compare(table: Table | TableIndex, seeds: int = 20, budget: int = 100, budgets: Sequence[int] = (25, 50, 100),
            samplers: Sequence[str] = ("tpe", "random"),
            stagings: Sequence[Staging] = (Staging(), Staging(bound="wilson"), Staging(bound="seen-rate")),
            progress: Callable[[str], None] | None = None, within: int | None = None) -> Comparison:
    """TPE against random search over ``seeds`` seeds, each budget replayed as its own search (the TPE start-up
    depends on the budget), and staged evaluation against full evaluation with TPE at ``budget``. With ``within``,
    an architecture up to that many questions below the table's highest accuracy counts as a best one (by default
    the index's own, 0 for a table)."""
    import time

    t0 = time.perf_counter()
    if isinstance(table, TableIndex):
        index = table if within is None or within == table.within else table.with_within(within)
    else:
        index = TableIndex(table, within or 0)
    say = progress or (lambda _: None)
    runs: dict[tuple[str, int], list[ReplayResult]] = {}
    for s in samplers:
        for b in sorted(set(budgets) | {budget}):
            say(f"{s}, budget {b}, {seeds} seeds")
            runs[(s, b)] = [replay(index, s, seed, b) for seed in range(seeds)]
    med = statistics.median
    etb = {s: med(r.evaluations_to_best for r in runs[(s, budget)]) for s in samplers}
    hv = {s: {b: med(index.hypervolume_ratio(r.front) for r in runs[(s, b)]) for b in budgets} for s in samplers}
    speedup = etb["random"] / etb["tpe"] if "random" in etb and "tpe" in etb and etb["tpe"] else float("nan")
    full = runs.get(("tpe", budget)) or [replay(index, "tpe", seed, budget) for seed in range(seeds)]
    full_hv = med(index.hypervolume_ratio(r.front) for r in full)
    summaries = []
    for st in stagings:
        say(f"tpe staged ({st.label}), budget {budget}, {seeds} seeds")
        staged = [replay(index, "tpe", seed, budget, st) for seed in range(seeds)]
        saved = med(1 - s.calls / f.calls for s, f in zip(staged, full, strict=True) if f.calls)
        st_hv = med(index.hypervolume_ratio(r.front) for r in staged)
        front = index.true_front_fps
        summaries.append(StagedSummary(
            staging=st, calls_saved=saved, hypervolume=st_hv, hypervolume_lost=full_hv - st_hv,
            evaluations_to_best=med(r.evaluations_to_best for r in staged),
            true_front_stopped=sum(fp in front for r in staged for fp in r.stopped),
            true_front_sampled=sum(fp in front for r in staged for fp in r.evaluated)))
    return Comparison(seeds=seeds, budget=budget, best_accuracy=index.best_accuracy, n_best=len(index.best),
                      n_architectures=len(index.full), true_front_size=len(index.true_front_fps),
                      evaluations_to_best=etb,
                      found_best={s: sum(r.found_best for r in runs[(s, budget)]) for s in samplers},
                      speedup=speedup, hypervolume=hv, staged=summaries, seconds=time.perf_counter() - t0,
                      missing_baselines=index.missing_baselines)
