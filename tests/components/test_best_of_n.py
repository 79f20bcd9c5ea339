import asyncio

import pytest

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.best_of_n import BestOfN, parse_score
from tests.fakes import FakeBenchmark, FakePool


@pytest.mark.parametrize("text,score", [
    ("Good. Score: 7", 7.0), ("score = 7.5", 7.5), ("Score: 3\n...\nFinal score: **9**", 9.0), ("8", 8.0),
    ("I like it", None), ("", None),
])
def test_parse_score(text, score):
    assert parse_score(text) == score


def state_of(bench, texts):
    cands = tuple(Candidate(t, Origin(0, 0, "generator", "smollm2", i)) for i, t in enumerate(texts))
    return State(question=bench.questions()[0], candidates=cands)


def judge(scores):
    def script(model, messages, params, index):
        content = messages[-1]["content"]
        return next((s for key, s in scores.items() if f"Response:\n{key}\n" in content), "Score: 1")
    return script


@pytest.mark.parametrize("mode,expected", [("best", "b"), ("worst", "a")])
def test_judge_keeps_the_best_or_the_worst(mode, expected):
    bench = FakeBenchmark()
    pool = FakePool(judge({"a": "Score: 2", "b": "Score: 9", "c": "Score: 9", "d": "unsure"}))
    out, rec = asyncio.run(run_component(BestOfN(model="gemma3", mode=mode), state_of(bench, list("abcd")),
                                         pool, bench))
    assert [c.text for c in out.candidates] == [expected]  # ties: the earliest; unscored never chosen
    assert len(rec.calls) == 4
    assert rec.fallbacks == {"best_of_n.unparsable": 1}


def test_no_score_keeps_the_first():
    bench, pool = FakeBenchmark(), FakePool(lambda *a: "hmm")
    out, rec = asyncio.run(run_component(BestOfN(model="gemma3"), state_of(bench, ["x", "y"]), pool, bench))
    assert [c.text for c in out.candidates] == ["x"]
    assert rec.fallbacks == {"best_of_n.unparsable": 2, "best_of_n.no_score": 1}


def test_reward_model_uses_the_pooling_api_and_counts_calls():
    bench = FakeBenchmark()
    pool = FakePool(reward=lambda model, messages, response: {"x": 0.1, "yy": 0.9, "z": 0.5}[response])
    out, rec = asyncio.run(run_component(BestOfN(model="smollm2", reward="reward_model"),
                                         state_of(bench, ["x", "yy", "z"]), pool, bench))
    assert [c.text for c in out.candidates] == ["yy"]
    assert pool.requests == [] and [r for _, r in pool.rewards] == ["x", "yy", "z"]
    assert len(rec.calls) == 3 and {c.kind for c in rec.calls} == {"reward"}
