"""The tables of a sampling run from synthetic questions: curves, intervals, fit, win rates, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from itas.sampling.analysis import QuestionSamples, analyse
from itas.sampling.bootstrap import mean_interval, resample_weights
from itas.sampling.scaling import fit_points, fit_power_law


def synthetic(questions=40, k=16, seed=0, integer_rewards=False):
    """Each question has its own success rate; a correct sample answers "r", a wrong one one of four wrong
    answers (or none); the reward is informative: higher on average for correct samples."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(questions):
        p = rng.beta(0.6, 1.5)
        correct = (rng.random(k) < p).astype(float)
        answers = tuple("r" if c else rng.choice(["w1", "w2", "w3", "w4", None]) for c in correct)
        rewards = correct * 1.0 + rng.normal(0, 0.8, k)
        if integer_rewards:
            rewards = np.clip(np.round(rewards * 3 + 5), 1, 10)
        out.append(QuestionSamples(id=f"q{i}", correct=correct, answers=answers, rewards=rewards,
                                   completion_tokens=rng.integers(10, 100, k).astype(float)))
    return out


def test_curves_start_at_pass_at_1_and_have_intervals():
    qs = synthetic()
    t = analyse(qs, 16, reward=True, bootstrap=300, seed=1)
    first, last = t.curves[0], t.curves[-1]
    pass1 = np.mean([q.correct.mean() for q in qs])
    assert first["k"] == 1 and last["k"] == 16 and len(t.curves) == 16
    assert first["coverage"] == pytest.approx(pass1)
    assert first["best_of_n"] == pytest.approx(pass1) and first["worst_of_n"] == pytest.approx(pass1)
    cov = [r["coverage"] for r in t.curves]
    assert all(b >= a - 1e-12 for a, b in zip(cov, cov[1:], strict=False))  # coverage never falls with k
    for r in t.curves:
        for key in ("coverage", "vote", "best_of_n", "worst_of_n"):
            assert r[f"{key}_lo"] - 1e-9 <= r[key] <= r[f"{key}_hi"] + 1e-9
        assert r["vote"] <= r["coverage"] + 1e-12  # a vote can only pick an answer that is there
    assert last["worst_of_n"] < pass1 < last["best_of_n"] < last["coverage"]  # an informative reward
    assert last["completion_tokens"] == pytest.approx(16 * np.mean([q.completion_tokens.mean() for q in qs]))
    assert t.summary["pass@1"] == pytest.approx(pass1) and t.summary["questions"] == 40


def test_fit_is_the_fit_of_the_mean_curve_with_bootstrap_intervals():
    t = analyse(synthetic(k=32), 32, bootstrap=300, seed=2)
    pts = fit_points(32)
    mean = np.array([t.curves[p - 1]["coverage"] for p in pts])
    point = fit_power_law(pts, mean)
    fit = t.fit
    assert fit["status"] == "ok" and fit["a"] == pytest.approx(point.a) and fit["b"] == pytest.approx(point.b)
    assert fit["a_lo"] <= fit["a"] <= fit["a_hi"] and fit["b_lo"] <= fit["b"] <= fit["b_hi"]
    assert fit["bootstrap_fitted"] == 300 and fit["fit_k"] == [int(p) for p in pts]
    ext = fit["extrapolation"]
    assert [e["k"] for e in ext][:2] == [64, 100]
    assert all(e["lo"] <= e["coverage"] <= e["hi"] for e in ext)
    assert all(b["coverage"] >= a["coverage"] for a, b in zip(ext, ext[1:], strict=False))
    assert t.curves[0]["coverage_fit"] == pytest.approx(np.exp(fit["a"]))
    assert fit["curve"][-1]["k"] == max(e["k"] for e in ext)
    assert fit["rmse_coverage"] < 0.05


def test_a_continuous_reward_wins_exactly_n_over_n_plus_1():
    t = analyse(synthetic(), 16, reward=True, bootstrap=100)
    assert len(t.winrate) == 15
    for row in t.winrate:
        n = row["n"]
        assert row["best_win_rate"] == pytest.approx(n / (n + 1)) and row["best_ideal"] == pytest.approx(n / (n + 1))
        assert row["worst_win_rate"] == pytest.approx(1 / (n + 1))
        assert row["questions"] == 40
        assert row["best_correct"] == pytest.approx(t.curves[n - 1]["best_of_n"])
    cal = t.calibration
    assert cal["tie_rate"] == 0 and cal["w1_from_uniform"] == pytest.approx(0, abs=1e-12)
    assert cal["ks_from_uniform"] == pytest.approx(0.5 / 16)  # the uniform quantiles, exactly
    assert cal["rewarded_samples"] == 640 and cal["missing_rewards"] == 0
    assert np.mean(cal["histogram"]["density"]) == pytest.approx(1.0)


def test_a_coarse_judge_falls_short_of_n_over_n_plus_1():
    t = analyse(synthetic(integer_rewards=True), 16, reward=True, bootstrap=100)
    assert t.calibration["tie_rate"] > 0.05 and t.calibration["w1_from_uniform"] > 0.01
    for row in t.winrate[1:]:
        assert row["best_win_rate"] < row["best_ideal"] and row["worst_win_rate"] > row["worst_ideal"]
        assert row["best_lo"] <= row["best_win_rate"] <= row["best_hi"]


def test_without_a_reward_there_are_no_reward_tables():
    t = analyse(synthetic(questions=5, k=4), 4, bootstrap=50)
    assert t.winrate is None and t.calibration is None and "best_of_n" not in t.curves[0]


def test_uses_the_first_k_samples_and_refuses_short_questions():
    qs = synthetic(questions=5, k=8)
    t4 = analyse(qs, 4, bootstrap=50)
    assert len(t4.curves) == 4
    with pytest.raises(ValueError, match="fewer than 9 samples"):
        analyse(qs, 9, bootstrap=50)


def test_bootstrap_is_seeded_and_degenerate_for_identical_questions():
    q = synthetic(questions=1, k=8)[0]
    t = analyse([q] * 10, 8, bootstrap=100, seed=3)
    for r in t.curves:
        assert r["coverage_lo"] == pytest.approx(r["coverage"]) == pytest.approx(r["coverage_hi"])
    a = analyse(synthetic(), 16, bootstrap=100, seed=5).curves
    b = analyse(synthetic(), 16, bootstrap=100, seed=5).curves
    assert a == b


def test_mean_interval_leaves_out_missing_values():
    m = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 0.0]])
    iv = mean_interval(m, resample_weights(3, 200, 0))
    assert iv.mean == pytest.approx([2 / 3, 0.5])
    assert 0 <= iv.lo[1] <= iv.hi[1] <= 1
