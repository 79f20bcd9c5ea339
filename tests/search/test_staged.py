"""Staged evaluation: the pure promotion rule, and ``itas search --staged`` against a scripted oracle server."""

from __future__ import annotations

import asyncio
import csv
import json
import random
from pathlib import Path

import optuna
import pytest
import yaml

from itas.search.pareto import pareto_front
from itas.search.runner import SearchRequest, run_search
from itas.search.staged import blocking_point, optimistic_accuracy, rung_sizes, should_promote
from tests.report.oracle import OracleOpenAI


# ---- the rule ------------------------------------------------------------------------------------------------
def test_rung_sizes_grow_to_the_whole_subset():
    assert rung_sizes(16) == [4, 8, 16]
    assert rung_sizes(3) == [1, 2, 3]
    assert rung_sizes(1) == [1]
    assert rung_sizes(20, (0.5,)) == [10, 20]  # the whole subset is always the last rung
    with pytest.raises(ValueError):
        rung_sizes(8, (0.0, 1.0))


def test_optimistic_accuracy_counts_every_unseen_question_right():
    assert optimistic_accuracy([1, 0, 0, 0], 16) == pytest.approx(13 / 16)
    assert optimistic_accuracy([1, 1, 1, 1], 4) == 1.0
    # the Wilson bound is lower than all-correct when the seen rate is low, and never above it
    assert optimistic_accuracy([0, 0, 0, 0], 16, "wilson") < optimistic_accuracy([0, 0, 0, 0], 16) == 0.75
    assert optimistic_accuracy([1, 1, 1, 1], 16, "wilson") <= 1.0
    assert optimistic_accuracy([1, 0, 0, 0], 16, "seen-rate") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown accuracy bound"):
        optimistic_accuracy([1], 4, "guess")


def test_a_dominated_architecture_is_stopped_and_a_tie_is_promoted():
    front = [(0.9, 1.0, 100.0), (0.5, 0.5, 10.0)]
    # 1 of 4 seen, wrong: at best 0.75, slower and dearer than the first front point
    assert blocking_point([0.0], 4, 1.2, 150.0, front) == 0
    assert not should_promote([0.0], 4, 1.2, 150.0, front)
    # the same, right on its first question: it could reach 1.0, more than any point of the front
    assert should_promote([1.0], 4, 1.2, 150.0, front)
    # faster than the whole front: it could reach it whatever its accuracy
    assert should_promote([0.0, 0.0], 4, 0.4, 150.0, front)
    # equal to a front point (at best): equal points do not dominate each other
    assert should_promote([1.0, 0.0], 4, 0.5, 10.0, [(0.75, 0.5, 10.0)])
    assert should_promote([0.0], 4, 9.9, 999.0, [])  # no front yet


def test_no_architecture_of_the_true_front_is_ever_stopped_with_the_all_correct_bound():
    # latency and cost constant across questions (as the rule assumes): whatever front of fully evaluated
    # architectures a search has, an architecture of the table's true front is promoted at every rung
    rng = random.Random(7)
    for _ in range(30):
        n = 8
        archs = []
        for _ in range(25):
            p = rng.random()
            archs.append(([float(rng.random() < p) for _ in range(n)], rng.choice([0.5, 1.0, 1.5, 2.0]),
                          rng.choice([10.0, 20.0, 40.0])))
        points = [(sum(s) / n, lat, cost) for s, lat, cost in archs]
        true_front = pareto_front(points)
        for _ in range(10):
            evaluated = rng.sample(range(len(archs)), rng.randint(1, len(archs)))
            front = [points[evaluated[i]] for i in pareto_front([points[j] for j in evaluated])]
            for i in true_front:
                scores, lat, cost = archs[i]
                assert all(should_promote(scores[:k], n, lat, cost, front) for k in rung_sizes(n)[:-1])
    assert len(true_front) >= 1


# ---- itas search --staged --------------------------------------------------------------------------------------
# gemma3 ("fake-b") is always right and dear, smollm2 ("fake-a") always wrong and cheap. Sampled architectures:
# gemma3 with 1 or 2 samples at temperature 0.7 or 1.0, fused by smollm2 or not. Only gemma3x1 at 1.0 can reach
# the front (it equals the gemma3 baseline); every other one is dominated by that baseline after one question.
SPACE = {"name": "staged-test", "max_tokens": 32, "stages": [
    {"generate": {"models": ["gemma3", "smollm2"], "count": 1, "samples": [1, 2], "temperature": [0.7, 1.0]}},
    {"fuse": {"layers": [0, 1], "model": "smollm2"}}]}
SUBSET = 4
ALL = 2 + 7  # the two baselines and the seven sampled architectures that are not a baseline


@pytest.fixture(scope="module")
def oracle(data_dir):
    from itas.benchmarks import load_benchmark

    bench = load_benchmark("gsm8k", data_dir=data_dir)
    server = OracleOpenAI({q.text: str(q.reference) for q in bench.questions()}, {"fake-a": 0.0, "fake-b": 1.0})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _setup(tmp_path: Path, url: str) -> tuple[Path, Path]:
    from itas.paths import state_dir
    from itas.pool.config import load_pool

    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump({"models": {
        "smollm2": {"model": "fake-a", "endpoints": [url], "price": {"input": 0.1, "output": 0.4}},
        "gemma3": {"model": "fake-b", "endpoints": [url], "price": {"input": 1.0, "output": 4.0}}}}))
    # a fixed latency model (no calibration against the scripted server): time grows with output tokens only
    path = state_dir() / "calibration.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    for m in load_pool(pool).models:
        known[f"{m.endpoints[0].url}|{m.model}"] = {"ttft_base": 0.2, "ttft_per_prompt_token": 0.0,
                                                     "time_per_output_token": 0.01}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    return pool, space


