"""The search against a fast scripted endpoint: budget, infeasible and duplicate trials, resume, SIGKILL."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from itas.errors import InputError
from itas.pool.cache import request_key
from itas.pool.types import SamplingParams
from itas.search.runner import SearchRequest, SpaceTooConstrained, run_search
from itas.search.store import front_trials
from tests.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    s = FakeOpenAI().start()
    try:
        yield s
    finally:
        s.stop()


def pool_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump({"models": {
        "smollm2": {"model": "fake-a", "endpoints": [url]},
        "gemma3": {"model": "fake-b", "endpoints": [url]}}}))
    return path


def space_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def search(tmp_path, server, space: dict, budget: int, out: str = "run", **kw):
    req = SearchRequest(benchmark="gsm8k", budget=budget, out=tmp_path / out, space=str(space_file(tmp_path, space)),
                        pool=str(pool_file(tmp_path, server.url)), subset=kw.pop("subset", 3), seed=0,
                        jobs=kw.pop("jobs", 1), data_dir=str(kw.pop("data_dir")), **kw)
    return asyncio.run(run_search(req))


def model_requests(server) -> list[dict]:
    """Requests of the search itself (not the latency calibration's)."""
    return [r for r in server.requests if "apple" not in r["messages"][0]["content"]]


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_baselines_first_then_the_budget_exactly(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}},
                        {"fuse": {"layers": [0, 1], "model": ["smollm2", "gemma3"]}}]}
    out = search(tmp_path, server, space, budget=5, data_dir=data_dir)
    table = rows(out.run_dir)
    evaluated = [r for r in table if r["status"] == "evaluated"]
    assert len(evaluated) == 5 == out.counted
    assert [r["kind"] for r in table[:2]] == ["baseline", "baseline"]
    assert {r["description"] for r in table[:2]} == {"smollm2x1", "gemma3x1"}
    for r in evaluated:  # every completed trial has its folder, metrics and per-question outputs
        folder = out.run_dir / "trials" / r["trial"]
        assert (folder / "architecture.yaml").exists() and (folder / "metrics.json").exists()
        lines = (folder / "questions.jsonl").read_text().splitlines()
        assert len(lines) == 3 and all(json.loads(x)["calls"] >= 1 for x in lines)
    front = {int(r["trial"]) for r in rows(out.run_dir) if r["trial"] in
             {p["trial"] for p in csv.DictReader(open(out.run_dir / "pareto.csv"))}}
    assert front == {t.number for t in out.front}
    cfg = json.loads((out.run_dir / "config.json").read_text())
    assert len(cfg["question_ids"]) == 3 and cfg["budget"] == 5 and cfg["seed"] == 0


def test_over_budget_architectures_are_infeasible_with_zero_calls(tmp_path, server, data_dir, monkeypatch):
    # every sampled architecture needs 8 or 9 calls per query; the constraint allows 4: only baselines run
    from itas.search import store

    writes = []
    real = store.write_tables
    monkeypatch.setattr(store, "write_tables", lambda run_dir, trials: writes.append(len(trials)) or real(run_dir, trials))
    space = {"stages": [{"generate": {"models": ["smollm2"], "samples": [8, 9]}}],
             "constraints": {"max_calls_per_query": 4}}
    with pytest.raises(SpaceTooConstrained, match="too constrained"):
        search(tmp_path, server, space, budget=3, data_dir=data_dir)
    # the tables are written at most every 2 s while trials end (62 here, in a few seconds), and once more at
    # the end, with every trial, although the search ended with an error
    assert len(writes) < 62 / 4 and writes[-1] == 62
    table = rows(tmp_path / "run")
    infeasible = [r for r in table if r["status"] == "infeasible"]
    assert len(infeasible) == 20 * 3
    assert all("max_calls_per_query 4" in r["reason"] for r in infeasible)
    assert len(model_requests(server)) == 2 * 3  # the two baselines on three questions, nothing else
    assert [r for r in table if r["status"] == "evaluated"] == table[:2]


