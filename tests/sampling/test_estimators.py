"""The per-question estimators against exact values on hand-made vectors and against brute-force enumeration of
every subset (and, for win rates, every base sample) on small n."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from itas.sampling.estimators import (
    best_of_n_at_k,
    calibrated_rewards,
    pass_at_k,
    vote_at_k,
    win_rates,
    worst_of_n_at_k,
)


# ---- brute force: the definitions, enumerated ----------------------------------------------------------------
def subsets(n, k):
    return list(itertools.combinations(range(n), k))


def brute_pass(correct, k):
    s = subsets(len(correct), k)
    return sum(any(correct[i] for i in sub) for sub in s) / len(s)


def brute_vote(answers, correct, k):
    """Majority over the subset; samples without an answer do not vote; a tie is a uniform draw among the tied
    answers; a winning answer is worth the mean correctness of all samples that gave it; no vote is worth 0."""
    value = {}
    for a, c in zip(answers, correct, strict=True):
        if a is not None:
            value.setdefault(a, []).append(c)
    value = {a: sum(v) / len(v) for a, v in value.items()}
    total = 0.0
    s = subsets(len(answers), k)
    for sub in s:
        counts = {}
        for i in sub:
            if answers[i] is not None:
                counts[answers[i]] = counts.get(answers[i], 0) + 1
        if counts:
            top = max(counts.values())
            tied = [a for a, c in counts.items() if c == top]
            total += sum(value[a] for a in tied) / len(tied)
    return total / len(s)


def brute_select(rewards, correct, k, mode):
    """Keep the highest (lowest) reward of the subset; ties: a uniform draw among the tied; no reward: ranked
    after every rewarded sample; none rewarded: a uniform draw among all."""
    total = 0.0
    s = subsets(len(rewards), k)
    for sub in s:
        scored = [i for i in sub if rewards[i] is not None]
        if scored:
            target = (max if mode == "best" else min)(rewards[i] for i in scored)
            kept = [i for i in scored if rewards[i] == target]
        else:
            kept = list(sub)
        total += sum(correct[i] for i in kept) / len(kept)
    return total / len(s)


def brute_win(rewards, n_pick, mode):
    """Over every base sample z and every N-subset of the others: does the pick beat z (ties half)?"""
    r = [x for x in rewards if x is not None]
    total, count = 0.0, 0
    for z in range(len(r)):
        others = [i for i in range(len(r)) if i != z]
        for sub in itertools.combinations(others, n_pick):
            pick = (max if mode == "best" else min)(r[i] for i in sub)
            total += 1.0 if pick > r[z] else 0.5 if pick == r[z] else 0.0
            count += 1
    return total / count


def random_cases(seed, count, n_max=9):
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.randint(1, n_max)
        yield rng, n


# ---- pass@k -------------------------------------------------------------------------------------------------
def test_pass_at_k_exact_values():
    # n = 5, c = 2: 1 - C(3, k) / C(5, k)
    got = pass_at_k([1, 0, 1, 0, 0])
    expected = [1 - Fraction(comb(3, k), comb(5, k)) for k in range(1, 6)]
    assert expected == [Fraction(2, 5), Fraction(7, 10), Fraction(9, 10), 1, 1]
    assert got == pytest.approx([float(e) for e in expected], abs=1e-12)
    assert pass_at_k([0, 0, 0]) == pytest.approx([0, 0, 0])
    assert pass_at_k([1, 1]) == pytest.approx([1, 1])
    assert pass_at_k([True] + [False] * 99, [1, 10, 100]) == pytest.approx([0.01, 0.1, 1.0], abs=1e-12)


def test_pass_at_k_matches_brute_force():
    for rng, n in random_cases(0, 60):
        correct = [rng.random() < 0.4 for _ in range(n)]
        got = pass_at_k(correct)
        assert got == pytest.approx([brute_pass(correct, k) for k in range(1, n + 1)], abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    correct = np.zeros(2000, dtype=bool)
    correct[:3] = True
    got = pass_at_k(correct, [1, 1000, 2000])
    exact = [1 - Fraction(comb(1997, k), comb(2000, k)) for k in (1, 1000, 2000)]
    assert got == pytest.approx([float(e) for e in exact], abs=1e-10)


def test_k_out_of_range_is_an_error():
    with pytest.raises(ValueError):
        pass_at_k([1, 0], [3])
    with pytest.raises(ValueError):
        vote_at_k(["a"], [1], [0])


# ---- majority vote@k ----------------------------------------------------------------------------------------
def test_vote_exact_values():
    # k=2: {a,a} -> a (1); {a,b} twice -> a tie, half each -> (1 + .5 + .5) / 3
    assert vote_at_k(["a", "a", "b"], [1, 1, 0]) == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert vote_at_k(["a", "b"], [1, 0]) == pytest.approx([0.5, 0.5])  # a tie is a coin flip
    # samples with no answer do not vote; a subset with no vote at all is wrong
    assert vote_at_k([None, "a"], [0, 1]) == pytest.approx([0.5, 1.0])
    assert vote_at_k([None, None], [1, 1]) == pytest.approx([0.0, 0.0])
    # k=2: half of the pairs are {x, r}, a tie won half the time; from k=3 on the wrong majority wins
    assert vote_at_k(["x", "x", "x", "r"], [0, 0, 0, 1]) == pytest.approx([0.25, 0.25, 0.0, 0.0])


def test_vote_matches_brute_force():
    for rng, n in random_cases(1, 150):
        alphabet = [None, "a", "b", "c", "d", "e"][: rng.randint(2, 6)]
        answers = [rng.choice(alphabet) for _ in range(n)]
        right = {a: rng.random() < 0.5 for a in alphabet}
        correct = [float(right[a]) for a in answers]
        got = vote_at_k(answers, correct)
        assert got == pytest.approx([brute_vote(answers, correct, k) for k in range(1, n + 1)], abs=1e-12)


def test_vote_with_several_correct_answers_and_uneven_correctness():
    # e.g. programs that differ in text but all pass: several correct "answers"; and an answer whose samples
    # were graded differently (a non-deterministic scorer) is worth its mean correctness
    for rng, n in random_cases(2, 80, n_max=10):
        answers = [rng.choice(["p", "q", "r", "s", None]) for _ in range(n)]
        correct = [float(rng.random() < 0.5) for _ in range(n)]
        got = vote_at_k(answers, correct)
        assert got == pytest.approx([brute_vote(answers, correct, k) for k in range(1, n + 1)], abs=1e-12)


def test_vote_many_distinct_answers_is_fast_and_exact_at_k1():
    answers = list(range(200))  # every answer distinct: each vote is a tie among k answers
    correct = [float(i % 4 == 0) for i in answers]
    got = vote_at_k(answers, correct)
    assert got == pytest.approx(np.full(200, 0.25), abs=1e-9)


# ---- Best-of-N@k / Worst-of-N@k ----------------------------------------------------------------------------
def test_best_and_worst_of_n_exact_values():
    rewards, correct = [3, 1, 2, 2], [0, 1, 1, 0]
    assert best_of_n_at_k(rewards, correct)[0] == pytest.approx(0.5)  # k = 1: a random sample
    assert best_of_n_at_k(rewards, correct)[-1] == pytest.approx(0.0)  # all four: reward 3 is wrong
    assert worst_of_n_at_k(rewards, correct)[-1] == pytest.approx(1.0)  # reward 1 is right
    # ties: a uniform draw among the tied
    assert best_of_n_at_k([5, 5], [1, 0]) == pytest.approx([0.5, 0.5])
    # no reward (an unparsable judgement) is ranked after every rewarded sample, in either mode
    assert best_of_n_at_k([None, 1], [1, 0]) == pytest.approx([0.5, 0.0])
    assert worst_of_n_at_k([None, 1], [1, 0]) == pytest.approx([0.5, 0.0])
    assert best_of_n_at_k([None, float("nan")], [1, 0]) == pytest.approx([0.5, 0.5])


def test_best_and_worst_of_n_match_brute_force():
    for rng, n in random_cases(3, 120):
        rewards = [rng.choice([None, 1, 2, 3, 4, 5.5]) for _ in range(n)]
        correct = [float(rng.random() < 0.5) for _ in range(n)]
        for mode, fn in (("best", best_of_n_at_k), ("worst", worst_of_n_at_k)):
            got = fn(rewards, correct)
            want = [brute_select(rewards, correct, k, mode) for k in range(1, n + 1)]
            assert got == pytest.approx(want, abs=1e-12), (mode, rewards, correct)


def test_selection_at_k1_is_pass_at_1():
    rng = random.Random(4)
    rewards = [rng.random() for _ in range(30)]
    correct = [float(rng.random() < 0.3) for _ in range(30)]
    assert best_of_n_at_k(rewards, correct)[0] == pytest.approx(np.mean(correct))
    assert worst_of_n_at_k(rewards, correct)[0] == pytest.approx(np.mean(correct))


# ---- calibrated reward --------------------------------------------------------------------------------------
def test_calibrated_rewards_of_distinct_samples_are_the_uniform_quantiles():
    rng = random.Random(5)
    for n in (1, 2, 7, 50):
        rewards = [rng.gauss(0, 3) for _ in range(n)]
        cal = calibrated_rewards(rewards)
        assert sorted(cal) == pytest.approx([(i - 0.5) / n for i in range(1, n + 1)])
        # each sample's value is its own quantile: its rank
        ranks = np.argsort(np.argsort(rewards)) + 1
        assert cal == pytest.approx((ranks - 0.5) / n)


def test_calibrated_rewards_with_ties_and_missing():
    cal = calibrated_rewards([1, 1, 2, None])
    assert cal[:3] == pytest.approx([1 / 3, 1 / 3, 5 / 6])  # mid-ranks: (0 + 2/2)/3, (2 + 1/2)/3
    assert np.isnan(cal[3])
    assert calibrated_rewards([4, 4, 4]) == pytest.approx([0.5, 0.5, 0.5])
    assert np.mean(calibrated_rewards([1, 1, 2, 3, 3, 3])) == pytest.approx(0.5)  # always centred


# ---- win rates ----------------------------------------------------------------------------------------------
def test_win_rates_match_brute_force():
    for rng, n in random_cases(6, 80, n_max=8):
        rewards = [rng.choice([None, 1, 2, 3, 2.5]) for _ in range(n)]
        m = sum(r is not None for r in rewards)
        best, worst = win_rates(rewards)
        assert best.size == max(m - 1, 0)
        for j, n_pick in enumerate(range(1, m)):
            assert best[j] == pytest.approx(brute_win(rewards, n_pick, "best"), abs=1e-12)
            assert worst[j] == pytest.approx(brute_win(rewards, n_pick, "worst"), abs=1e-12)


def test_win_rates_of_a_perfectly_calibrated_reward_are_n_over_n_plus_1():
    rewards = list(np.random.default_rng(7).normal(size=12))
    best, worst = win_rates(rewards)
    ns = np.arange(1, 12)
    assert best == pytest.approx(ns / (ns + 1))
    assert worst == pytest.approx(1 / (ns + 1))


def test_ties_pull_win_rates_to_one_half_and_short_questions_give_nan():
    best, worst = win_rates([3, 3, 3, 3])
    assert best == pytest.approx([0.5] * 3) and worst == pytest.approx([0.5] * 3)
    best, worst = win_rates([1, 2, None], ns=[1, 2, 3])
    assert best[0] == pytest.approx(0.5) and np.isnan(best[1]) and np.isnan(worst[2])
