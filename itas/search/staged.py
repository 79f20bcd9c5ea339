"""Staged evaluation (successive halving for several objectives): score a sampled architecture on a growing
part of the search's subset, and stop it as soon as it can no longer reach the Pareto front.

Optuna's pruners do not work with several objectives, so the search decides itself. The subset is cut into
**rungs**: by default the first quarter of the questions, the first half, then all of them (``RUNGS``; the
question order is the subset's, the same for every trial). After each rung but the last, the architecture is
promoted to the next rung only if it **could still reach the current front**:

    its *optimistic point* — (the accuracy it would reach if every question not yet seen were answered
    right, its latency p50 and its cost per query on the questions seen) — is not dominated by any trial of
    the current Pareto front of fully evaluated trials, each taken as (its accuracy on the whole subset, its
    latency p50 and cost per query on the same questions as the architecture: ``paired_point``).

Accuracy is the objective that the unseen questions can change, so it is bounded from above. Latency and cost
are per-query properties of an architecture that vary with the questions' lengths much more than between
architectures of similar shape, so they are compared on the same questions (a short first question makes
every architecture look cheap, not only the new one). With the ``all-correct`` bound (the default, and what
``itas search --staged`` uses) an architecture that would be on the front after all questions is never stopped
when latency and cost rank the architectures the same on the first questions as on all of them (exactly so when
they do not vary between questions). For comparison in ``make bench``: the ``wilson`` bound assumes the unseen
questions right at the upper end of a one-sided 95% Wilson interval of the rate seen so far: it stops more, and
can stop an architecture that would have reached the front; ``seen-rate`` (a point estimate, not a bound)
assumes them right at the rate seen so far: it stops the most, and can lose the most.

**How a stopped trial is told to Optuna**: ``TrialState.PRUNED``, without values, its partial metrics and the
reason kept as user attributes. A stopped trial is one that, even optimistically, is dominated by the front:
TPE puts pruned trials without intermediate values in its "above" group (the bad region) once the complete
trials fill the "below" group, which is what it would do with a dominated complete trial, and pruned trials
never appear in ``study.best_trials`` or on the search's front (their partial accuracy is not comparable with
full ones). A stopped trial counts towards the budget (it was evaluated, on fewer questions); an architecture
already stopped is answered from that trial when it is sampled again (a duplicate, which does not count).
The replay (``itas.search.replay``) and the search (``itas.search.runner``) do the same.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from itas.search.pareto import dominates

RUNGS = (0.25, 0.5, 1.0)  # fractions of the subset scored before each decision; the last is always all of it
BOUNDS = ("all-correct", "wilson", "seen-rate")
WILSON_Z = 1.645  # one-sided 95%


def rung_sizes(n_total: int, fractions: Sequence[float] = RUNGS) -> list[int]:
    """The number of questions scored at each rung, increasing, distinct, the last one ``n_total``:
    ``rung_sizes(16) == [4, 8, 16]``, ``rung_sizes(3) == [1, 2, 3]``."""
    if n_total < 1:
        raise ValueError("a subset has at least one question")
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"rung fraction {f} is not in (0, 1]")
    sizes = {min(n_total, max(1, math.ceil(f * n_total - 1e-9))) for f in fractions}
    return sorted(sizes | {n_total})


def optimistic_accuracy(partial_scores: Sequence[float], n_total: int, bound: str = "all-correct") -> float:
    """An upper bound of the accuracy on all ``n_total`` questions from the scores of the first ones."""
    seen = [min(1.0, max(0.0, float(s))) for s in partial_scores]
    n_seen, rest = len(seen), n_total - len(seen)
    if rest < 0:
        raise ValueError(f"{n_seen} scores for a subset of {n_total} questions")
    if bound == "all-correct" or n_seen == 0:
        per_unseen = 1.0
    elif bound == "wilson":
        per_unseen = _wilson_upper(sum(seen), n_seen, WILSON_Z)
    elif bound == "seen-rate":
        per_unseen = sum(seen) / n_seen
    else:
        raise ValueError(f"unknown accuracy bound {bound!r}; allowed: {', '.join(BOUNDS)}")
    return (sum(seen) + rest * per_unseen) / n_total


def _wilson_upper(successes: float, n: int, z: float) -> float:
    p = successes / n
    z2n = z * z / n
    centre = p + z2n / 2
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z2n))


Point = tuple[float, float, float]  # accuracy, latency p50, cost per query


def paired_point(accuracy: float, latencies: Sequence[float], costs: Sequence[float], n: int) -> Point:
    """A front trial as staged evaluation compares it after ``n`` questions: its accuracy on the whole subset,
    the p50 of its per-question latencies and the mean of its per-question costs on the first ``n``."""
    return accuracy, statistics.median(latencies[:n]), sum(costs[:n]) / n


def blocking_point(partial_scores: Sequence[float], n_total: int, partial_latency: float, partial_cost: float,
                   front: Sequence[Sequence[float]], bound: str = "all-correct") -> int | None:
    """The index in ``front`` of the first point (accuracy, latency, cost; see ``paired_point``) that dominates
    the architecture's optimistic point, or ``None`` when it could still reach the front."""
    point = (optimistic_accuracy(partial_scores, n_total, bound), partial_latency, partial_cost)
    return next((i for i, f in enumerate(front) if dominates(tuple(f), point)), None)


def should_promote(partial_scores: Sequence[float], n_total: int, partial_latency: float, partial_cost: float,
                   front: Sequence[Sequence[float]], bound: str = "all-correct") -> bool:
    """Whether an architecture scored on its first ``len(partial_scores)`` questions goes on to the next rung:
    its optimistic point is not dominated by the current front (see the module's docstring)."""
    return blocking_point(partial_scores, n_total, partial_latency, partial_cost, front, bound) is None
