"""From each question's samples to the tables of a sampling run: curves over k, the scaling-law fit, the
Best/Worst-of-N win rates and the calibration of the reward. Pure: arrays in, plain dicts out.

Every table value is the mean over questions of an exact per-question estimate (``estimators``), with a
percentile bootstrap interval over questions (``bootstrap``); the fit is refitted on every bootstrap replicate
of the coverage curve, which gives the intervals of a, b and of the extrapolated coverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from itas.sampling import estimators as est
from itas.sampling.bootstrap import mean_interval, percentile_interval, resample_weights
from itas.sampling.scaling import extrapolation_points, fit_many, fit_points, fit_power_law, predict_many

FIT_FORM = "log(coverage) = a * k^b"


@dataclass(frozen=True)
class QuestionSamples:
    """One question's first k samples: correctness (0/1, or a fraction), voting answers (None: no answer),
    rewards (NaN: none) and completion tokens."""

    id: str
    correct: np.ndarray
    answers: tuple
    rewards: np.ndarray | None = None
    completion_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return int(self.correct.size)


@dataclass(frozen=True)
class SamplingTables:
    curves: list[dict]
    fit: dict
    winrate: list[dict] | None
    calibration: dict | None
    summary: dict

    def to_dict(self) -> dict:
        return {"summary": self.summary, "curves": self.curves, "fit": self.fit, "winrate": self.winrate,
                "calibration": self.calibration}


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def analyse(questions: Sequence[QuestionSamples], k: int, *, reward: bool = False, bootstrap: int = 1000,
            seed: int = 0, level: float = 0.95) -> SamplingTables:
    """The tables for ``k`` samples per question (every question must have at least k; the first k are used)."""
    qs = list(questions)
    if not qs:
        raise ValueError("no question to analyse")
    if k < 1:
        raise ValueError("k must be at least 1")
    short = [q.id for q in qs if q.n < k]
    if short:
        raise ValueError(f"{len(short)} question(s) have fewer than {k} samples: {short[:3]}")
    ks = np.arange(1, k + 1)
    weights = resample_weights(len(qs), bootstrap, seed)

    cov = np.array([est.pass_at_k(q.correct[:k] > 0.5, ks) for q in qs])
    vote = np.array([est.vote_at_k(q.answers[:k], q.correct[:k], ks) for q in qs])
    cov_i = mean_interval(cov, weights, level)
    vote_i = mean_interval(vote, weights, level)
    tokens = np.array([float(np.mean(q.completion_tokens[:k])) if q.completion_tokens.size else 0.0 for q in qs])
    mean_tokens = float(tokens.mean())

    bon_i = won_i = None
    if reward:
        rewards = [q.rewards[:k] if q.rewards is not None else np.full(k, np.nan) for q in qs]
        bon_i = mean_interval(np.array([est.best_of_n_at_k(r, q.correct[:k], ks) for r, q in zip(rewards, qs, strict=True)]),
                              weights, level)
        won_i = mean_interval(np.array([est.worst_of_n_at_k(r, q.correct[:k], ks) for r, q in zip(rewards, qs, strict=True)]),
                              weights, level)

    fit = _fit(cov_i, k, level, bootstrap)
    predicted = fit.pop("_predicted")
    curves = []
    for j, kk in enumerate(ks):
        row = {"k": int(kk), "coverage": _num(cov_i.mean[j]), "coverage_lo": _num(cov_i.lo[j]),
               "coverage_hi": _num(cov_i.hi[j]), "coverage_fit": _num(predicted[j]),
               "vote": _num(vote_i.mean[j]), "vote_lo": _num(vote_i.lo[j]), "vote_hi": _num(vote_i.hi[j])}
        if bon_i is not None and won_i is not None:
            row.update({"best_of_n": _num(bon_i.mean[j]), "best_of_n_lo": _num(bon_i.lo[j]),
                        "best_of_n_hi": _num(bon_i.hi[j]), "worst_of_n": _num(won_i.mean[j]),
                        "worst_of_n_lo": _num(won_i.lo[j]), "worst_of_n_hi": _num(won_i.hi[j])})
        row["completion_tokens"] = _num(kk * mean_tokens)
        curves.append(row)

    winrate = calibration = None
    if reward:
        winrate, calibration = _winrate(qs, k, weights, level, bon_i, won_i)

    summary = {"questions": len(qs), "k": k, "pass@1": curves[0]["coverage"], f"coverage@{k}": curves[-1]["coverage"],
               f"vote@{k}": curves[-1]["vote"], "mean_completion_tokens": _num(mean_tokens),
               "bootstrap": bootstrap, "level": level}
    if reward:
        summary[f"best_of_n@{k}"] = curves[-1]["best_of_n"]
        summary[f"worst_of_n@{k}"] = curves[-1]["worst_of_n"]
    summary["fit"] = {key: fit[key] for key in ("status", "a", "b")}
    return SamplingTables(curves=curves, fit=fit, winrate=winrate, calibration=calibration, summary=summary)


def _fit(cov_i, k: int, level: float, bootstrap: int) -> dict:
    points = fit_points(k)
    measured = cov_i.mean[points - 1]
    point = fit_power_law(points, measured)
    a_reps, b_reps, _ = fit_many(points, cov_i.replicates[:, points - 1])
    fitted = np.isfinite(a_reps)
    a_lo, a_hi = percentile_interval(a_reps, level)
    b_lo, b_hi = percentile_interval(b_reps, level)
    extra = extrapolation_points(k)
    ks = np.arange(1, k + 1)
    predicted = point.predict(ks)
    extrapolation = []
    if point.status in ("ok", "saturated"):
        reps = predict_many(a_reps[fitted], b_reps[fitted], extra) if fitted.any() else np.zeros((0, len(extra)))
        lo, hi = percentile_interval(reps, level)
        values = point.predict(extra)
        extrapolation = [{"k": int(e), "coverage": _num(v), "lo": _num(l_), "hi": _num(h_)}
                         for e, v, l_, h_ in zip(extra, values, lo, hi, strict=True)]
    curve = []
    if point.status in ("ok", "saturated"):
        dense = np.unique(np.round(np.geomspace(1, max(extra), 80)).astype(int))
        values = point.predict(dense)
        reps = predict_many(a_reps[fitted], b_reps[fitted], dense) if fitted.any() else np.zeros((0, dense.size))
        lo, hi = percentile_interval(reps, level)
        curve = [{"k": int(e), "coverage": _num(v), "lo": _num(l_), "hi": _num(h_)}
                 for e, v, l_, h_ in zip(dense, values, lo, hi, strict=True)]
    rmse = np.sqrt(np.nanmean((predicted - cov_i.mean) ** 2)) if point.status in ("ok", "saturated") else np.nan
    return {
        "form": FIT_FORM, "status": point.status,
        "a": _num(point.a), "a_lo": _num(a_lo[0]), "a_hi": _num(a_hi[0]),
        "b": _num(point.b), "b_lo": _num(b_lo[0]), "b_hi": _num(b_hi[0]),
        "rmse_log": _num(point.rmse_log), "rmse_coverage": _num(rmse),
        "fit_k": [int(p) for p in points], "measured_k_max": k, "level": level, "bootstrap": bootstrap,
        "bootstrap_fitted": int(fitted.sum()), "extrapolation": extrapolation, "curve": curve,
        "_predicted": predicted,
    }


def _winrate(qs, k: int, weights, level: float, bon_i, won_i) -> tuple[list[dict], dict]:
    ns = np.arange(1, k)
    best = np.full((len(qs), ns.size), np.nan)
    worst = np.full((len(qs), ns.size), np.nan)
    calibrated: list[np.ndarray] = []
    ties: list[float] = []
    w1: list[float] = []
    missing = 0
    for i, q in enumerate(qs):
        r = q.rewards[:k] if q.rewards is not None else np.full(k, np.nan)
        missing += int(np.isnan(r).sum())
        if ns.size:
            best[i], worst[i] = est.win_rates(r, ns)
        c = est.calibrated_rewards(r)
        c = np.sort(c[np.isfinite(c)])
        m = c.size
        if m:
            calibrated.append(c)
            w1.append(float(np.mean(np.abs(c - (np.arange(1, m + 1) - 0.5) / m))))
        if m >= 2:
            _, counts = np.unique(r[np.isfinite(r)], return_counts=True)
            ties.append(float((counts * (counts - 1)).sum() / (m * (m - 1))))
    best_i = mean_interval(best, weights, level)
    worst_i = mean_interval(worst, weights, level)
    used = np.isfinite(best).sum(axis=0)
    rows = []
    for j, n in enumerate(ns):
        rows.append({"n": int(n), "best_win_rate": _num(best_i.mean[j]), "best_lo": _num(best_i.lo[j]),
                     "best_hi": _num(best_i.hi[j]), "best_ideal": n / (n + 1),
                     "worst_win_rate": _num(worst_i.mean[j]), "worst_lo": _num(worst_i.lo[j]),
                     "worst_hi": _num(worst_i.hi[j]), "worst_ideal": 1 / (n + 1),
                     "best_correct": _num(bon_i.mean[n - 1]), "worst_correct": _num(won_i.mean[n - 1]),
                     "questions": int(used[j])})
    pooled = np.sort(np.concatenate(calibrated)) if calibrated else np.zeros(0)
    total = pooled.size
    if total:
        i = np.arange(1, total + 1)
        ks_distance = float(max(np.max(i / total - pooled), np.max(pooled - (i - 1) / total)))
        density, edges = np.histogram(pooled, bins=10, range=(0.0, 1.0), density=True)
    else:
        ks_distance, density, edges = math.nan, np.zeros(10), np.linspace(0, 1, 11)
    calibration = {
        "rewarded_samples": int(total), "missing_rewards": missing,
        "tie_rate": _num(np.mean(ties)) if ties else None,
        "w1_from_uniform": _num(np.mean(w1)) if w1 else None,
        "ks_from_uniform": _num(ks_distance),
        "histogram": {"edges": [float(e) for e in edges], "density": [float(d) for d in density]},
    }
    return rows, calibration
