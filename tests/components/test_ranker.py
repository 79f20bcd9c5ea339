import asyncio

import pytest

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.ranker import Ranker, parse_ranking
from tests.fakes import FakeBenchmark, FakePool


@pytest.mark.parametrize("text,n,order,status", [
    ("[2] > [1] > [3]", 3, [1, 0, 2], "ok"),
    ("Best is [3], then [3] again, then [1] and [2].", 3, [2, 0, 1], "ok"),
    ("2 > 3 > 1", 3, [1, 2, 0], "ok"),
    ("[2] > [9]", 3, [1, 0, 2], "partial"),
    ("They are all good.", 3, [0, 1, 2], "unparsable"),
    ("", 2, [0, 1], "unparsable"),
])
def test_parse_ranking(text, n, order, status):
    assert parse_ranking(text, n) == (order, status)


def state_of(bench, n=4):
    cands = tuple(Candidate(f"answer {i}", Origin(0, 0, "generator", "smollm2", i)) for i in range(n))
    return State(question=bench.questions()[0], candidates=cands)


def test_keeps_top_k_in_ranked_order():
    bench, pool = FakeBenchmark(), FakePool()  # the fake ranks in reverse
    state = state_of(bench)
    out, rec = asyncio.run(run_component(Ranker(model="smollm2", top_k=2), state, pool, bench))
    assert [c.text for c in out.candidates] == ["answer 3", "answer 2"]
    assert not rec.fallbacks


def test_unparsable_ranking_falls_back_to_incoming_order_and_is_counted():
    bench, pool = FakeBenchmark(), FakePool(lambda *a: "no idea")
    out, rec = asyncio.run(run_component(Ranker(model="smollm2", top_k=3), state_of(bench), pool, bench))
    assert [c.text for c in out.candidates] == ["answer 0", "answer 1", "answer 2"]
    assert rec.fallbacks == {"ranker.unparsable": 1}


def test_partial_ranking_is_completed_and_counted():
    bench, pool = FakeBenchmark(), FakePool(lambda *a: "[3]")
    out, rec = asyncio.run(run_component(Ranker(model="smollm2", top_k=4), state_of(bench), pool, bench))
    assert [c.text for c in out.candidates] == ["answer 2", "answer 0", "answer 1", "answer 3"]
    assert rec.fallbacks == {"ranker.partial": 1}
