import asyncio

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.vote import Vote, majority
from tests.fakes import FakeBenchmark, FakePool


def test_majority_and_ties():
    assert majority(["1", "2", "2", None]) == "2"
    assert majority(["3", "2", "2", "3"]) == "3"  # tie: the answer that appears first
    assert majority([None, None]) is None


def run_vote(texts):
    bench, pool = FakeBenchmark(), FakePool()
    cands = tuple(Candidate(t, Origin(0, 0, "generator", "smollm2", i)) for i, t in enumerate(texts))
    state = State(question=bench.questions()[0], candidates=cands)
    out, rec = asyncio.run(run_component(Vote(), state, pool, bench))
    assert pool.requests == [] and rec.calls == []
    return out, rec


def test_keeps_the_majority_candidates_in_order_and_non_voters_do_not_count():
    out, rec = run_vote(["a #### 1", "no answer", "b #### 2", "c #### 2", "d #### 1", "e #### 2"])
    assert [c.text for c in out.candidates] == ["b #### 2", "c #### 2", "e #### 2"]
    assert {s.value for s in out.scores} == {0.6} and not rec.fallbacks


def test_tie_goes_to_the_earliest_answer():
    out, _ = run_vote(["no", "x #### 7", "y #### 5", "z #### 5", "w #### 7"])
    assert [c.text for c in out.candidates] == ["x #### 7", "w #### 7"]


def test_no_answer_at_all_keeps_everything_and_counts():
    out, rec = run_vote(["no", "nothing"])
    assert [c.text for c in out.candidates] == ["no", "nothing"]
    assert rec.fallbacks == {"vote.no_answer": 1}
