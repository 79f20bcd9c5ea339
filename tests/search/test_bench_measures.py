"""The measures `make bench` derives from a search's call cache and trial folders, on hand-made records."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sqlite3
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench_search():
    spec = importlib.util.spec_from_file_location("bench_search", REPO / "bench" / "bench_search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cache_with(path: Path, spans: list[tuple[float, float]]) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE calls (key TEXT, idx INTEGER, completion_tokens INTEGER, duration REAL, created REAL)")
    db.executemany("INSERT INTO calls VALUES (?, ?, 10, ?, ?)",
                   [(f"k{i}", 0, end - start, end) for i, (start, end) in enumerate(spans)])
    db.commit()
    db.close()
    return path


def test_busy_seconds_is_the_union_of_the_call_spans(tmp_path, bench_search):
    # two overlapping calls (0-10, 5-12), one inside them (6-7), then a pause, then one call (100-104)
    cache = cache_with(tmp_path / "calls.sqlite", [(0, 10), (5, 12), (6, 7), (100, 104)])
    assert bench_search.busy_seconds(cache) == pytest.approx(12 + 4)


def test_in_flight_is_the_time_weighted_number_of_calls(tmp_path, bench_search):
    cache = cache_with(tmp_path / "calls.sqlite", [(0, 10), (0, 10), (5, 10)])
    assert bench_search.in_flight(cache) == pytest.approx((10 + 10 + 5) / 10)


def test_harness_gaps_are_measured_from_the_end_of_the_layers_before(tmp_path, bench_search):
    trial = tmp_path / "run" / "trials" / "3"
    trial.mkdir(parents=True)
    q = {"layer_wall_times": [4.0, 2.0, 1.0], "call_records": [
        {"layer": 0, "started": 0.0}, {"layer": 0, "started": 0.5},
        {"layer": 1, "started": 4.25}, {"layer": 1, "started": 4.5},   # 0.25 s after layer 0 ended
        {"layer": 2, "started": 6.0}]}                                # at once after layers 0 and 1
    (trial / "questions.jsonl").write_text(json.dumps(q) + "\n")
    assert sorted(bench_search.harness_gaps(tmp_path / "run")) == pytest.approx([0.0, 0.25])


def test_prefix_caches_are_emptied_before_a_plain_load_or_the_bench_says_why_not(bench_search):
    """The plain load must pay for its prompts as the search did: ``reset_prefix_caches`` posts vLLM's
    /reset_prefix_cache at each server's root (not under /v1), and a server without it (started without
    VLLM_SERVER_DEV_MODE) is a clear error, not a silently warm cache."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    paths: list[str] = []
    dev_mode = {"on": True}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            paths.append(self.path)
            self.send_response(200 if dev_mode["on"] and self.path == "/reset_prefix_cache" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        config = SimpleNamespace(models=[SimpleNamespace(name="m1", endpoints=[SimpleNamespace(url=url)]),
                                         SimpleNamespace(name="m2", endpoints=[SimpleNamespace(url=url + "/")])])
        bench_search.reset_prefix_caches(config)
        assert paths == ["/reset_prefix_cache", "/reset_prefix_cache"]
        dev_mode["on"] = False
        with pytest.raises(RuntimeError, match="m1's server .* without VLLM_SERVER_DEV_MODE=1"):
            bench_search.reset_prefix_caches(config)
    finally:
        server.shutdown()



def test_the_search_is_split_where_its_last_trial_started(tmp_path, bench_search):
    # two calls of 10 tokens each: 0-10 and 5-15; the last trial started at 10 (tail: the last third of 0-15)
    cache_with(tmp_path / "calls.sqlite", [(0, 10), (5, 15)])
    run = {"out": tmp_path, "first": 0.0, "last": 15.0, "tail": 1 / 3, "tokens": 20}
    before, after, cut = bench_search.split_at_tail(run)
    assert cut == pytest.approx(10)
    assert before == pytest.approx((10 + 5) / 10)  # all of the first call, half of the second, over 10 s
    assert after == pytest.approx(5 / 5)


def test_a_search_is_replayed_layer_by_layer_through_the_pool(tmp_path, bench_search):
    """bench_search.replay sends a finished search's requests again through itas's pool: a question's layers
    one after the other, a request shared by two trials once, each with its number of samples."""
    import asyncio

    import yaml

    from itas.pool.config import load_pool
    from tests.fake_openai import FakeOpenAI

    run = tmp_path / "run"
    run.mkdir()
    db = sqlite3.connect(run / "calls.sqlite")
    db.execute("CREATE TABLE requests (key TEXT PRIMARY KEY, model TEXT, request TEXT)")
    db.execute("CREATE TABLE calls (key TEXT, idx INTEGER, text TEXT, prompt_tokens INTEGER, completion_tokens "
               "INTEGER, duration REAL, finish_reason TEXT, created REAL)")
    params = {"temperature": 0.7, "max_tokens": 8, "top_p": 1.0, "stop": [], "seed": None}
    durations = {"gen": [1.5, 1.5], "fuse": [2.25], "rank": [3.125]}  # gen: one request, two samples
    for key, ds in durations.items():
        db.execute("INSERT INTO requests VALUES (?, 'fake-a', ?)",
                   (key, json.dumps({"messages": [{"role": "user", "content": key}], "params": params})))
        db.executemany("INSERT INTO calls VALUES (?, ?, 'x', 3, 4, ?, 'stop', 0)",
                       [(key, i, d) for i, d in enumerate(ds)])
    db.commit()
    db.close()
    for number, later in ((0, "fuse"), (1, "rank")):  # both trials start from the same generator samples
        folder = run / "trials" / str(number)
        folder.mkdir(parents=True)
        records = [{"layer": 0, "duration": 1.5}, {"layer": 0, "duration": 1.5},
                   {"layer": 1, "duration": durations[later][0]}]
        (folder / "questions.jsonl").write_text(json.dumps({"call_records": records}) + "\n")
    requests, trials, unmatched = bench_search.search_graph(run)
    assert unmatched == 0 and requests["gen"][2] == 2
    assert trials == {0: [[["gen"], ["fuse"]]], 1: [[["gen"], ["rank"]]]}

    server = FakeOpenAI().start()
    try:
        pool = tmp_path / "pool.yaml"
        pool.write_text(yaml.safe_dump({"models": {"smollm2": {"model": "fake-a", "endpoints": [server.url]}}}))
        tokens, seconds, _ = asyncio.run(bench_search.replay(load_pool(str(pool)), run, jobs=2))
        sent = [r["messages"][0]["content"] for r in server.requests]
        assert sorted(sent) == ["fuse", "gen", "rank"] and sent[0] == "gen"  # gen once, before what needs it
        assert server.requests[0]["n"] == 2 and tokens > 0 and seconds > 0
    finally:
        server.stop()


def test_layer_waves_put_each_request_after_everything_it_depends_on(bench_search):
    # trial 1: a -> b -> c; trial 2: b is its first layer, then d; trial 3: c then e (c is shared, deeper in 1)
    trials = {1: [[["a"], ["b"], ["c"]]], 2: [[["b"], ["d"]]], 3: [[["c"], ["e"]], [["a", "f"], ["g"]]]}
    waves = bench_search.layer_waves(trials)
    wave_of = {k: i for i, wave in enumerate(waves) for k in wave}
    assert wave_of == {"a": 0, "f": 0, "b": 1, "g": 1, "c": 2, "d": 2, "e": 3}
    for questions in trials.values():  # every layer after every layer before it, in every question
        for layers in questions:
            for before, after in itertools.pairwise(layers):
                assert max(wave_of[k] for k in before) < min(wave_of[k] for k in after)


def test_layer_waves_place_a_request_asked_again_in_the_same_question_by_its_first_layer(bench_search):
    # a fuser given the same candidates twice asks the same request in layers 1 and 2: answered already, not a cycle
    waves = bench_search.layer_waves({1: [[["g"], ["f"], ["f"], ["v"]]], 2: [[["f"], ["h"]]]})
    assert {k: i for i, wave in enumerate(waves) for k in wave} == {"g": 0, "f": 1, "v": 2, "h": 2}


def test_layer_waves_refuse_a_cycle(bench_search):
    with pytest.raises(ValueError, match="cycle"):
        bench_search.layer_waves({1: [[["a"], ["b"]]], 2: [[["b"], ["a"]]]})


def test_an_unknown_diagnose_choice_is_refused_before_any_server_starts(bench_search, monkeypatch):
    started = []
    monkeypatch.setattr(bench_search, "cold_servers", lambda: started.append(True))
    with pytest.raises(ValueError, match="unmet, always, never"):
        bench_search.main(diagnose="sometimes")
    assert not started
