import asyncio

import pytest

from itas.arch.executor import run_component
from itas.arch.result import critical_path
from itas.arch.state import Candidate, Origin, State
from itas.components.verifier import Verifier, parse_verdict
from tests.fakes import FakeBenchmark, FakePool, prompt_kind, well_formed


@pytest.mark.parametrize("text,verdict", [
    ("[Correct]", True), ("[Incorrect]", False), ("Thinking... [correct]. On reflection [Incorrect]", False),
    ("The response is correct.", True), ("This is incorrect", False), ("maybe", None), ("", None),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def scripted(verdicts):
    def script(model, messages, params, index):
        if prompt_kind(messages) == "verdict":
            content = messages[-1]["content"]
            for key, v in verdicts.items():
                if key in content.split("Reasoning:")[0]:
                    return v
        return well_formed(model, messages, params, index)
    return script


def state_of(bench, texts):
    cands = tuple(Candidate(t, Origin(0, 0, "generator", "smollm2", i)) for i, t in enumerate(texts))
    return State(question=bench.questions()[0], candidates=cands)


def test_keeps_the_verified_in_order_and_makes_two_sequential_calls_per_candidate():
    bench = FakeBenchmark()
    pool = FakePool(scripted({"alpha": "[Correct]", "beta": "[Incorrect]", "gamma": "[Correct]"}))
    state = state_of(bench, ["alpha", "beta", "gamma"])
    out, rec = asyncio.run(run_component(Verifier(model="smollm2"), state, pool, bench))
    assert [c.text for c in out.candidates] == ["alpha", "gamma"]
    assert len(rec.calls) == 6
    # the critical path is one reasoning plus one verdict, not all six calls
    per_chain = {}
    for c in rec.calls:
        per_chain.setdefault(c.chain, []).append(c)
    assert sorted(len(v) for v in per_chain.values()) == [2, 2, 2]
    assert critical_path(rec.calls) == pytest.approx(max(sum(c.latency for c in v) for v in per_chain.values()))
    assert [s.value for s in out.scores] == [1.0, 1.0]


def test_none_correct_keeps_all_and_counts():
    bench = FakeBenchmark()
    pool = FakePool(scripted({"alpha": "[Incorrect]", "beta": "no idea"}))
    out, rec = asyncio.run(run_component(Verifier(model="smollm2"), state_of(bench, ["alpha", "beta"]), pool,
                                         bench))
    assert [c.text for c in out.candidates] == ["alpha", "beta"]
    assert rec.fallbacks == {"verifier.no_verdict": 1, "verifier.none_correct": 1}


def test_first_k():
    bench, pool = FakeBenchmark(), FakePool()
    out, _ = asyncio.run(run_component(Verifier(model="smollm2", first_k=1), state_of(bench, ["a", "b"]), pool,
                                       bench))
    assert [c.text for c in out.candidates] == ["a"]