def test_a_duplicate_architecture_is_answered_from_its_earlier_trial(tmp_path, server, data_dir):
    # a space of exactly one architecture: smollm2 with two samples
    space = {"stages": [{"generate": {"models": ["smollm2"], "samples": 2}}]}
    out = search(tmp_path, server, space, budget=4, data_dir=data_dir)
    table = rows(out.run_dir)
    evaluated = [r for r in table if r["status"] == "evaluated"]
    dups = [r for r in table if r["status"] == "duplicate"]
    assert out.stopped == "exhausted" and len(evaluated) == 3 and len(dups) >= 200
    original = next(r for r in evaluated if r["description"] == "smollm2x2")
    assert {r["duplicate_of"] for r in dups} == {original["trial"]}
    assert {r["accuracy"] for r in dups} == {original["accuracy"]}
    # calls: baselines 2 x 3 questions; smollm2x2 reuses the baseline's sample 0 and asks only for sample 1
    reqs = model_requests(server)
    assert len(reqs) == 6 + 3 and all(r.get("n", 1) == 1 for r in reqs)


def test_the_sampler_draws_while_the_event_loop_goes_on(tmp_path, server, data_dir, monkeypatch):
    """The sampler's draw (TPE and its study's writes: up to tens of ms a trial, for hundreds of proposals when
    many are duplicates) runs in a worker thread: the event loop that sends the running trials' calls and takes
    their answers is not held meanwhile (bench/results/engine-use.md, section 12)."""
    from itas.search.runner import Proposer

    real = Proposer.ask
    slow = []

    def ask(self, space):
        time.sleep(0.3)  # a slow draw that holds its thread, as a CPU-bound one does
        slow.append(1)
        return real(self, space)

    monkeypatch.setattr(Proposer, "ask", ask)
    space = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}}]}
    req = SearchRequest(benchmark="gsm8k", budget=6, out=tmp_path / "run", space=str(space_file(tmp_path, space)),
                        pool=str(pool_file(tmp_path, server.url)), subset=3, seed=0, jobs=2, data_dir=str(data_dir))
    late = []

    async def go():
        async def watch():
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                late.append(time.perf_counter() - t - 0.01)

        watcher = asyncio.create_task(watch())
        try:
            return await run_search(req)
        finally:
            watcher.cancel()

    out = asyncio.run(go())
    assert out.counted == 6 and len(slow) >= 4
    assert max(late) < 0.2, f"the event loop was held {max(late):.3f} s"


def test_after_duplicates_the_values_come_from_random_search_until_a_new_architecture():
    import optuna

    from itas.search.runner import Proposer, make_sampler

    class Space:  # records which sampler drew each trial's value
        def __init__(self):
            self.drawn_by = []

        def suggest(self, trial):
            self.drawn_by.append(type(trial.study.sampler).__name__)
            return {"x": trial.suggest_categorical("x", [1, 2, 3])}

    study = optuna.create_study(sampler=make_sampler("tpe", seed=0, budget=50), directions=["maximize"])
    tpe = study.sampler
    proposer, space = Proposer(study, seed=0), Space()
    for exploring in (False, True, True, False):
        proposer.exploring = exploring
        trial, arch = proposer.ask(space)
        study.tell(trial, float(arch["x"]))
        assert study.sampler is tpe  # restored after every draw
    assert space.drawn_by == ["TPESampler", "RandomSampler", "RandomSampler", "TPESampler"]
    # random search takes over after `after` duplicates in a row, until a new architecture is evaluated
    for _ in range(Proposer.after - 1):
        proposer.duplicate()
    assert not proposer.exploring
    proposer.duplicate()
    assert proposer.exploring
    proposer.duplicate()
    assert proposer.exploring
    proposer.new()
    assert not proposer.exploring and proposer.streak == 0
    # random search has nothing to switch to
    assert Proposer(optuna.create_study(sampler=make_sampler("random", 0, 50)), seed=0).random is None


def test_resume_continues_to_a_larger_budget_without_repeating(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}},
                        {"vote": {"optional": True}}]}
    first = search(tmp_path, server, space, budget=4, data_dir=data_dir)
    before = {r["trial"]: r for r in rows(first.run_dir) if r["status"] == "evaluated"}
    sent = len(model_requests(server))
    again = asyncio.run(run_search(SearchRequest(benchmark="gsm8k", budget=6, resume=first.run_dir,
                                                 data_dir=str(data_dir))))
    after = {r["trial"]: r for r in rows(again.run_dir) if r["status"] == "evaluated"}
    assert again.counted == 6 and set(before) <= set(after)
    assert all(after[k]["accuracy"] == v["accuracy"] for k, v in before.items())
    assert len(model_requests(server)) > sent
    fps = [json.loads((again.run_dir / "trials" / k / "metrics.json").read_text())["trial"] for k in after]
    assert len(fps) == len(set(fps))


