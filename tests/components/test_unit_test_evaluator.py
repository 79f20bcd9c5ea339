import asyncio

import pytest

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.unit_test_evaluator import UnitTestEvaluator, parse_test_verdicts
from itas.errors import ConfigError
from tests.fakes import FakeBenchmark, FakePool


def test_parse_verdicts():
    text = "Unit Test #1: [Passed]\nUnit Test #2: [Failed]\nUnit Test #3: hmm"
    assert parse_test_verdicts(text, 3) == [True, False, None]
    assert parse_test_verdicts("unit test 1 passes. Unit test 2 fails", 2) == [True, False]
    assert parse_test_verdicts("", 1) == [None]


def code_state(bench, texts, tests=("assert f(1) == 2", "assert f(2) == 3")):
    cands = tuple(Candidate(f"```python\n{t}\n```", Origin(0, 0, "generator", "smollm2", i))
                  for i, t in enumerate(texts))
    return State(question=bench.questions()[0], candidates=cands, unit_tests=tuple(tests))


def test_code_benchmarks_execute_the_tests_without_calls():
    bench, pool = FakeBenchmark(kind="code"), FakePool()
    state = code_state(bench, ["BUG here", "good one", "also good"])
    out, rec = asyncio.run(run_component(UnitTestEvaluator(model="smollm2"), state, pool, bench))
    assert [c.text for c in out.candidates] == [state.candidates[1].text, state.candidates[2].text,
                                                state.candidates[0].text]
    assert rec.calls == [] and pool.requests == []
    assert [code for _, code, _ in bench.tests_run] == [c.text for c in state.candidates]
    assert sorted(s.value for s in out.scores) == [0.0, 1.0, 1.0]


def test_other_benchmarks_judge_one_call_per_candidate():
    bench, pool = FakeBenchmark(kind="math"), FakePool()
    state = code_state(bench, ["x", "y"], tests=("t1", "t2", "t3"))
    out, rec = asyncio.run(run_component(UnitTestEvaluator(model="smollm2", top_k=1), state, pool, bench))
    assert len(rec.calls) == 2 and len(out.candidates) == 1
    assert "Unit Test #3: t3" in pool.requests[0]["messages"][-1]["content"]


def test_first_k_passes_the_first_that_pass_everything():
    bench, pool = FakeBenchmark(kind="code"), FakePool()
    state = code_state(bench, ["BUG", "good", "good too"])
    out, _ = asyncio.run(run_component(UnitTestEvaluator(first_k=1), state, pool, bench))
    assert [c.text for c in out.candidates] == [state.candidates[1].text]


def test_execute_needs_a_code_benchmark_and_judge_needs_a_model():
    bench, pool = FakeBenchmark(kind="math"), FakePool()
    with pytest.raises(ConfigError, match="code benchmark"):
        asyncio.run(run_component(UnitTestEvaluator(evaluate="execute"), code_state(bench, ["x"]), pool, bench))
    with pytest.raises(ConfigError, match="needs 'model'"):
        asyncio.run(run_component(UnitTestEvaluator(), code_state(bench, ["x"]), pool, bench))


def test_no_tests_keeps_the_order_and_counts():
    bench, pool = FakeBenchmark(kind="code"), FakePool()
    out, rec = asyncio.run(run_component(UnitTestEvaluator(), code_state(bench, ["a", "b"], tests=()), pool, bench))
    assert [c.text for c in out.candidates] == ["```python\na\n```", "```python\nb\n```"]
    assert rec.fallbacks == {"unit_test_evaluator.no_tests": 1}
