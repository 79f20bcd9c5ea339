import asyncio

from itas.arch.executor import run_component
from itas.arch.state import State
from itas.components.unit_test_generator import UnitTestGenerator, parse_tests
from tests.fakes import FakeBenchmark, FakePool


def test_parse_code_tests():
    text = "```python\nassert add(1, 2) == 3\n- assert add(0, 0) == 0\nprint('x')\n1. `assert add(-1, 1) == 0`\n```"
    assert parse_tests(text, code=True) == ["assert add(1, 2) == 3", "assert add(0, 0) == 0",
                                            "assert add(-1, 1) == 0"]


def test_parse_text_tests():
    assert parse_tests("Here:\n- states 3\n* uses ####\n2) is short", code=False) == ["states 3", "uses ####",
                                                                                      "is short"]
    assert parse_tests("one check\n\nanother check", code=False) == ["one check", "another check"]
    assert parse_tests("", code=False) == []


def test_writes_tests_into_the_state_capped():
    bench, pool = FakeBenchmark(kind="code"), FakePool()
    state = State(question=bench.questions()[0])
    out, rec = asyncio.run(run_component(UnitTestGenerator(model="smollm2", n_tests=1), state, pool, bench))
    assert out.unit_tests == ("assert f(1) == 2",)
    assert out.candidates == ()
    assert "assert statements" in pool.requests[0]["messages"][-1]["content"]
    assert len(rec.calls) == 1


def test_no_tests_is_counted():
    bench, pool = FakeBenchmark(), FakePool(lambda *a: "   ")
    out, rec = asyncio.run(run_component(UnitTestGenerator(model="smollm2"), State(question=bench.questions()[0]),
                                         pool, bench))
    assert out.unit_tests == ()
    assert rec.fallbacks == {"unit_test_generator.no_tests": 1}
