"""--pick constraints: parsing, errors that say what is valid, and the choice (ties by cost)."""

from __future__ import annotations

import pytest

from itas.errors import InputError
from itas.report.pick import Constraint, parse_constraint, pick
from tests.report.synthetic import trial


@pytest.mark.parametrize("text,expected", [
    ("cost<=0.002", Constraint("cost", "<=", 0.002)),
    (" accuracy >= .6 ", Constraint("accuracy", ">=", 0.6)),
    ("latency<3", Constraint("latency", "<", 3.0)),
    ("calls==4", Constraint("calls", "==", 4.0)),
    ("cost>1e-5", Constraint("cost", ">", 1e-5)),
    ("Cost<=2E-3", Constraint("cost", "<=", 0.002)),
])
def test_parses_every_objective_and_operator(text, expected):
    assert parse_constraint(text) == expected


@pytest.mark.parametrize("text,message", [
    ("cots<=0.1", "unknown objective 'cots'; did you mean 'cost'?"),
    ("cost=<0.1", "expected OBJECTIVE OP NUMBER"),
    ("cost<=cheap", "expected OBJECTIVE OP NUMBER"),
    ("", "expected OBJECTIVE OP NUMBER"),
    ("tokens<5", "Allowed: accuracy, calls, cost, latency"),
])
def test_bad_expressions_are_input_errors_naming_the_value(text, message):
    with pytest.raises(InputError, match="--pick") as exc:
        parse_constraint(text)
    assert message in str(exc.value) and f"'{text}'" in str(exc.value)


def test_most_accurate_meeting_every_constraint_ties_to_the_cheaper():
    trials = [trial(0, [1, 0, 0, 0], 1.0, 0.001, kind="baseline"),
              trial(1, [1, 1, 1, 0], 2.0, 0.004, calls=6),
              trial(2, [1, 1, 0, 0], 1.5, 0.0020, calls=3),
              trial(3, [1, 1, 0, 0], 1.2, 0.0015, calls=3),  # same accuracy as 2, cheaper
              trial(4, [1, 1, 1, 1], 9.0, 0.0100, calls=12)]
    assert pick(trials, [parse_constraint("cost<=0.002")]).number == 3
    assert pick(trials, []).number == 4
    assert pick(trials, [parse_constraint("calls<=6"), parse_constraint("latency<3")]).number == 1
    assert pick(trials, [parse_constraint("accuracy>=0.75"), parse_constraint("cost<0.005")]).number == 1
    assert pick(trials, [parse_constraint("cost<0.0001")]) is None


def test_ties_in_accuracy_and_cost_go_to_the_faster_then_the_earlier():
    trials = [trial(5, [1, 0], 2.0, 0.001), trial(6, [1, 0], 1.0, 0.001), trial(7, [1, 0], 1.0, 0.001)]
    assert pick(trials, []).number == 6
