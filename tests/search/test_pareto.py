"""The Pareto front: hand-made points, and agreement with Optuna's own best_trials."""

from __future__ import annotations

import random

import optuna

from itas.search.pareto import dominates, pareto_front

MIXED = ("maximize", "minimize", "minimize")


def test_dominance_with_mixed_directions():
    assert dominates((0.8, 1.0, 5.0), (0.7, 1.0, 5.0), MIXED)
    assert dominates((0.8, 0.5, 5.0), (0.8, 1.0, 5.0), MIXED)
    assert not dominates((0.8, 1.0, 5.0), (0.8, 1.0, 5.0), MIXED)  # equal: neither dominates
    assert not dominates((0.9, 2.0, 5.0), (0.8, 1.0, 5.0), MIXED)  # a trade-off


def test_front_on_hand_made_points():
    pts = [(0.5, 1.0, 10.0),  # 0: cheap baseline, on the front
           (0.7, 3.0, 40.0),  # 1: better accuracy, slower and dearer: on the front
           (0.6, 3.0, 40.0),  # 2: dominated by 1
           (0.7, 3.0, 40.0),  # 3: a duplicate of 1: both kept
           (0.5, 1.0, 11.0),  # 4: dominated by 0 (cost)
           (0.9, 9.0, 9.0)]   # 5: best accuracy and cheapest: on the front
    assert pareto_front(pts, MIXED) == [0, 1, 3, 5]


def test_front_of_empty_and_single():
    assert pareto_front([], MIXED) == []
    assert pareto_front([(0.1, 1.0, 1.0)], MIXED) == [0]


def test_agrees_with_optuna_best_trials():
    rng = random.Random(7)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=list(MIXED))
    pts = [(rng.choice([0.1, 0.2, 0.3, 0.4]), rng.choice([1.0, 2.0, 3.0]), rng.choice([5.0, 6.0, 7.0]))
           for _ in range(80)]
    for p in pts:
        study.add_trial(optuna.trial.create_trial(values=list(p), distributions={}, params={}))
    ours = set(pareto_front(pts, MIXED))
    assert ours == {t.number for t in study.best_trials}
