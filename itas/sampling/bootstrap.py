"""Percentile bootstrap over questions.

A replicate draws the questions with replacement (multinomial counts, seeded); every curve of one replicate
uses the same draw, so intervals of different curves (and of the fit) are consistent with each other. Each
question's curve is exact over its own samples (see ``estimators``), so the intervals reflect which questions
were asked, not the finite number of samples per question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def resample_weights(questions: int, replicates: int, seed: int) -> np.ndarray:
    """replicates x questions: how many times each question is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    if questions == 0:
        return np.zeros((replicates, 0))
    return rng.multinomial(questions, np.full(questions, 1.0 / questions), size=replicates).astype(float)


@dataclass(frozen=True)
class Interval:
    mean: np.ndarray  # over the questions (NaN entries left out)
    lo: np.ndarray
    hi: np.ndarray
    replicates: np.ndarray  # replicates x columns

    def rows(self) -> int:
        return self.mean.size


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) percentiles of each column, NaN replicates left out (NaN if none is left)."""
    tail = (1.0 - level) / 2 * 100
    reps = np.asarray(replicates, dtype=float)
    if reps.ndim == 1:
        reps = reps[:, None]
    lo = np.full(reps.shape[1], np.nan)
    hi = np.full(reps.shape[1], np.nan)
    for j in range(reps.shape[1]):
        col = reps[:, j]
        col = col[np.isfinite(col)]
        if col.size:
            lo[j], hi[j] = np.percentile(col, [tail, 100 - tail])
    return lo, hi


def mean_interval(matrix: np.ndarray, weights: np.ndarray, level: float = 0.95) -> Interval:
    """Column means of ``matrix`` (questions x columns, NaN = the question has no value there) with percentile
    bootstrap intervals from ``weights`` (``resample_weights``)."""
    m = np.asarray(matrix, dtype=float)
    present = np.isfinite(m)
    filled = np.where(present, m, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        count = present.sum(axis=0)
        mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
        reps = (weights @ filled) / (weights @ present.astype(float))
    lo, hi = percentile_interval(reps, level)
    return Interval(mean=mean, lo=lo, hi=hi, replicates=reps)