def test_a_resume_scores_with_the_latency_models_of_the_first_run(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}}]}
    first = search(tmp_path, server, space, budget=3, data_dir=data_dir)
    kept = json.loads((first.run_dir / "latency.json").read_text())
    assert set(kept) == {"smollm2", "gemma3"}
    before = {r["trial"]: float(r["latency_p50"]) for r in rows(first.run_dir) if r["status"] == "evaluated"}
    # as if the first run's servers had been 100x slower per output token than a new calibration would find
    slow = {name: {**m, "time_per_output_token": m["time_per_output_token"] * 100} for name, m in kept.items()}
    (first.run_dir / "latency.json").write_text(json.dumps(slow))
    said: list[str] = []
    again = asyncio.run(run_search(SearchRequest(benchmark=None, budget=5, resume=first.run_dir,
                                                 data_dir=str(data_dir)), report=said.append))
    after = {r["trial"]: float(r["latency_p50"]) for r in rows(again.run_dir) if r["status"] == "evaluated"}
    new = [after[k] for k in after if k not in before]
    assert new and min(new) > 10 * max(before.values()), (before, after)
    assert any("latency models of the search's first run kept" in s for s in said)
    assert json.loads((again.run_dir / "latency.json").read_text()) == slow


def test_another_search_in_the_same_directory_is_refused_without_damage(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2"], "samples": [1, 2]}}]}
    out = search(tmp_path, server, space, budget=2, data_dir=data_dir)
    digest = dir_hash(out.run_dir)
    with pytest.raises(InputError, match="holds another search"):
        search(tmp_path, server, space, budget=2, data_dir=data_dir, subset=5)
    assert dir_hash(out.run_dir) == digest


def test_dry_run_projects_and_touches_nothing(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2"], "samples": [1, 2]}}]}
    out = search(tmp_path, server, space, budget=4, data_dir=data_dir, dry_run=True)
    assert out.stopped == "dry-run" and out.projection["calls"] > 0 and out.projection["tokens"] > 0
    assert not (tmp_path / "run").exists() and model_requests(server) == []


def test_auto_jobs_fill_the_servers_within_a_quarter_of_the_budget(tmp_path, server, data_dir):
    from itas.pool.config import load_pool
    from itas.search.runner import auto_jobs

    pool = load_pool(None)  # two servers taking 256 requests each
    assert auto_jobs(pool, {"calls_in_flight": 100.0}, budget=50) == 6  # ceil(512 / 100)
    assert auto_jobs(pool, {"calls_in_flight": 10.0}, budget=50) == 12  # a quarter of the budget
    assert auto_jobs(pool, {"calls_in_flight": 1000.0}, budget=50) == 2  # never fewer than 2
    assert auto_jobs(pool, {"calls_in_flight": 10.0}, budget=6) == 2
    # a search without --jobs settles it once, reports it, and keeps it in its configuration for a resume
    space = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}}]}
    said: list[str] = []
    req = SearchRequest(benchmark="gsm8k", budget=4, out=tmp_path / "auto", space=str(space_file(tmp_path, space)),
                        pool=str(pool_file(tmp_path, server.url)), subset=3, seed=0, data_dir=str(data_dir))
    out = asyncio.run(run_search(req, report=said.append))
    config = json.loads((out.run_dir / "config.json").read_text())
    assert config["jobs"] == 2 and any(s.startswith("--jobs auto: 2 trials at once") for s in said), said


