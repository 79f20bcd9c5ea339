import asyncio

from itas.arch.executor import run_component
from itas.arch.state import State
from itas.components.generator import Generator
from tests.fakes import FakeBenchmark, FakePool


def run(comp, state, pool, bench, **kw):
    return asyncio.run(run_component(comp, state, pool, bench, **kw))


def test_samples_are_appended_with_their_origin_and_start():
    bench, pool = FakeBenchmark(), FakePool()
    state = State(question=bench.questions()[2])
    out, rec = run(Generator(model="gemma3", samples=3, temperature=0.9), state, pool, bench, layer=0, index=1,
                   start=4)
    assert [c.origin.sample for c in out.candidates] == [4, 5, 6]
    assert {c.origin.model for c in out.candidates} == {"gemma3"}
    assert [c.id for c in out.candidates] == ["L0.C1.S4", "L0.C1.S5", "L0.C1.S6"]
    assert pool.requests[0]["k"] == 3 and pool.requests[0]["start"] == 4
    assert pool.requests[0]["params"].temperature == 0.9
    assert len(rec.calls) == 3


def test_system_prompt_goes_first_and_keeps_the_benchmarks_instructions():
    bench, pool = FakeBenchmark(), FakePool()
    run(Generator(model="smollm2", system="Be brief."), State(question=bench.questions()[0]), pool, bench)
    msgs = pool.requests[0]["messages"]
    assert msgs[0]["role"] == "system"
    assert msgs[0]["content"].startswith("Be brief.") and "####" in msgs[0]["content"]
    assert [m["role"] for m in msgs].count("system") == 1


def test_unit_tests_from_an_earlier_layer_are_shown_unless_disabled():
    bench, pool = FakeBenchmark(), FakePool()
    state = State(question=bench.questions()[0], unit_tests=("assert f(1) == 2",))
    run(Generator(model="smollm2"), state, pool, bench)
    assert "assert f(1) == 2" in pool.requests[0]["messages"][-1]["content"]
    run(Generator(model="smollm2", use_unit_tests=False), state, pool, bench)
    assert "assert" not in pool.requests[1]["messages"][-1]["content"]


def test_existing_candidates_are_kept_in_front():
    bench, pool = FakeBenchmark(), FakePool()
    first, _ = run(Generator(model="smollm2", samples=2), State(question=bench.questions()[0]), pool, bench)
    second, _ = run(Generator(model="gemma3"), first, pool, bench, layer=1)
    assert second.candidates[:2] == first.candidates and len(second.candidates) == 3
