"""Estimators over one question's n samples: pure functions of its correctness, answers and rewards.

Every curve value at k is an exact expectation over the C(n, k) subsets of size k of the n samples (drawn
without replacement, all equally likely), so it is an unbiased estimate of what k fresh samples would give,
and it uses all n samples instead of one arbitrary split. In the formulas, C(a, k) = 0 when a < k.

- ``pass_at_k`` (coverage): 1 - C(n - c, k) / C(n, k), c = correct samples (Chen et al., 2021).
- ``vote_at_k`` (majority vote): the vote component's rule on a random k-subset taken in random order: samples
  with no extracted answer do not vote; the answer with most votes wins; ties go to the answer that comes first,
  which with the k samples in random order is a uniform draw among the tied answers. The value of a winning
  answer is the mean correctness of the samples that gave it (0 or 1 with a deterministic scorer); a subset
  with no vote at all is worth 0. Computed exactly (see ``vote_at_k``).
- ``select_at_k`` (Best-of-N@k / Worst-of-N@k): the best_of_n component's rule on a random k-subset in random
  order: the sample with the highest (``best``) or lowest (``worst``) reward is kept; ties go to the earliest,
  a uniform draw among the tied; a sample without a reward (an unparsable judgement) is ranked after every
  rewarded one in either mode. With reward levels v_1 < ... < v_G in the order of preference, e_g samples at
  level g, b_g samples less preferred than g, and cbar_g their mean correctness:
  value(k) = sum_g cbar_g * (C(b_g + e_g, k) - C(b_g, k)) / C(n, k).
- ``calibrated_rewards`` (InfAlign): each rewarded sample's mid-rank quantile among the question's rewarded
  samples: (#{r_j < r_i} + #{r_j = r_i} / 2) / m, the sample itself included; with distinct rewards these are
  exactly the uniform quantiles (i - 1/2) / m.
- ``win_rates``: the probability that the Best-of-N (Worst-of-N) pick of N samples beats one more, independent
  base sample by the reward, ties counting half. Exact over draws of N + 1 distinct samples among the m rewarded
  ones (a uniformly chosen one is the base sample), so N = 1 .. m - 1. With distinct rewards it equals N/(N+1)
  (1/(N+1)) exactly: the gap to those lines measures ties, the only way a reward can fall short of perfectly
  calibrated on its own samples.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["best_of_n_at_k", "calibrated_rewards", "pass_at_k", "select_at_k", "vote_at_k", "win_rates",
           "worst_of_n_at_k"]


def _log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def _ratio(lf: np.ndarray, a: np.ndarray | int, k: np.ndarray | int, n: int) -> np.ndarray:
    """C(a, k) / C(n, k), elementwise over broadcast ``a`` and ``k`` (0 where a < k); needs k <= n."""
    a = np.asarray(a)
    k = np.asarray(k)
    a_b, k_b = np.broadcast_arrays(a, k)
    ok = a_b >= k_b
    a_s = np.where(ok, a_b, k_b)  # any valid value; masked below
    log = (lf[a_s] - lf[a_s - k_b]) - (lf[n] - lf[n - k_b])  # grouped: exactly 0 when a == n
    return np.where(ok, np.exp(log), 0.0)


def _ks(n: int, ks: Sequence[int] | np.ndarray | None) -> np.ndarray:
    out = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    if out.size and (out.min() < 1 or out.max() > n):
        raise ValueError(f"k must be between 1 and the number of samples ({n})")
    return out


def pass_at_k(correct: Sequence[bool] | np.ndarray, ks: Sequence[int] | None = None) -> np.ndarray:
    """Coverage: the probability that at least one of k samples is correct, for k in ``ks`` (default 1..n)."""
    correct = np.asarray(correct, dtype=bool)
    n = correct.size
    ks = _ks(n, ks)
    c = int(correct.sum())
    return 1.0 - _ratio(_log_factorials(n), n - c, ks, n)


def select_at_k(rewards: Sequence[float | None], correct: Sequence[float], ks: Sequence[int] | None = None,
                mode: str = "best") -> np.ndarray:
    """Best-of-N@k (``mode='best'``) or Worst-of-N@k (``mode='worst'``): the expected correctness of the sample
    the reward keeps among k, for k in ``ks`` (default 1..n). ``rewards``: None or NaN = no reward."""
    if mode not in ("best", "worst"):
        raise ValueError(f"mode must be 'best' or 'worst', got {mode!r}")
    r = np.array([np.nan if v is None else float(v) for v in rewards], dtype=float)
    corr = np.asarray(correct, dtype=float)
    n = r.size
    if corr.size != n:
        raise ValueError("rewards and correct must have the same length")
    ks = _ks(n, ks)
    # preference key: larger is preferred; no reward is the least preferred level in either mode
    key = np.where(np.isnan(r), -np.inf, r if mode == "best" else -r)
    levels, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    mean_corr = np.bincount(inverse, weights=corr, minlength=levels.size) / counts
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lf = _log_factorials(n)
    upto = _ratio(lf, (below + counts)[:, None], ks[None, :], n)
    under = _ratio(lf, below[:, None], ks[None, :], n)
    return (mean_corr[:, None] * (upto - under)).sum(axis=0)


def best_of_n_at_k(rewards, correct, ks=None) -> np.ndarray:
    return select_at_k(rewards, correct, ks, mode="best")


def worst_of_n_at_k(rewards, correct, ks=None) -> np.ndarray:
    return select_at_k(rewards, correct, ks, mode="worst")


def vote_at_k(answers: Sequence[Hashable | None], correct: Sequence[float],
              ks: Sequence[int] | None = None) -> np.ndarray:
    """Majority vote@k, the exact expectation over k-subsets (rule in the module docstring).

    Method: vote@k = sum over answers t, and over m >= 1, of corr(t) * P(t has m votes, every other answer at
    most m, and t wins the tie among those with m). Give each answer an independent uniform priority U; t wins
    a tie when its U is the highest, so conditional on U_t = u each other answer tied at m contributes a factor
    u, and integrating u over [0, 1] (Gauss-Legendre, exact for these polynomials) gives the 1/(1 + ties) share.
    For each m, a dynamic programme over the answers with at least m samples counts the subsets (as
    hypergeometric probabilities, so nothing overflows), carrying the count and its derivative in the
    direction of the correct answers (each correct answer in turn being t), so all answers are done in one
    pass; answers with fewer than m samples, and samples with no answer, are unconstrained and enter at once.
    All k come out together. Cost: sum over m of (answers with >= m samples) * m shifted additions of length n;
    about 15 ms per question at n = 128 and 0.2 s at n = 512.
    """
    n = len(answers)
    corr_all = np.asarray(correct, dtype=float)
    if corr_all.size != n:
        raise ValueError("answers and correct must have the same length")
    ks = _ks(n, ks)
    groups: dict[Hashable, list[float]] = {}
    for a, c in zip(answers, corr_all, strict=True):
        if a is not None:
            groups.setdefault(a, []).append(float(c))
    sizes = np.array([len(v) for v in groups.values()], dtype=int)
    corr = np.array([sum(v) / len(v) for v in groups.values()], dtype=float)
    total = np.zeros(n + 1)
    if not groups or not (corr > 0).any():
        return total[ks]
    lf = _log_factorials(n)

    def log_comb(a, b):
        return lf[a] - lf[b] - lf[a - b]

    top = int(sizes[corr > 0].max())
    for m in range(1, top + 1):
        big = np.flatnonzero(sizes >= m)
        big = big[np.argsort(corr[big] > 0, kind="stable")]  # correct answers last: b is zero until the first
        rest = n - int(sizes[big].sum())  # samples with no answer, answers with fewer than m samples
        g = max(1, math.ceil(len(big) / 2))
        nodes, weights = np.polynomial.legendre.leggauss(g)
        u, w = (nodes + 1) / 2, weights / 2
        # a[r], b[r] over the items processed so far (``done`` of them): the u-weighted number of r-subsets
        # meeting the constraints, divided by C(done, r); b is its derivative towards the correct answers
        a = np.zeros((n + 1, g))
        a[: rest + 1] = 1.0
        b = np.zeros((n + 1, g))
        done = rest
        for ci in big:
            s = int(sizes[ci])
            new_a = np.zeros_like(a)
            new_b = np.zeros_like(b)
            old = np.arange(done + 1)
            v = np.arange(m + 1)
            # h[r, v]: the hypergeometric weight of taking v of this answer's s samples next to r of the others
            h = np.exp(log_comb(done, old)[:, None] + log_comb(s, v)[None, :]
                       - log_comb(done + s, old[:, None] + v[None, :]))
            a_old, b_old = a[: done + 1], b[: done + 1]
            b_zero = not b_old.any()
            for j in range(m):  # fewer than m votes: no constraint, no tie
                new_a[j: j + done + 1] += a_old * h[:, j: j + 1]
                if not b_zero:
                    new_b[j: j + done + 1] += b_old * h[:, j: j + 1]
            # exactly m votes: tied with t (factor u), or t itself (the derivative term)
            hm = h[:, m: m + 1]
            new_a[m: m + done + 1] += a_old * hm * u
            new_b[m: m + done + 1] += (b_old * u + corr[ci] * a_old) * hm
            a, b = new_a, new_b
            done += s
        total += b @ w
    return np.clip(total[ks], 0.0, 1.0)


def calibrated_rewards(rewards: Sequence[float | None]) -> np.ndarray:
    """Each sample's calibrated reward (mid-rank quantile among the question's rewarded samples); NaN for a
    sample without a reward."""
    r = np.array([np.nan if v is None else float(v) for v in rewards], dtype=float)
    ok = ~np.isnan(r)
    out = np.full(r.size, np.nan)
    vals = r[ok]
    m = vals.size
    if m == 0:
        return out
    srt = np.sort(vals)
    less = np.searchsorted(srt, vals, side="left")
    leq = np.searchsorted(srt, vals, side="right")
    out[ok] = (less + 0.5 * (leq - less)) / m
    return out


def win_rates(rewards: Sequence[float | None], ns: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Best-of-N win rate, Worst-of-N win rate) against one independent base sample, judged by the reward,
    ties counting half, for N in ``ns`` (default 1 .. m-1, m = rewarded samples; NaN where N > m - 1)."""
    r = np.array([np.nan if v is None else float(v) for v in rewards], dtype=float)
    vals = r[~np.isnan(r)]
    m = vals.size
    ns = np.arange(1, max(m, 1)) if ns is None else np.asarray(ns, dtype=int)
    best = np.full(ns.size, np.nan)
    worst = np.full(ns.size, np.nan)
    valid = (ns >= 1) & (ns <= m - 1)
    if not valid.any():
        return best, worst
    srt = np.sort(vals)
    lower = np.searchsorted(srt, vals, side="left")  # others strictly below
    equal = np.searchsorted(srt, vals, side="right") - lower - 1  # others tied, the sample itself excluded
    higher = m - 1 - lower - equal
    lf = _log_factorials(m - 1)
    nv = ns[valid][None, :]
    below = _ratio(lf, lower[:, None], nv, m - 1)  # P(max of the N others < r_z)
    at_most = _ratio(lf, (lower + equal)[:, None], nv, m - 1)
    above = _ratio(lf, higher[:, None], nv, m - 1)  # P(min of the N others > r_z)
    at_least = _ratio(lf, (higher + equal)[:, None], nv, m - 1)
    best[valid] = (1.0 - 0.5 * (below + at_most)).mean(axis=0)
    worst[valid] = (0.5 * (above + at_least)).mean(axis=0)
    return best, worst
