"""Statistics over per-question scores: bootstrap intervals and a paired significance test. Pure numpy.

- ``bootstrap_interval(scores)``: percentile bootstrap of the mean (questions drawn with replacement).
- ``paired_bootstrap(a, b)``: the same for the mean difference ``a - b`` of two architectures scored on the same
  questions (a question's pair is resampled together, so what both get right or wrong cancels).
- ``sign_flip_test(a, b)``: the paired permutation test of "no difference". Under the null each question's
  difference is as likely to be ``+d`` as ``-d``; the p-value is the share of the 2^n sign assignments whose
  absolute sum is at least the observed one. It is computed exactly by convolving the distribution of the sum
  over the distinct magnitudes (for 0/1 scores the differences are -1, 0, 1 and this *is* the exact McNemar
  test: a two-sided binomial test on the discordant pairs); only when that distribution gets too large (many
  distinct fractional differences) is it estimated from ``draws`` seeded random sign assignments.

Seeds are passed in; nothing touches numpy's global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
REPLICATES = 10_000
_EXACT_STATES = 200_000  # the most support points of the exact null distribution before sampling instead


@dataclass(frozen=True)
class Interval:
    estimate: float
    lo: float
    hi: float
    level: float = LEVEL

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "level": self.level}


@dataclass(frozen=True)
class PairedTest:
    """``a`` against ``b`` on ``n`` shared questions: the mean difference with its bootstrap interval, the
    questions only ``a`` / only ``b`` did better on, and the two-sided p-value of the sign-flip test."""

    n: int
    difference: Interval
    a_better: int
    b_better: int
    p_value: float
    exact: bool

    def to_dict(self) -> dict:
        return {"n": self.n, "difference": self.difference.to_dict(), "a_better": self.a_better,
                "b_better": self.b_better, "p_value": self.p_value, "exact": self.exact}


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of scores")
    return x


def bootstrap_interval(scores: Sequence[float], *, level: float = LEVEL, replicates: int = REPLICATES,
                       seed: int = 0) -> Interval:
    """The mean of ``scores`` with its percentile bootstrap interval (NaN bounds for no scores; a point
    interval for one)."""
    x = _vector(scores, "scores")
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return Interval(mean, mean, mean, level)
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, replicates, rng)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(lo), float(hi), level)


def _resampled_means(x: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    # multinomial counts per replicate: replicates x n weights, memory independent of n * n
    counts = rng.multinomial(x.size, np.full(x.size, 1.0 / x.size), size=replicates)
    return counts @ x / x.size


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, level: float = LEVEL,
                     replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """The mean of ``a - b`` over paired questions, with its percentile bootstrap interval."""
    x, y = _pair(a, b)
    return bootstrap_interval(x - y, level=level, replicates=replicates, seed=seed)


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired scores need the same questions: {x.size} against {y.size}")
    return x, y


def sign_flip_test(a: Sequence[float], b: Sequence[float], *, draws: int = 100_000,
                   seed: int = 0) -> tuple[float, bool]:
    """Two-sided p-value of the paired sign-flip (permutation) test of ``mean(a - b) == 0``, and whether it
    is exact. Identical scores give 1.0."""
    x, y = _pair(a, b)
    d = x - y
    d = d[d != 0]
    if d.size == 0:
        return 1.0, True
    observed = abs(float(d.sum()))
    # magnitudes on a grid fine enough for scores in [0, 1] written with a few decimals; equal magnitudes merge
    magnitudes, counts = np.unique(np.round(np.abs(d), 9), return_counts=True)
    dist = _null_distribution(magnitudes, counts)
    if dist is not None:
        sums, probs = dist
        p = float(probs[np.abs(sums) >= observed - 1e-9].sum())
        return min(1.0, p), True
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(draws, d.size))
    stats = np.abs(signs @ np.abs(d))
    p = (1 + int(np.sum(stats >= observed - 1e-9))) / (draws + 1)
    return min(1.0, p), False


def _null_distribution(magnitudes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The exact distribution of ``sum(s_i * |d_i|)`` over uniform random signs, as (support, probability);
    None when its support grows past ``_EXACT_STATES``."""
    sums = np.zeros(1)
    probs = np.ones(1)
    for m, c in zip(magnitudes, counts, strict=True):
        k = np.arange(c + 1)
        binom = _binomial_pmf(int(c))
        steps = m * (2 * k - c)  # k of the c signs positive
        new_sums = (sums[:, None] + steps[None, :]).ravel()
        new_probs = (probs[:, None] * binom[None, :]).ravel()
        keys = np.round(new_sums, 9)
        sums, inverse = np.unique(keys, return_inverse=True)
        probs = np.bincount(inverse.ravel(), weights=new_probs)
        if sums.size > _EXACT_STATES:
            return None
    return sums, probs


def _binomial_pmf(n: int) -> np.ndarray:
    """P(k of n fair coins come up heads), k = 0..n, computed in log space (exact enough for n in the
    thousands)."""
    from math import lgamma, log

    k = np.arange(n + 1)
    logc = np.array([lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) for i in k])
    return np.exp(logc - n * log(2))


def paired_test(a: Sequence[float], b: Sequence[float], *, level: float = LEVEL, replicates: int = REPLICATES,
                seed: int = 0) -> PairedTest:
    """Everything the report says about ``a`` against ``b`` on the same questions."""
    x, y = _pair(a, b)
    p, exact = sign_flip_test(x, y, seed=seed)
    return PairedTest(n=int(x.size), difference=paired_bootstrap(x, y, level=level, replicates=replicates,
                                                                 seed=seed),
                      a_better=int(np.sum(x > y)), b_better=int(np.sum(x < y)), p_value=p, exact=exact)
