"""Bootstrap intervals and the paired sign-flip test on known cases."""

from __future__ import annotations

import math
from math import comb

import numpy as np
import pytest

from itas.report.stats import (
    bootstrap_interval,
    paired_bootstrap,
    paired_test,
    sign_flip_test,
)


def test_bootstrap_width_for_400_bernoulli_half_matches_the_normal_approximation():
    scores = np.array([1.0] * 200 + [0.0] * 200)
    np.random.default_rng(3).shuffle(scores)
    ci = bootstrap_interval(scores, seed=1)
    expected = 2 * 1.96 * math.sqrt(0.25 / 400)
    assert ci.estimate == 0.5
    assert abs(ci.width - expected) <= 0.1 * expected, (ci, expected)
    assert ci.lo < 0.5 < ci.hi


def test_bootstrap_width_on_random_bernoulli_draws_over_seeds():
    for seed in range(5):
        scores = np.random.default_rng(seed).binomial(1, 0.5, size=400).astype(float)
        ci = bootstrap_interval(scores, seed=seed)
        p = scores.mean()
        expected = 2 * 1.96 * math.sqrt(p * (1 - p) / 400)
        assert abs(ci.width - expected) <= 0.1 * expected


def test_bootstrap_degenerate_cases():
    assert math.isnan(bootstrap_interval([]).estimate)
    one = bootstrap_interval([1.0])
    assert (one.estimate, one.lo, one.hi) == (1.0, 1.0, 1.0)
    same = bootstrap_interval([0.0] * 10)
    assert (same.lo, same.hi) == (0.0, 0.0)


def test_bootstrap_is_seeded_and_leaves_global_state_alone():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = bootstrap_interval([0, 1, 1, 0, 1], seed=7)
    assert np.random.random() == before
    assert a == bootstrap_interval([0, 1, 1, 0, 1], seed=7)


def test_identical_scores_give_p_one_and_a_zero_difference():
    a = [1, 0, 1, 1, 0, 0, 1]
    p, exact = sign_flip_test(a, a)
    assert p == 1.0 and exact
    t = paired_test(a, a)
    assert t.difference.estimate == 0 and t.difference.lo == 0 and t.difference.hi == 0
    assert t.a_better == t.b_better == 0


def test_clearly_better_gives_a_small_p():
    a = [1.0] * 30
    b = [0.0] * 20 + [1.0] * 10
    p, exact = sign_flip_test(a, b)
    assert exact and p == pytest.approx(2 * 0.5 ** 20)
    t = paired_test(a, b)
    assert t.p_value < 1e-5 and t.difference.estimate == pytest.approx(20 / 30) and t.difference.lo > 0.4
    assert (t.a_better, t.b_better) == (20, 0)


def test_binary_scores_give_the_exact_mcnemar_p_value():
    # 10 discordant pairs: 8 where a is right and b wrong, 2 the other way; 5 concordant
    a = [1] * 8 + [0] * 2 + [1, 1, 0, 0, 1]
    b = [0] * 8 + [1] * 2 + [1, 1, 0, 0, 1]
    p, exact = sign_flip_test(a, b)
    mcnemar = min(1.0, 2 * sum(comb(10, k) for k in range(8, 11)) / 2 ** 10)
    assert exact and p == pytest.approx(mcnemar)
    # symmetric in its arguments
    assert sign_flip_test(b, a)[0] == pytest.approx(p)


def test_fractional_scores_exact_agrees_with_enumeration():
    rng = np.random.default_rng(0)
    a = rng.random(12)
    b = rng.random(12)
    p, exact = sign_flip_test(a, b)
    d = a - b
    signs = np.array(np.meshgrid(*[[-1, 1]] * 12)).reshape(12, -1).T
    brute = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-9)
    assert exact and p == pytest.approx(brute)


def test_many_distinct_differences_fall_back_to_seeded_sampling():
    rng = np.random.default_rng(1)
    a = rng.random(60)
    b = a - 0.05 - rng.random(60) * 0.01  # a is better on every question
    p, exact = sign_flip_test(a, b, draws=2000, seed=0)
    assert not exact and p < 0.01
    assert sign_flip_test(a, b, draws=2000, seed=0)[0] == p


def test_paired_bootstrap_interval_covers_the_difference():
    a = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1] * 4
    b = [1, 0, 1, 0, 0, 1, 0, 1, 0, 1] * 4
    ci = paired_bootstrap(a, b, seed=2)
    assert ci.estimate == pytest.approx(0.3) and ci.lo < 0.3 < ci.hi and ci.lo > 0


def test_paired_scores_must_have_the_same_length():
    with pytest.raises(ValueError, match="same questions"):
        paired_test([1, 0], [1])
