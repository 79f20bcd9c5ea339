"""The Monkeys fit log(coverage) = a * k^b recovers known a and b, noise-free and noisy, and extrapolates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from itas.sampling.scaling import (
    extrapolation_points,
    fit_many,
    fit_points,
    fit_power_law,
    predict_many,
)


@pytest.mark.parametrize("a,b", [(-1.2, -0.35), (-3.0, -0.8), (-0.5, -0.05), (-2.0, -1.5), (-0.2, 0.3)])
def test_recovers_a_and_b_without_noise(a, b):
    ks = np.arange(1, 129)
    fit = fit_power_law(ks, np.exp(a * ks ** b))
    assert fit.status == "ok"
    assert fit.a == pytest.approx(a, abs=1e-6) and fit.b == pytest.approx(b, abs=1e-6)
    assert fit.rmse_log < 1e-6
    assert fit.predict([1000]) == pytest.approx(math.exp(a * 1000 ** b), rel=1e-5)


def test_recovers_a_and_b_from_noisy_curves():
    rng = np.random.default_rng(0)
    ks = fit_points(256).astype(float)
    a, b = -1.5, -0.4
    errors = []
    for _ in range(50):
        y = a * ks ** b * (1 + rng.normal(0, 0.03, ks.size))  # 3% relative noise on log(coverage)
        fit = fit_power_law(ks, np.exp(y))
        errors.append((fit.a - a, fit.b - b))
    errors = np.array(errors)
    assert np.abs(errors.mean(axis=0)).max() < 0.01  # unbiased
    assert np.abs(errors).max(axis=0)[0] < 0.1 and np.abs(errors).max(axis=0)[1] < 0.05


def test_fit_many_fits_every_row_like_one_fit():
    ks = fit_points(64)
    rows = np.array([np.exp(a * ks.astype(float) ** b) for a, b in [(-1, -0.3), (-2, -0.6), (-0.4, -0.1)]])
    a, b, rmse = fit_many(ks, rows)
    assert a == pytest.approx([-1, -2, -0.4], abs=1e-6) and b == pytest.approx([-0.3, -0.6, -0.1], abs=1e-6)
    assert rmse == pytest.approx([0, 0, 0], abs=1e-6)
    assert predict_many(a, b, [1, 10]) == pytest.approx(
        np.exp(np.array([[-1, -1 * 10 ** -0.3], [-2, -2 * 10 ** -0.6], [-0.4, -0.4 * 10 ** -0.1]])), rel=1e-5)


def test_degenerate_curves():
    ks = np.arange(1, 9)
    saturated = fit_power_law(ks, np.ones(8))
    assert saturated.status == "saturated" and saturated.a == 0 and saturated.predict([100]) == pytest.approx([1])
    assert fit_power_law(ks, np.zeros(8)).status == "no_coverage"
    assert fit_power_law([1], [0.5]).status == "too_few_points"
    a, b, _ = fit_many(ks, np.array([np.zeros(8), np.ones(8)]))
    assert np.isnan(a[0]) and a[1] == 0 and np.isnan(b[1])
    assert predict_many(a, b, [5])[:, 0] == pytest.approx([np.nan, 1.0], nan_ok=True)


def test_fit_points_are_log_spaced_and_extrapolation_goes_beyond_k():
    assert list(fit_points(8)) == [1, 2, 3, 4, 6, 8]
    pts = fit_points(1000)
    assert pts[0] == 1 and pts[-1] == 1000 and 20 <= len(pts) <= 24  # rounding merges a few small k
    ratios = pts[8:][1:] / pts[8:][:-1]
    assert ratios.max() < 1.5 and ratios.min() > 1.2  # log-spaced: every decade weighs the same
    assert extrapolation_points(64) == [100, 128, 256, 512, 1000, 1024, 10000]
    assert min(extrapolation_points(5000)) == 10000