def _search(tmp_path, oracle, data_dir, budget, out="run", **kw):
    pool, space = _setup(tmp_path, oracle.url)
    req = SearchRequest(benchmark="gsm8k", budget=budget, out=tmp_path / out, space=str(space), pool=str(pool),
                        subset=SUBSET, seed=0, sampler="random", jobs=1, data_dir=str(data_dir), **kw)
    return asyncio.run(run_search(req))


def _rows(run: Path) -> list[dict]:
    with open(run / "trials.csv") as f:
        return list(csv.DictReader(f))


def _smollm2_requests(oracle, since: int) -> list[dict]:
    return [r for r in oracle.model_requests()[since:] if r["model"] == "fake-a"]


def test_staged_search_stops_the_dominated_and_promotes_the_one_that_reaches_the_front(tmp_path, oracle, data_dir):
    from itas.benchmarks import load_benchmark

    first_question = load_benchmark("gsm8k", data_dir=data_dir).subset(SUBSET, 0)[0].text
    before = len(oracle.model_requests())
    out = _search(tmp_path, oracle, data_dir, ALL, staged=True)
    assert out.counted == ALL
    rows = _rows(out.run_dir)
    stopped = [r for r in rows if r["status"] == "stopped"]
    evaluated = [r for r in rows if r["status"] == "evaluated"]
    assert len(stopped) == 6 and len(evaluated) == 3
    gemma3 = next(r["trial"] for r in rows if r["kind"] == "baseline" and r["description"] == "gemma3x1")
    for r in stopped:  # stopped after the first rung (one question of four), by the gemma3 baseline
        assert r["reason"].startswith(f"stopped after 1 of {SUBSET} questions")
        assert f"dominated by trial {gemma3} " in r["reason"]
        folder = out.run_dir / "trials" / r["trial"]
        assert len((folder / "questions.jsonl").read_text().splitlines()) == 1
        assert json.loads((folder / "metrics.json").read_text())["metrics"]["questions_scored"] == 1
    # the smollm2 fusers (their prompts carry gemma3's candidates) were only ever asked about the first question
    fusers = [r for r in _smollm2_requests(oracle, before) if "Some steps." in json.dumps(r["messages"])]
    assert fusers and all(first_question in json.dumps(r["messages"]) for r in fusers)
    # the one that can reach the front was scored on every question and is on the front
    promoted = next(r for r in evaluated if r["kind"] == "sampled")
    assert json.loads(promoted["params"]) == {"fuse.layers": 0, "generate.gemma3.samples": 1,
                                              "generate.temperature": 1.0}
    assert len((out.run_dir / "trials" / promoted["trial"] / "questions.jsonl").read_text().splitlines()) == SUBSET
    with open(out.run_dir / "pareto.csv") as f:
        assert promoted["trial"] in {r["trial"] for r in csv.DictReader(f)}
    # Optuna sees stopped trials as pruned; a stopped architecture sampled again is answered from its trial
    cfg = json.loads((out.run_dir / "config.json").read_text())
    assert cfg["staged"] is True
    study = optuna.load_study(study_name=cfg["study_name"], storage=f"sqlite:///{out.run_dir / 'study.db'}")
    states = {str(t.number): t.state.name for t in study.get_trials()}
    assert {states[r["trial"]] for r in stopped} == {"PRUNED"}
    again = [r for r in rows if r["status"] == "duplicate" and r["duplicate_of"] in {s["trial"] for s in stopped}]
    assert again and {states[r["trial"]] for r in again} == {"PRUNED"}

    # the same search scored on every question makes more smollm2 calls (the fusers, on all four questions)
    staged_requests = len(_smollm2_requests(oracle, before))
    before_full = len(oracle.model_requests())
    full = _search(tmp_path, oracle, data_dir, ALL, out="full")
    assert {r["status"] for r in _rows(full.run_dir)} <= {"evaluated", "duplicate"}
    assert len(_smollm2_requests(oracle, before_full)) > staged_requests


def test_a_resumed_staged_search_keeps_staging(tmp_path, oracle, data_dir):
    first = _search(tmp_path, oracle, data_dir, 4, staged=True)
    last_of_first = max(int(r["trial"]) for r in _rows(first.run_dir))
    req = SearchRequest(benchmark="gsm8k", budget=ALL, resume=first.run_dir, data_dir=str(data_dir))
    resumed = asyncio.run(run_search(req))  # without staged=True: the run's configuration keeps it
    assert json.loads((resumed.run_dir / "config.json").read_text())["staged"] is True
    rows = _rows(resumed.run_dir)
    assert resumed.counted == ALL
    assert len([r for r in rows if r["status"] == "stopped"]) == 6
    assert any(int(r["trial"]) > last_of_first for r in rows if r["status"] == "stopped")


def test_staged_search_is_refused_with_shared_storage(tmp_path, oracle, data_dir):
    from itas.errors import InputError

    with pytest.raises(InputError, match="--staged does not work with --storage"):
        _search(tmp_path, oracle, data_dir, ALL, staged=True, storage=f"sqlite:///{tmp_path / 'shared.db'}")
