import asyncio

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Critique, Origin, State
from itas.components.fuser import Fuser
from tests.fakes import FakeBenchmark, FakePool


def state_with(bench, texts, critiques=()):
    cands = tuple(Candidate(t, Origin(0, 0, "generator", "smollm2", i)) for i, t in enumerate(texts))
    return State(question=bench.questions()[1], candidates=cands,
                 critiques=tuple(Critique(cands[i].id, c) for i, c in critiques))


def test_fused_answer_replaces_the_candidates_and_quotes_them_with_critiques():
    bench, pool = FakeBenchmark(), FakePool()
    state = state_with(bench, ["alpha #### 3", "beta #### 4"], critiques=[(1, "beta is off by one")])
    out, rec = asyncio.run(run_component(Fuser(model="gemma3"), state, pool, bench, layer=2, index=1))
    assert len(out.candidates) == 1 and out.candidates[0].origin.type == "fuser"
    assert out.candidates[0].id == "L2.C1.S0"
    assert out.critiques == ()
    prompt = pool.requests[0]["messages"][-1]["content"]
    assert "alpha #### 3" in prompt and "beta #### 4" in prompt
    assert "[2] beta is off by one" in prompt
    assert "What is 1 + 2?" in prompt and "####" in prompt  # the question with its format instruction
    assert len(rec.calls) == 1


def test_samples_give_several_fused_answers():
    bench, pool = FakeBenchmark(), FakePool()
    out, rec = asyncio.run(run_component(Fuser(model="smollm2", samples=2), state_with(bench, ["a", "b"]), pool,
                                         bench))
    assert len(out.candidates) == 2 and len(rec.calls) == 2
