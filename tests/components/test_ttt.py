"""``ttt``: leave-one-out training data, one adapter per task (cached), sampling with the adapter, and the training
counted in cost and latency."""

from __future__ import annotations

import asyncio

import pytest

from itas.arc.grids import parse_grid, render_grid
from itas.arc.task import problem_of
from itas.arch.executor import run_architecture, run_component
from itas.arch.result import critical_path
from itas.arch.spec import parse_architecture
from itas.arch.state import State
from itas.benchmarks import load_benchmark
from itas.components.base import EstimateEnv, Flow
from itas.components.registry import component_class
from itas.components.ttt import training_sequences
from itas.config import Node
from itas.ttt import TRAIN_COST_FACTOR
from itas.ttt import services as ttt_services
from tests.arc.solver import copy_script, solve, solver_script
from tests.arc.ttt_fakes import fake_services
from tests.fakes import FakeBenchmark, FakePool, make_pool_config


@pytest.fixture
def ttt_fakes(tmp_path):
    with ttt_services.use(fake_services(tmp_path / "adapters")) as services:
        yield services


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("arc-synthetic")


def make(**params):
    spec = {"type": "ttt", "model": "smollm2", **params}
    return component_class("ttt").parse(Node(spec, "test.yaml", "layers[0][0]"))


def adapted_script(model, messages, params, index):
    """Right with a trained adapter, wrong (a copy of the input) with the base model."""
    if dict(params.extra).get("model", "").startswith("ttt-"):
        return solver_script(model, messages, params, index)
    return copy_script(model, messages, params, index)


def task_questions(bench, kind="colour_permutation"):
    q = next(q for q in bench.questions() if q.meta["kind"] == kind)
    return [x for x in bench.questions() if x.meta["task"] == q.meta["task"]]


def arch(**params):
    spec = {"type": "ttt", "model": "smollm2", "max_tokens": 64, **params}
    return parse_architecture({"layers": [[spec]]}, "ttt.yaml")


def run(a, bench, questions, pool):
    return asyncio.run(run_architecture(a, bench, questions, pool))


def test_one_adapter_per_task_and_sampling_with_it(bench, ttt_fakes):
    qs = task_questions(bench)
    assert len(qs) == 2
    pool = FakePool(adapted_script)
    result = run(arch(samples=2, steps=30), bench, qs, pool)
    assert [q.score for q in result.questions] == [1.0, 1.0]
    assert len(ttt_fakes.trainer.jobs) == 1, "the test inputs of a task share one adapter"
    job = ttt_fakes.trainer.jobs[0]
    assert job["served_model"] == "smollm2-served" and job["weights"] == "/fake/weights/smollm2"
    assert (job["steps"], job["rank"], job["alpha"], job["max_length"]) == (30, 16, 32.0, 2048)
    names = {dict(r["params"].extra)["model"] for r in pool.requests}
    assert len(names) == 1 and next(iter(names)).startswith("ttt-")
    serving = ttt_fakes.serving_for(pool)
    assert not any(serving.in_use.values()) and serving.events[-1][0] == "unload"
    trains = [c for q in result.questions for c in q.calls if c.kind == "train"]
    assert len(trains) == 2 and sorted(c.cached for c in trains) == [False, True]
    for c in trains:
        assert c.prompt_tokens == TRAIN_COST_FACTOR * 1000 and c.completion_tokens == 0
        assert c.latency == c.duration == 12.5 and c.cost == 3000.0
    for q in result.questions:
        assert q.n_calls == 1 + 2
        gen = max(c.latency for c in q.calls if c.kind == "chat")
        assert q.latency == pytest.approx(critical_path(q.calls)) == pytest.approx(12.5 + gen)


def test_the_same_architecture_without_training_gets_them_wrong(bench, ttt_fakes):
    qs = task_questions(bench)
    plain = parse_architecture({"layers": [[{"type": "generator", "model": "smollm2", "max_tokens": 64}]]}, "g.yaml")
    assert [q.score for q in run(plain, bench, qs, FakePool(adapted_script)).questions] == [0.0, 0.0]
    assert not ttt_fakes.trainer.jobs


