"""The executor: concurrency, call records, failures, the final answer, the critical path, the outputs."""

import asyncio
import json
from dataclasses import dataclass

import pytest

from itas.arch.context import CallRecord
from itas.arch.executor import run_architecture
from itas.arch.result import critical_path, percentile, write_run
from itas.arch.spec import load_architecture, parse_architecture
from itas.components.base import Component, Flow, Step
from itas.components.registry import register, unregister
from itas.errors import ConfigError
from tests.fakes import FakeBenchmark, FakePool


def arch_of(layers, name="t"):
    return parse_architecture({"name": name, "layers": layers}, f"{name}.yaml")


def run(arch, bench, pool, questions=None, **kw):
    return asyncio.run(run_architecture(arch, bench, questions or bench.questions(), pool, **kw))


FOUR_WAY = [[{"type": "generator", "model": "smollm2"}, {"type": "generator", "model": "gemma3"},
             {"type": "generator", "model": "smollm2", "temperature": 0.2},
             {"type": "generator", "model": "gemma3", "temperature": 0.2}],
            [{"type": "fuser", "model": "smollm2"}]]


def test_components_of_a_layer_and_all_questions_run_concurrently():
    bench, pool = FakeBenchmark(n=5), FakePool(delay=0.1)
    result = run(arch_of(FOUR_WAY), bench, pool)
    assert pool.max_in_flight >= 5 * 4  # every question's four generators at once
    for q in result.questions:
        layer0 = q.layer_calls(0)
        assert len(layer0) == 4
        assert q.layer_wall_times[0] < 0.6 * sum(c.duration for c in layer0)
    assert result.elapsed < 5 * 2 * 0.1  # far less than one question after another


def test_call_records():
    bench, pool = FakeBenchmark(n=2), FakePool()
    seen = []
    result = run(arch_of(FOUR_WAY), bench, pool, on_call=seen.append)
    q = result.questions[0]
    assert len(seen) == sum(x.n_calls for x in result.questions) == 10
    fuse = [c for c in q.calls if c.layer == 1]
    assert len(fuse) == 1 and fuse[0].type == "fuser" and fuse[0].model == "smollm2" and fuse[0].component == 0
    assert {(c.component, c.model) for c in q.layer_calls(0)} == {(0, "smollm2"), (1, "gemma3"), (2, "smollm2"),
                                                                  (3, "gemma3")}
    for c in q.calls:
        assert c.prompt_tokens > 0 and c.completion_tokens > 0 and c.duration > 0 and c.latency > 0
        assert c.cached is False and c.question == q.id
    assert q.cost == sum(c.cost for c in q.calls)
    assert q.latency == pytest.approx(max(c.latency for c in q.layer_calls(0)) + fuse[0].latency)


def test_final_answer_is_the_first_candidate_and_is_scored():
    bench, pool = FakeBenchmark(n=3), FakePool()
    result = run(load_architecture("archon-rank-critic-fuse"), bench, pool)
    for q in result.questions:
        assert q.output == q.final_state["candidates"][0]["text"]
        assert q.output.startswith("Fused by smollm2")
    assert [qid for qid, _ in bench.scored] and {qid for qid, _ in bench.scored} == {q.id for q in result.questions}
    result = run(load_architecture("vote5"), bench, pool)
    assert result.metrics().accuracy == 1.0  # the fake's generators are right


def test_a_failed_call_fails_only_its_question_with_the_reason():
    bench = FakeBenchmark(n=3)
    pool = FakePool(fail_on=lambda model, messages: model == "gemma3" and "What is 1 + 2?" in messages[-1]["content"])
    result = run(arch_of([FOUR_WAY[0], [{"type": "vote"}]]), bench, pool)
    failed = [q for q in result.questions if q.failed]
    assert [q.id for q in failed] == ["fake/1"]
    assert "scripted failure" in failed[0].error and failed[0].score == 0.0 and failed[0].output is None
    m = result.metrics()
    assert m.n_failed == 1 and m.accuracy == pytest.approx(2 / 3)
    assert m.calls_per_query == 4  # over the questions that completed


def test_identical_generators_do_not_share_samples_but_architectures_do():
    bench, pool = FakeBenchmark(n=1), FakePool()
    one = arch_of([[{"type": "generator", "model": "smollm2", "samples": 3}]], "one")
    two = arch_of([[{"type": "generator", "model": "smollm2", "samples": 3},
                    {"type": "generator", "model": "smollm2", "samples": 3}]], "two")
    run(one, bench, pool)
    result = run(two, bench, pool)
    q = result.questions[0]
    texts = [c["text"] for c in q.final_state["candidates"]]
    assert len(set(texts)) == 6
    assert [c.cached for c in q.calls if c.component == 0] == [True] * 3
    assert [c.cached for c in q.calls if c.component == 1] == [False] * 3
    assert sorted(c.sample_index for c in q.calls) == [0, 1, 2, 3, 4, 5]


def test_models_are_checked_before_any_call():
    bench, pool = FakeBenchmark(n=1), FakePool()
    with pytest.raises(ConfigError, match=r"layers\[0\]\[0\]\.model: model 'llama'"):
        run(arch_of([[{"type": "generator", "model": "llama"}]]), bench, pool)
    assert pool.requests == []


@dataclass(frozen=True)
class ReturnsNothing(Component):
    type = "returns_nothing"
    needs_candidates = False

    async def run(self, state, ctx):
        return None

    def step(self, flow, env):
        return Step(out=Flow(candidates=(("x", 1),)))


@pytest.fixture
def broken_component():
    register(ReturnsNothing)
    try:
        yield ReturnsNothing
    finally:
        unregister(ReturnsNothing.type)


def test_a_component_returning_none_is_a_bug_not_a_result(broken_component):
    with pytest.raises(TypeError, match="returned NoneType, not a State"):
        run(arch_of([[{"type": "returns_nothing"}]]), FakeBenchmark(n=2), FakePool())


def test_critical_path_sums_layers_of_the_slowest_chain():
    def call(layer, comp, chain, latency):
        return CallRecord("q", layer, comp, "x", "m", 0, 1, 1, latency, latency, 0.0, False, chain, 0.0)

    calls = [call(0, 0, -1, 2.0), call(0, 0, -2, 3.0), call(0, 1, -1, 1.0),  # layer 0: 3.0
             call(1, 0, 0, 1.0), call(1, 0, 0, 1.5), call(1, 0, 1, 2.0)]  # layer 1: chain 0 sums to 2.5
    assert critical_path(calls) == pytest.approx(3.0 + 2.5)
    assert critical_path([]) == 0.0


def test_percentile():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) == 0.0


def test_result_is_json_and_written_atomically(tmp_path):
    bench, pool = FakeBenchmark(n=3), FakePool()
    arch = load_architecture("vote5")
    result = run(arch, bench, pool)
    data = json.loads(json.dumps(result.to_dict()))
    m = data["metrics"]
    for key in ("accuracy", "latency_p50", "latency_p95", "wall_p50", "wall_p95", "cost_per_query",
                "calls_per_query", "tokens_per_query", "n_failed", "fallbacks", "truncations"):
        assert key in m
    assert m["calls_per_query"] == 5
    out = write_run(tmp_path / "run", result, arch, extra={"estimate": {"calls": 5}})
    assert sorted(p.name for p in out.iterdir()) == ["architecture.yaml", "metrics.json", "questions.jsonl"]
    lines = (out / "questions.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["call_records"]
    assert json.loads((out / "metrics.json").read_text())["estimate"] == {"calls": 5}
    assert load_architecture(out / "architecture.yaml") == arch