def dir_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ---- SIGKILL in the middle of a trial, then resume ----------------------------------------------------------------
def cache_counts(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return Counter(dict(db.execute("SELECT key, COUNT(*) FROM calls GROUP BY key").fetchall()))
    except sqlite3.OperationalError:  # not created yet
        return Counter()


def test_sigkill_mid_trial_then_resume_loses_and_repeats_nothing(tmp_path, data_dir):
    from types import SimpleNamespace

    from itas.pool.serving import free_port

    port = free_port()
    slow = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--delay", "0.4"],
                            cwd=REPO)
    server = SimpleNamespace(url=f"http://127.0.0.1:{port}/v1")
    try:
        space = space_file(tmp_path, {"stages": [
            {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [2, 3]}},
            {"fuse": {"layers": [1, 2], "model": ["smollm2", "gemma3"]}}]})
        pool = pool_file(tmp_path, server.url)
        run = tmp_path / "run"
        cmd = [sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", "5", "--subset", "4",
               "--space", str(space), "--pool", str(pool), "--out", str(run), "--jobs", "1",
               "--data-dir", str(data_dir)]
        env = {**os.environ, "ITAS_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill once the baselines are done and a multi-layer trial has some calls stored and more in flight
        deadline = time.time() + 120
        killed_at = None
        while time.time() < deadline and proc.poll() is None:
            done = [r for r in rows(run) if r["status"] == "evaluated"] if (run / "trials.csv").exists() else []
            stored = sum(cache_counts(run / "calls.sqlite").values())
            if len(done) >= 2 and stored > 2 * 4:  # baselines: 2 models x 4 questions
                killed_at = stored
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
        assert killed_at is not None, "the search ended before it could be killed"
        before_rows = {r["trial"]: r for r in rows(run) if r["status"] == "evaluated"}
        before_cache = cache_counts(run / "calls.sqlite")
        log_before = _server_log_len(server.url)
        # resumed as the README says: the directory alone (benchmark, budget, space and pool are the search's own)
        resumed = subprocess.run([sys.executable, "-m", "itas", "search", "--resume", str(run), "--data-dir",
                                  str(data_dir)], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert "interrupted" in resumed.stderr
        table = rows(run)
        evaluated = {r["trial"]: r for r in table if r["status"] == "evaluated"}
        assert len(evaluated) == 5  # the budget, exactly
        assert set(before_rows) <= set(evaluated)  # no completed trial lost...
        assert all(evaluated[k]["accuracy"] == v["accuracy"] for k, v in before_rows.items())
        descs = [json.loads((run / "trials" / k / "metrics.json").read_text())["params"] for k in evaluated]
        assert len({json.dumps(d, sort_keys=True) for d in descs if d}) == len([d for d in descs if d])  # ...nor repeated
        assert any(r["status"] == "interrupted" and "interrupted" in r["reason"] for r in table)
        # no completed call sent again: samples asked for after the kill == samples stored after it, per request
        after_cache = cache_counts(run / "calls.sqlite")
        asked = Counter()
        for body in _server_log(server.url)[log_before:]:
            if "apple" in body["messages"][0]["content"]:
                continue
            params = SamplingParams(temperature=body["temperature"], max_tokens=body["max_tokens"],
                                    top_p=body.get("top_p", 1.0), stop=tuple(body.get("stop") or ()))
            asked[request_key(body["model"], body["messages"], params)] += body.get("n", 1)
        for key, n in asked.items():
            assert n == after_cache[key] - before_cache.get(key, 0), key
        assert sum(asked.values()) > 0
    finally:
        slow.terminate()
        slow.wait()


def _server_log(url: str) -> list[dict]:
    # the subprocess server keeps its log in memory; fetch it through a side channel: a GET of /log
    import httpx

    return httpx.get(url.rsplit("/v1", 1)[0] + "/log", timeout=5).json()


def _server_log_len(url: str) -> int:
    return len(_server_log(url))


def test_front_trials_exclude_infeasible_and_duplicates(tmp_path, server, data_dir):
    space = {"stages": [{"generate": {"models": ["smollm2"], "samples": [1, 2, 9]}}],
             "constraints": {"max_calls_per_query": 4}}
    out = search(tmp_path, server, space, budget=3, data_dir=data_dir)
    import optuna

    study = optuna.load_study(study_name=json.loads((out.run_dir / "config.json").read_text())["study_name"],
                              storage=f"sqlite:///{out.run_dir / 'study.db'}")
    ours = {t.number for t in front_trials(study.trials)}
    theirs = {t.number for t in study.best_trials if t.user_attrs.get("itas_status") == "evaluated"}
    assert ours == theirs  # Optuna's own front (constraints respected) agrees, duplicates set aside
    assert all(t.user_attrs["itas_status"] != "infeasible" for t in study.best_trials)
