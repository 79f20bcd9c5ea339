"""The content of a report, computed from a run's trials: pure (no files, no servers).

For each run: the Pareto front (accuracy with its bootstrap interval, latency p50/p95, cost, calls per query,
the one-line architecture), each front architecture against the best single call on the same questions (the
paired bootstrap interval of the accuracy difference and the sign-flip test's p-value), the single-call
baselines, the best trial per objective, the pick under ``--pick`` constraints, when validation results are
given, the same on the validation questions beside the search's, and for runs that used test-time training,
what it bought and cost (``itas.report.ttt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from itas.report.pick import Constraint, pick
from itas.report.source import QuestionOutcome, RunData, TrialRecord
from itas.report.stats import REPLICATES, Interval, PairedTest, bootstrap_interval, paired_test
from itas.report.ttt import TttSummary, summarise_ttt


@dataclass(frozen=True)
class Scored:
    """An architecture's scores on some questions: accuracy with its interval, and the comparison with the
    best single call on the questions both were scored on (None for that baseline itself)."""

    n: int
    accuracy: Interval
    vs_best_single: PairedTest | None
    failed: int = 0

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy.to_dict(), "failed": self.failed,
                "vs_best_single": self.vs_best_single.to_dict() if self.vs_best_single else None}


@dataclass(frozen=True)
class Row:
    trial: TrialRecord
    search: Scored
    validation: Scored | None = None
    on_front: bool = False
    baseline: bool = False

    def to_dict(self, cost_unit: str) -> dict:
        t = self.trial
        return {"trial": t.number, "kind": t.kind, "on_front": self.on_front, "baseline": self.baseline,
                "description": t.description, "fingerprint": t.fingerprint,
                "accuracy": t.accuracy, "accuracy_lo": self.search.accuracy.lo,
                "accuracy_hi": self.search.accuracy.hi, "latency_p50": t.latency_p50,
                "latency_p95": t.latency_p95, "cost_per_query": t.cost, "cost_unit": cost_unit,
                "calls_per_query": t.calls, "tokens_per_query": float(t.metrics.get("tokens_per_query", 0.0)),
                "search": self.search.to_dict(),
                "validation": self.validation.to_dict() if self.validation else None}


@dataclass(frozen=True)
class ValidationSet:
    """Scores of architectures (by fingerprint) on questions the search never saw."""

    k: int
    seed: int
    question_ids: tuple[str, ...]
    scores: Mapping[str, tuple[QuestionOutcome, ...]]  # fingerprint -> per-question outcomes
    failed: Mapping[str, int] = field(default_factory=dict)
    path: str | None = None


@dataclass(frozen=True)
class RunReport:
    run: RunData
    front: tuple[Row, ...]  # by accuracy, best first
    baselines: tuple[Row, ...]
    best_single: TrialRecord | None
    best: Mapping[str, TrialRecord]  # objective -> trial
    counts: Mapping[str, int]
    constraints: tuple[Constraint, ...] = ()
    picked: Row | None = None
    validation: ValidationSet | None = None
    files: tuple[str, ...] = ()
    ttt: TttSummary | None = None  # what test-time training bought and cost (runs that used it)

    def to_dict(self) -> dict:
        unit = self.run.cost_unit
        return {
            "run": self.run.label, "run_dir": str(self.run.run_dir) if self.run.run_dir else None,
            "study": self.run.study_name, "benchmark": self.run.benchmark, "cost_unit": unit,
            "questions": len(self.run.question_ids()), "trials": dict(self.counts),
            "best_single_call": self.best_single.number if self.best_single else None,
            "front": [r.to_dict(unit) for r in self.front],
            "baselines": [r.to_dict(unit) for r in self.baselines],
            "best": {k: t.number for k, t in self.best.items()},
            "pick": None if not self.constraints else {
                "constraints": [str(c) for c in self.constraints],
                "trial": self.picked.to_dict(unit) if self.picked else None},
            "validation": None if self.validation is None else {
                "k": self.validation.k, "seed": self.validation.seed,
                "question_ids": list(self.validation.question_ids), "file": self.validation.path},
            "files": list(self.files),
            "ttt": self.ttt.to_dict() if self.ttt else None,
        }


def trial_counts(run: RunData) -> dict[str, int]:
    out = {"evaluated": 0, "infeasible": 0, "duplicate": 0, "failed": 0, "interrupted": 0, "other": 0}
    for t in run.trials:
        key = "evaluated" if t.evaluated else t.status if t.status in out else "other"
        out[key] += 1
    return out


def best_per_objective(trials: Sequence[TrialRecord]) -> dict[str, TrialRecord]:
    """Highest accuracy (ties: cheaper), lowest latency p50 and lowest cost (ties: more accurate)."""
    if not trials:
        return {}
    return {"accuracy": min(trials, key=lambda t: (-t.accuracy, t.cost, t.latency_p50, t.number)),
            "latency": min(trials, key=lambda t: (t.latency_p50, -t.accuracy, t.cost, t.number)),
            "cost": min(trials, key=lambda t: (t.cost, -t.accuracy, t.latency_p50, t.number))}


def score(outcomes: Sequence[QuestionOutcome], reference: Sequence[QuestionOutcome] | None, *,
          is_reference: bool, replicates: int, seed: int, failed: int = 0) -> Scored:
    """Accuracy with its interval; against ``reference`` on the questions both have, unless this is it."""
    values = [q.score for q in outcomes]
    acc = bootstrap_interval(values, replicates=replicates, seed=seed)
    versus = None
    if reference is not None and not is_reference:
        ref = {q.id: q.score for q in reference}
        shared = [q for q in outcomes if q.id in ref]
        if shared:
            versus = paired_test([q.score for q in shared], [ref[q.id] for q in shared], replicates=replicates,
                                 seed=seed)
    return Scored(n=len(values), accuracy=acc, vs_best_single=versus, failed=failed)


def summarise(run: RunData, *, constraints: Sequence[Constraint] = (), validation: ValidationSet | None = None,
              replicates: int = REPLICATES, seed: int = 0) -> RunReport:
    evaluated = run.evaluated()
    front = run.front()
    front_numbers = {t.number for t in front}
    baselines = run.baselines()
    base_numbers = {t.number for t in baselines}
    best_single = run.best_baseline()

    def row(t: TrialRecord) -> Row:
        search = score(t.questions, best_single.questions if best_single else None,
                       is_reference=best_single is not None and t.number == best_single.number,
                       replicates=replicates, seed=seed)
        val = None
        if validation is not None and t.fingerprint in validation.scores:
            ref = validation.scores.get(best_single.fingerprint) if best_single else None
            val = score(validation.scores[t.fingerprint], ref,
                        is_reference=best_single is not None and t.fingerprint == best_single.fingerprint,
                        replicates=replicates, seed=seed, failed=validation.failed.get(t.fingerprint, 0))
        return Row(trial=t, search=search, validation=val, on_front=t.number in front_numbers,
                   baseline=t.number in base_numbers)

    front_rows = tuple(row(t) for t in sorted(front, key=lambda t: (-t.accuracy, t.cost, t.latency_p50,
                                                                      t.number)))
    base_rows = tuple(row(t) for t in sorted(baselines, key=lambda t: (-t.accuracy, t.cost, t.number)))
    picked = None
    if constraints:
        chosen = pick(evaluated, constraints)
        if chosen is not None:
            picked = next((r for r in front_rows + base_rows if r.trial.number == chosen.number), None) or row(chosen)
    return RunReport(run=run, front=front_rows, baselines=base_rows, best_single=best_single,
                     best=best_per_objective(evaluated), counts=trial_counts(run), constraints=tuple(constraints),
                     picked=picked, validation=validation,
                     ttt=summarise_ttt(evaluated, replicates=replicates, seed=seed))
