"""The Large Language Monkeys scaling law: log(coverage(k)) ≈ a * k^b (coverage ≈ exp(a * k^b), a <= 0).

The fit is least squares on log(coverage) at log-spaced k (``fit_points``: each decade of k weighs the same,
instead of the large k, which are most of 1..K, dominating). For a fixed b the best a is closed-form
(a = sum(y x) / sum(x^2), x = k^b), so the sum of squares is profiled over b alone: a grid over
[``B_MIN``, ``B_MAX``] and then a golden-section search around the best grid point. Vectorised over many
curves at once (the bootstrap replicates). numpy only.

Degenerate curves: coverage 1 at every k is ``saturated`` (a = 0, b undefined, predicted coverage 1); a curve
with zero coverage has no fit (``no_coverage``); fewer than two distinct k have none (``too_few_points``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

B_MIN, B_MAX = -4.0, 2.0
_GRID = np.linspace(B_MIN, B_MAX, 1201)
_GOLDEN = (math.sqrt(5) - 1) / 2


def fit_points(k_max: int, count: int = 24) -> np.ndarray:
    """Log-spaced integers from 1 to ``k_max`` (both included), at most ``count`` of them."""
    if k_max < 1:
        return np.array([], dtype=int)
    return np.unique(np.round(np.geomspace(1, k_max, min(k_max, count))).astype(int))


@dataclass(frozen=True)
class PowerLawFit:
    """One fitted curve. ``status``: ``ok``, ``saturated``, ``no_coverage`` or ``too_few_points``."""

    a: float
    b: float
    status: str
    rmse_log: float = math.nan  # residual root mean square of log(coverage) at the fit points

    def predict(self, k) -> np.ndarray:
        """Predicted coverage at ``k`` (NaN without a fit)."""
        k = np.asarray(k, dtype=float)
        if self.status == "saturated":
            return np.ones_like(k)
        if self.status != "ok":
            return np.full_like(k, np.nan)
        return np.exp(self.a * k ** self.b)

    def to_dict(self) -> dict:
        return {"a": _num(self.a), "b": _num(self.b), "status": self.status, "rmse_log": _num(self.rmse_log)}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _sse(y: np.ndarray, k: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of squares, a) per row of ``y`` for its own exponent ``b`` (one per row)."""
    x = k[None, :] ** b[:, None]
    xy = (x * y).sum(axis=1)
    xx = (x * x).sum(axis=1)
    a = xy / xx
    return (y * y).sum(axis=1) - xy * a, a


def fit_many(ks, coverage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every row of ``coverage`` (rows x len(ks)) -> (a, b, rmse_log) arrays. A row with a non-positive or
    non-finite coverage gets NaN; a saturated row (all coverage 1) gets a = 0 and b = NaN."""
    k = np.asarray(ks, dtype=float)
    cov = np.atleast_2d(np.asarray(coverage, dtype=float))
    rows = cov.shape[0]
    a_out = np.full(rows, np.nan)
    b_out = np.full(rows, np.nan)
    rmse = np.full(rows, np.nan)
    if k.size < 2 or rows == 0:
        return a_out, b_out, rmse
    valid = np.all(np.isfinite(cov) & (cov > 0), axis=1)
    y_all = np.log(np.where(valid[:, None], np.minimum(cov, 1.0), 1.0))
    saturated = valid & np.all(y_all >= -1e-15, axis=1)
    a_out[saturated] = 0.0
    rmse[saturated] = 0.0
    todo = np.flatnonzero(valid & ~saturated)
    if todo.size == 0:
        return a_out, b_out, rmse
    y = y_all[todo]
    # grid over b
    x = k[None, :] ** _GRID[:, None]  # grid x points
    xy = y @ x.T
    xx = (x * x).sum(axis=1)
    sse = (y * y).sum(axis=1)[:, None] - xy * xy / xx[None, :]
    best = np.argmin(sse, axis=1)
    step = _GRID[1] - _GRID[0]
    lo = np.maximum(_GRID[best] - step, B_MIN)
    hi = np.minimum(_GRID[best] + step, B_MAX)
    # golden-section refinement, every row at once (both interior points re-evaluated: simple, and cheap here)
    for _ in range(70):
        c = hi - _GOLDEN * (hi - lo)
        d = lo + _GOLDEN * (hi - lo)
        fc, _ = _sse(y, k, c)
        fd, _ = _sse(y, k, d)
        left = fc < fd
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    b = (lo + hi) / 2
    s, a = _sse(y, k, b)
    a_out[todo] = a
    b_out[todo] = b
    rmse[todo] = np.sqrt(np.maximum(s, 0.0) / k.size)
    return a_out, b_out, rmse


def fit_power_law(ks, coverage) -> PowerLawFit:
    """Fit one coverage curve measured at ``ks``."""
    k = np.asarray(ks, dtype=float)
    cov = np.asarray(coverage, dtype=float)
    if np.unique(k).size < 2:
        return PowerLawFit(math.nan, math.nan, "too_few_points")
    keep = np.isfinite(cov) & (cov > 0)
    if not keep.any():
        return PowerLawFit(math.nan, math.nan, "no_coverage")
    k, cov = k[keep], cov[keep]
    if np.unique(k).size < 2:
        return PowerLawFit(math.nan, math.nan, "too_few_points")
    a, b, rmse = fit_many(k, cov[None, :])
    if a[0] == 0.0 and math.isnan(b[0]):
        return PowerLawFit(0.0, math.nan, "saturated", 0.0)
    return PowerLawFit(float(a[0]), float(b[0]), "ok", float(rmse[0]))


def predict_many(a: np.ndarray, b: np.ndarray, ks) -> np.ndarray:
    """Coverage predicted by each (a, b) pair at ``ks`` -> rows x len(ks); saturated rows (a = 0, b NaN) give 1,
    rows without a fit NaN."""
    a = np.asarray(a, dtype=float)[:, None]
    b = np.asarray(b, dtype=float)[:, None]
    k = np.asarray(ks, dtype=float)[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.exp(a * k ** b)
    saturated = (a == 0) & np.isnan(b)
    return np.where(saturated, 1.0, out)


def extrapolation_points(k_max: int) -> list[int]:
    """Where to extrapolate beyond the measured K: 2K, 4K, 8K, 16K, and 100, 1000, 10000 when above K."""
    points = {k_max * f for f in (2, 4, 8, 16)} | {p for p in (100, 1000, 10000) if p > k_max}
    return sorted(points)
