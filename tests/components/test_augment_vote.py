"""``augment_vote``: answers under augmentations are mapped back and voted on; the top two go on as ARC's two
attempts."""

from __future__ import annotations

import asyncio

import pytest

from itas.arc.grids import parse_attempts, parse_grid, render_grid
from itas.arc.task import problem_of
from itas.arch.executor import run_component
from itas.arch.state import State
from itas.benchmarks import load_benchmark
from itas.components.base import EstimateEnv, Flow
from itas.components.registry import component_class
from itas.config import Node
from tests.arc.solver import copy_script, read_prompt, solve, solver_script
from tests.fakes import FakeBenchmark, FakePool


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("arc-synthetic")


def make(**params):
    spec = {"type": "augment_vote", "model": "smollm2", **params}
    return component_class("augment_vote").parse(Node(spec, "test.yaml", "layers[0][0]"))


def run(comp, q, pool, bench):
    return asyncio.run(run_component(comp, State(question=q), pool, bench))


def question(bench, kind="rotate_90"):
    return next(q for q in bench.questions() if q.meta["kind"] == kind)


def test_every_frame_answered_right_maps_back_to_the_one_right_answer(bench):
    q = question(bench)
    pool = FakePool(solver_script)
    out, rec = run(make(augmentations=8), q, pool, bench)
    assert len(rec.calls) == 8 and len(pool.requests) == 8
    frames = [read_prompt(r["messages"][-1]["content"])[1] for r in pool.requests]
    assert len(set(frames) | {problem_of(q).test_input}) >= 5, "the prompts show the test input in other frames"
    assert [c.text for c in out.candidates] == [q.reference]
    assert out.scores[0].value == 1.0 and out.scores[0].source == "augment_vote"
    assert bench.score(q, out.candidates[0].text).detail == "first attempt"


def test_the_runner_up_is_the_second_attempt(bench):
    q = question(bench, "colour_permutation")
    original = bench.messages(q)

    def script(model, messages, params, index):  # right only in the task's own frame, else a copy of the input
        return solver_script(model, messages, params, index) if messages == original else copy_script(
            model, messages, params, index)

    out, _ = run(make(augmentations=8, transforms="all"), q, FakePool(script), bench)
    first, second = parse_attempts(out.candidates[0].text)
    assert first == problem_of(q).test_input, "seven frames copy the input: mapped back, they agree"
    assert render_grid(second) == q.reference
    assert out.candidates[1].text == q.reference
    assert [s.value for s in out.scores] == [7 / 8, 1 / 8]
    score = bench.score(q, out.candidates[0].text)
    assert (score.status, score.detail) == ("correct", "second attempt")


def test_samples_with_no_grid_do_not_vote(bench):
    q = question(bench)
    out, rec = run(make(augmentations=4, samples=2, temperature=0.7), q, FakePool(lambda *a: "I give up."), bench)
    assert len(rec.calls) == 8 and sum(rec.fallbacks.values()) == 0
    assert [c.text for c in out.candidates] == ["I give up."] and not out.scores
    assert bench.score(q, out.candidates[0].text).status == "no_answer"


def test_the_identity_frame_shares_samples_with_a_generator(bench):
    q = question(bench)
    pool = FakePool(solver_script)
    run(make(augmentations=3), q, pool, bench)
    assert pool.requests[0]["messages"] == bench.messages(q) and pool.requests[0]["start"] == 0


def test_augmentations_are_seeded_per_question(bench):
    q = question(bench)
    a, b, c = FakePool(solver_script), FakePool(solver_script), FakePool(solver_script)
    run(make(augmentations=4), q, a, bench)
    run(make(augmentations=4), q, b, bench)
    run(make(augmentations=4, seed=1), q, c, bench)
    prompts = [[r["messages"] for r in p.requests] for p in (a, b, c)]
    assert prompts[0] == prompts[1] != prompts[2]


def test_a_question_that_is_not_a_grid_task_is_self_consistency():
    bench = FakeBenchmark()
    q = bench.questions()[2]

    def script(model, messages, params, index):
        return f"#### {[5, 5, 4, 5, 4, 9][index]}"

    pool = FakePool(script)
    out, rec = run(make(augmentations=3, samples=2, temperature=0.7), q, pool, bench)
    assert len(rec.calls) == 6 and len(pool.requests) == 1 and pool.requests[0]["k"] == 6, "one request, 6 samples"
    assert [bench.extract(c.text) for c in out.candidates] == ["5", "4"]
    assert len({c.id for c in out.candidates}) == 2


def test_estimate():
    comp = make(augmentations=8, samples=2, max_tokens=64)
    step = comp.step(Flow(), EstimateEnv(prompt_tokens=300))
    assert step.calls == 16 == comp.calls(0)
    assert step.out.c == 2 and not step.out.exact
    assert step.usage[0].prompt_tokens == 16 * 300 and step.usage[0].completion_tokens == 16 * 64
    single = make(augmentations=1).step(Flow(), EstimateEnv())
    assert single.calls == 1 and single.out.c == 1 and single.out.exact
    assert comp.sample_width() == 16


def test_solver_is_right_on_the_plain_prompts(bench):
    for q in bench.questions()[:16]:
        assert render_grid(solve(bench.messages(q)[0]["content"])) == q.reference
        assert parse_grid(q.reference) is not None
