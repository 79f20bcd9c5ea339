"""The report's content from hand-made trials: front, baselines, comparison with the best single call, best
per objective, duplicates, and the renderings."""

from __future__ import annotations

import csv
import io
import json

import pytest

from itas.report.pick import parse_constraint
from itas.report.render import to_csv, to_json, to_markdown
from itas.report.summary import summarise
from tests.report.synthetic import run, trial

N = 20


def scores(right: int) -> list[float]:
    return [1.0] * right + [0.0] * (N - right)


@pytest.fixture
def hand_made():
    return run([
        trial(0, scores(10), 1.0, 0.0010, kind="baseline", model="gemma3"),      # best single call
        trial(1, scores(6), 0.5, 0.0002, kind="baseline", model="smollm2"),      # cheaper, faster single call
        trial(2, scores(18), 3.0, 0.0050, calls=5, model="gemma3", samples=5),   # front: most accurate
        trial(3, scores(9), 2.0, 0.0040, calls=4, model="smollm2", samples=4),   # dominated by 0
        trial(4, scores(18), 3.0, 0.0050, kind="sampled", status="duplicate", duplicate_of=2),
        trial(5, [], 0.0, 0.0, status="infeasible"),
        trial(6, scores(10), 1.0, 0.0010, kind="enqueued", model="gemma3", samples=2),  # equal to 0: both kept
    ])


def test_front_baselines_and_best(hand_made):
    rr = summarise(hand_made, replicates=2000)
    assert [r.trial.number for r in rr.front] == [2, 0, 6, 1]  # by accuracy, ties by cost then number
    assert [r.trial.number for r in rr.baselines] == [0, 1]
    assert rr.best_single.number == 0
    assert {k: t.number for k, t in rr.best.items()} == {"accuracy": 2, "latency": 1, "cost": 1}
    assert rr.counts == {"evaluated": 5, "infeasible": 1, "duplicate": 1, "failed": 0, "interrupted": 0,
                         "other": 0}


def test_each_front_architecture_is_compared_with_the_best_single_call(hand_made):
    rr = summarise(hand_made, replicates=2000)
    by = {r.trial.number: r for r in rr.front}
    assert by[0].search.vs_best_single is None  # the best single call itself
    better = by[2].search.vs_best_single
    assert better.n == N and better.difference.estimate == pytest.approx(8 / N)
    assert better.a_better == 8 and better.b_better == 0 and better.p_value < 0.01 and better.difference.lo > 0
    same = by[6].search.vs_best_single
    assert same.p_value == 1.0 and same.difference.estimate == 0
    acc = by[2].search.accuracy
    assert acc.estimate == pytest.approx(0.9) and acc.lo < 0.9 <= acc.hi <= 1.0


def test_pick_on_the_report(hand_made):
    rr = summarise(hand_made, constraints=[parse_constraint("cost<=0.001")], replicates=500)
    assert rr.picked.trial.number == 0
    rr = summarise(hand_made, constraints=[parse_constraint("cost<=0.00001")], replicates=500)
    assert rr.picked is None


def test_renderings_carry_the_same_rows(hand_made):
    rr = summarise(hand_made, constraints=[parse_constraint("latency<=2.5")], replicates=500)
    data = json.loads(to_json([rr]))["runs"][0]
    assert [r["trial"] for r in data["front"]] == [2, 0, 6, 1]
    assert data["pick"]["trial"]["trial"] == 0 and data["best"]["accuracy"] == 2
    assert data["front"][0]["search"]["vs_best_single"]["p_value"] < 0.01
    rows = list(csv.DictReader(io.StringIO(to_csv([rr]))))
    assert [int(r["trial"]) for r in rows] == [2, 0, 6, 1]
    assert [r["picked"] for r in rows] == ["False", "True", "False", "False"]
    assert rows[1]["p_value"] == "" and float(rows[0]["p_value"]) < 0.01
    md = to_markdown([rr])
    assert "| trial |" in md and "smollm2x1" in md and "pick (latency<=2.5): trial 0" in md
    assert md.count("\n| ") == 1 + 4  # header and four rows


def test_json_has_no_nan():
    rr = summarise(run([trial(0, [1.0], 1.0, 0.001, kind="baseline")]), replicates=100)
    text = to_json([rr])
    assert "NaN" not in text and json.loads(text)["runs"][0]["front"][0]["accuracy"] == 1.0
