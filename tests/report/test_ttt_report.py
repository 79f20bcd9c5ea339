"""The report's test-time training section: training's share of cost and latency per ttt architecture, each
against the same architecture without ttt, the best with and without; from hand-made trials, from trial folders
(runs that did not store the share), and from a real search against the scripted server with a fake trainer."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest
import yaml

from itas.arch.spec import parse_architecture
from itas.report.render import to_csv, to_json, to_markdown
from itas.report.source import QuestionOutcome, RunData, TrialRecord, _with_training, training_of_folder
from itas.report.summary import summarise
from itas.report.ttt import fingerprint_of, uses_ttt, without_ttt

N = 20
GEN = {"model": "smollm2", "samples": 1, "temperature": 0.0, "max_tokens": 64}
TRAIN = {"steps": 40, "rank": 16, "learning_rate": 0.001, "train_augmentations": 3, "transforms": "geometric"}
PLAIN = {"name": "plain", "layers": [[{"type": "generator", **GEN}]]}
TTT = {"name": "ttt", "layers": [[{"type": "ttt", **GEN, **TRAIN}], [{"type": "vote"}]]}
TTT_PLAIN = {"name": "plain-vote", "layers": [[{"type": "generator", **GEN}], [{"type": "vote"}]]}
TTT_VOTING = {"name": "ttt-aug", "layers": [[{"type": "ttt", **GEN, **TRAIN, "augmentations": 4}]]}


def trial(number, arch, right, *, cost, latency, kind="sampled", train=None) -> TrialRecord:
    scores = [1.0] * right + [0.0] * (N - right)
    qs = tuple(QuestionOutcome(f"q{i}", s, 2, 100, 10, latency, cost) for i, s in enumerate(scores))
    metrics = {"accuracy": right / N, "latency_p50": latency, "latency_p95": latency, "cost_per_query": cost,
               "calls_per_query": 2.0}
    if train:
        metrics.update(train_cost_per_query=train[0], train_latency_per_query=train[1])
    fp = parse_architecture(arch, "a.yaml").fingerprint()
    return TrialRecord(number=number, state="COMPLETE", kind=kind, status="evaluated",
                       values=(right / N, latency, cost), metrics=metrics, architecture=arch,
                       description=arch["name"], fingerprint=fp, questions=qs)


def hand_made(*trials) -> RunData:
    return RunData(label="arc-run", trials=tuple(trials), config={"benchmark": "arc-synthetic",
                                                                  "question_ids": [f"q{i}" for i in range(N)]},
                   cost_unit="tokens")


def test_the_architecture_without_ttt():
    assert uses_ttt(TTT) and uses_ttt(TTT_VOTING) and not uses_ttt(PLAIN) and not uses_ttt(None)
    assert without_ttt(TTT)["layers"] == TTT_PLAIN["layers"]
    assert fingerprint_of(without_ttt(TTT)) == parse_architecture(TTT_PLAIN, "x").fingerprint()
    voting = without_ttt(TTT_VOTING)["layers"][0][0]
    assert voting == {"type": "augment_vote", **GEN, "augmentations": 4, "transforms": "geometric"}


@pytest.fixture
def report():
    run = hand_made(
        trial(0, PLAIN, 2, cost=300, latency=4.0, kind="baseline"),
        trial(1, TTT_PLAIN, 3, cost=300, latency=4.0),
        trial(2, TTT, 11, cost=4000, latency=20.0, train=(3000, 12.0)),
        trial(3, TTT_VOTING, 12, cost=6000, latency=30.0, train=(3000, 15.0)),
    )
    return summarise(run, replicates=500)


def test_share_and_gain_of_each_ttt_architecture(report):
    s = report.ttt
    assert [r.trial.number for r in s.rows] == [3, 2]  # most accurate first
    voting, ttt = s.rows
    assert ttt.without.number == 1 and ttt.versus.n == N
    assert ttt.versus.difference.estimate == pytest.approx((11 - 3) / N) and ttt.versus.p_value < 0.05
    assert ttt.cost_share == pytest.approx(0.75) and ttt.latency_share == pytest.approx(0.6)
    assert voting.without is None and voting.versus is None  # its augment_vote twin was not evaluated
    assert s.best_with.number == 3 and s.best_without.number == 1


def test_the_renderings_show_it(report):
    md = to_markdown([report])
    assert "### test-time training" in md
    assert ("trial 2 (ttt): accuracy 0.550; training: cost 3,000 of 4,000 tokens/query (75%), latency 12.0 of "
            "20.0 s per query (60%); without ttt (trial 1): accuracy 0.150, Δ +0.400") in md
    assert "trial 3 (ttt-aug): accuracy 0.600" in md and "the same architecture without ttt was not evaluated" in md
    assert ("most accurate with ttt: trial 3, accuracy 0.600, cost 6,000 tokens/query, latency p50 30.00 s; without "
            "ttt: trial 1, accuracy 0.150") in md
    assert "| of which training (cost / latency) |" in md and "| 75% / 12.0 s |" in md
    data = json.loads(to_json([report]))["runs"][0]["ttt"]
    assert data["architectures"][1]["trial"] == 2 and data["architectures"][1]["train_cost_share"] == 0.75
    assert data["architectures"][1]["without_ttt"]["trial"] == 1 and data["best_without_ttt"]["trial"] == 1
    rows = {r["trial"]: r for r in csv.DictReader(io.StringIO(to_csv([report])))}
    assert rows["2"]["train_cost_per_query"] == "3000" and rows["2"]["train_latency_per_query"] == "12"
    assert rows["0"]["train_cost_per_query"] == ""


def test_a_run_without_ttt_has_no_section():
    rr = summarise(hand_made(trial(0, PLAIN, 2, cost=300, latency=4.0, kind="baseline"),
                             trial(1, TTT_PLAIN, 3, cost=300, latency=4.0)), replicates=200)
    assert rr.ttt is None and "test-time training" not in to_markdown([rr])
    assert json.loads(to_json([rr]))["runs"][0]["ttt"] is None


def call(question, layer, component, chain, latency, cost, kind="chat") -> dict:
    return {"question": question, "layer": layer, "component": component, "chain": chain, "latency": latency,
            "cost": cost, "kind": kind, "type": "ttt", "model": "m", "sample_index": 0}


def test_runs_that_did_not_store_the_share_get_it_from_the_trial_folders(tmp_path):
    folder = tmp_path / "trials" / "2"
    folder.mkdir(parents=True)
    lines = [
        # the training (10 s) waits before the ttt component's sample (2 s); a generator beside it takes 5 s: the
        # layer takes 12 s with training and 5 s without, so training adds 7 s
        {"id": "a", "error": None, "call_records": [call("a", 0, 0, 0, 2.0, 1.0), call("a", 0, 0, 0, 10.0, 30.0, "train"),
                                                     call("a", 0, 1, 0, 5.0, 1.0)]},
        {"id": "b", "error": None, "call_records": [call("b", 0, 0, 0, 2.0, 1.0), call("b", 0, 1, 0, 5.0, 1.0)]},
        {"id": "c", "error": "failed", "call_records": []},
    ]
    (folder / "questions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert training_of_folder(folder / "questions.jsonl") == {"train_cost_per_query": 15.0,
                                                              "train_latency_per_query": 3.5}
    assert training_of_folder(tmp_path / "missing.jsonl") is None
    t = trial(2, TTT, 11, cost=4000, latency=20.0)
    (found,) = _with_training((t,), tmp_path)
    assert found.metrics["train_cost_per_query"] == 15.0 and found.metrics["accuracy"] == t.metrics["accuracy"]
    stored = trial(2, TTT, 11, cost=4000, latency=20.0, train=(1.0, 2.0))
    assert _with_training((stored,), tmp_path)[0].metrics["train_cost_per_query"] == 1.0  # the study's value wins


# ---- from a search -------------------------------------------------------------------------------------------------
def test_itas_report_on_a_search_that_used_ttt(tmp_path, itas):
    from itas.search.runner import SearchRequest, run_search
    from itas.ttt import services as ttt_services
    from tests.arc.ttt_fakes import fake_services
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    try:
        pool = tmp_path / "pool.yaml"
        pool.write_text(yaml.safe_dump({"models": {"fake": {"model": "fake-model", "endpoints": [server.url]}}}))
        space = tmp_path / "space.yaml"
        space.write_text(yaml.safe_dump({"name": "ttt", "max_tokens": 16, "stages": [
            {"generate": {"models": ["fake"], "samples": [1], "temperature": [0.0]}},
            {"ttt": {"optional": True, "steps": 4, "rank": 8, "train_augmentations": 1}}]}))
        arch = tmp_path / "ttt.yaml"
        arch.write_text(yaml.safe_dump({"name": "fake-ttt", "layers": [[{
            "type": "ttt", "model": "fake", "samples": 1, "temperature": 0.0, "max_tokens": 16, "steps": 4,
            "rank": 8, "train_augmentations": 1}]]}))
        with ttt_services.use(fake_services(tmp_path / "adapters")):
            outcome = asyncio.run(run_search(SearchRequest(
                benchmark="arc-synthetic", budget=2, out=tmp_path / "run", space=str(space), pool=str(pool),
                subset=3, jobs=1, enqueue=[str(arch)])))
    finally:
        server.stop()
    assert outcome.counted == 2
    code, out, err = itas("report", outcome.run_dir, "--format", "markdown", "--no-plots")
    assert code in (0, None), err
    assert "### test-time training" in out
    assert "trial 1 (" in out and "training: cost 3,000 of " in out and "latency 12.5 of " in out
    assert "without ttt (trial 0): accuracy 0.000, Δ +0.000" in out
    code, out, err = itas("report", outcome.run_dir, "--no-plots")
    assert "test-time training" in out and "of which training" in out