def test_leave_one_out_training_data_under_augmentations(bench):
    q = task_questions(bench, "rotate_90")[0]
    problem = problem_of(q)

    class Ctx:  # what the sequences are built from: the question and the benchmark's prompt
        question = q

    Ctx.bench = bench
    seqs = training_sequences(Ctx, problem, 3, "all", 0)
    assert len(seqs) == len(problem.train) * (1 + 3)
    held_out = {render_grid(p.output) for p in problem.train}
    assert {s.answer for s in seqs[:: 1 + 3]} == held_out, "the first of each group is the plain held-out pair"
    for s in seqs:
        text = s.messages[-1]["content"]
        assert s.messages == tuple(bench.messages(type(q)(q.id, text.split("\n\n", 1)[1], q.reference, q.meta)))
        assert text.count("Input:\n") == len(problem.train) - 1  # one demonstration held out
        assert render_grid(solve(text)) == s.answer, "every sequence follows its (augmented) rule"
        assert "\n".join(s.answer.split()) == s.answer and parse_grid(s.answer)
    assert len({str(s.messages) for s in seqs}) == len(seqs)
    assert training_sequences(Ctx, problem, 0, "all", 0) == seqs[:: 1 + 3]


def test_the_cached_adapter_is_not_trained_again_but_still_counts(bench, ttt_fakes):
    qs = task_questions(bench)[:1]
    run(arch(), bench, qs, FakePool(adapted_script))
    again = run(arch(), bench, qs, FakePool(adapted_script))
    assert len(ttt_fakes.trainer.jobs) == 1
    train = next(c for c in again.questions[0].calls if c.kind == "train")
    assert train.cached and train.prompt_tokens == 3000 and train.latency == 12.5
    other = run(arch(steps=41), bench, qs, FakePool(adapted_script))  # other parameters: another adapter
    assert len(ttt_fakes.trainer.jobs) == 2 and other.questions[0].score == 1.0
    folders = sorted(p.name for p in (ttt_fakes.adapter_dir / "smollm2-served").iterdir())
    assert len(folders) == 2 and all(f.startswith(qs[0].meta["task"]) for f in folders)


def test_a_failed_training_fails_the_question_only(bench, ttt_fakes):
    ttt_fakes.trainer.fail = True
    result = run(arch(), bench, task_questions(bench), FakePool(adapted_script))
    assert all(q.failed and "out of memory" in q.error for q in result.questions)
    assert not (ttt_fakes.adapter_dir / "smollm2-served").exists() or not any(
        p.name.endswith("-served") for p in (ttt_fakes.adapter_dir / "smollm2-served").iterdir())
    assert list((ttt_fakes.adapter_dir / ".logs").iterdir()), "the failed training's log is kept"


def test_voting_over_augmentations_with_the_adapter(bench, ttt_fakes):
    q = task_questions(bench, "transpose")[0]
    pool = FakePool(adapted_script)
    out, rec = asyncio.run(run_component(make(augmentations=4, samples=2, temperature=0.7), State(question=q), pool,
                                         bench))
    assert len(rec.calls) == 1 + 8 and [c.kind for c in rec.calls].count("train") == 1
    assert out.candidates[0].text == q.reference and bench.score(q, out.candidates[0].text).correct
    assert len({str(r["messages"]) for r in pool.requests}) == 4


def test_a_question_that_is_not_a_grid_task_trains_nothing(ttt_fakes):
    bench = FakeBenchmark()
    pool = FakePool()
    out, rec = asyncio.run(run_component(make(samples=3), State(question=bench.questions()[1]), pool, bench))
    assert not ttt_fakes.trainer.jobs and len(rec.calls) == 4
    train = [c for c in rec.calls if c.kind == "train"]
    assert len(train) == 1 and train[0].prompt_tokens == 0 and train[0].latency == 0.0
    assert all(not r["params"].extra for r in pool.requests)
    assert len(out.candidates) == 3


def test_estimate_counts_training_as_one_call():
    comp = make(samples=2, steps=40, max_tokens=64)
    step = comp.step(Flow(), EstimateEnv(prompt_tokens=300))
    assert step.calls == 3 == comp.calls(0)
    training = step.usage[0]
    assert (training.calls, training.prompt_tokens) == (1, TRAIN_COST_FACTOR * 40 * (300 + 64))
    capped = comp.step(Flow(), EstimateEnv(prompt_tokens=3000, context_lengths={"smollm2": 2048}))
    assert capped.usage[0].prompt_tokens == TRAIN_COST_FACTOR * 40 * 2048
    voting = make(samples=2, augmentations=4).step(Flow(), EstimateEnv())
    assert voting.calls == 1 + 8 and voting.out.c == 2 and not voting.out.exact
    assert make(samples=2).step(Flow(), EstimateEnv()).out.exact
    assert make(samples=2, augmentations=4).sample_width() == 8


def test_cost_is_priced_as_input_tokens(bench, ttt_fakes):
    pool = FakePool(adapted_script, config=make_pool_config(priced=True))
    result = run(arch(), bench, task_questions(bench)[:1], pool)
    train = next(c for c in result.questions[0].calls if c.kind == "train")
    assert train.cost == pytest.approx(3000 * 1.0 / 1e6)
