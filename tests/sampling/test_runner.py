"""``sample``: a results directory that resumes, the cache asked only for new samples, scores and rewards reused,
the judge asked exactly as the best_of_n component asks it; bad input refused before any server starts."""

from __future__ import annotations

import asyncio
import json

import pytest

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.best_of_n import BestOfN
from itas.errors import ConfigError, InputError
from itas.sampling import store
from itas.sampling.reward import judge_messages, parse_reward
from itas.sampling.runner import SampleRequest, sample
from tests.fakes import FakePool
from tests.sampling.conftest import JUDGE_MARK


def run(**kw):
    return asyncio.run(sample(SampleRequest(**kw), plots=False))


def judge_requests(pool):
    return [r for r in pool.requests if JUDGE_MARK in str(r["messages"][-1]["content"])]


def test_a_larger_k_asks_only_for_the_new_samples(fake_env, tmp_path):
    out = tmp_path / "s"
    first = run(benchmark="fake", model="smollm2", k=4, subset=3, out=out)
    assert fake_env.pool.samples_made == 12 and first.samples_sent == 12
    assert fake_env.opened[0][1] == out / "calls.sqlite"  # the cache lives in the results directory
    assert len(store.load_samples(out)) == 12
    scored = len(fake_env.bench.scored)

    second = run(benchmark="fake", model="smollm2", k=8, out=out)  # --out again: the same run, extended
    assert fake_env.pool.samples_made == 24 and second.samples_sent == 12  # 4 new per question
    assert len(fake_env.bench.scored) - scored == 12  # stored scores reused, only new samples graded
    config = store.load_config(out)
    assert config.k == 8 and config.subset == 3 and len(config.question_ids) == 3
    assert [h["samples_sent"] for h in config.history] == [12, 12]
    records = store.load_samples(out)
    assert len(records) == 24
    rec = records[(config.question_ids[0], 0)]
    assert rec.correct and rec.extracted is not None and rec.completion_tokens > 0
    assert records[(config.question_ids[0], 5)].extracted is None  # no answer: does not vote
    tables = second.tables
    assert tables["summary"]["k"] == 8 and len(tables["curves"]) == 8
    assert tables["curves"][0]["coverage"] == pytest.approx(3 / 8)  # samples 0, 3, 6 of 8 are right
    assert tables["curves"][-1]["coverage"] == pytest.approx(1.0)

    third = run(resume=out)  # nothing new
    assert third.samples_sent == 0 and fake_env.pool.samples_made == 24
    smaller = run(resume=out, k=2)  # a smaller k keeps the samples already there
    assert smaller.config.k == 8


def test_judge_reward_as_best_of_n_asks_it(fake_env, tmp_path):
    out = tmp_path / "j"
    outcome = run(benchmark="fake", model="smollm2", k=8, subset=2, out=out, reward="judge:gemma3")
    judged = judge_requests(fake_env.pool)
    assert len(judged) == 16 and {r["model"] for r in judged} == {"gemma3"}
    assert all(r["params"].temperature == 0.0 and r["params"].max_tokens == 256 for r in judged)
    records = store.load_samples(out)
    rewards = {i: records[(qid, i)].reward for (qid, i) in records}
    assert rewards[7] is None and rewards[1] == 4.0  # sample 7's judgement is unparsable
    assert all(r.reward_spec == "judge:gemma3" for r in records.values())
    assert outcome.tables["calibration"]["missing_rewards"] == 2
    assert outcome.tables["winrate"][0]["n"] == 1
    assert outcome.tables["winrate"][0]["best_win_rate"] == pytest.approx(0.5)

    # the very messages the best_of_n component sends its judge for the same candidate
    q = fake_env.bench.by_ids([outcome.config.question_ids[0]])[0]
    text = records[(q.id, 2)].text
    pool = FakePool(lambda *a: "Score: 5")
    state = State(question=q, candidates=(Candidate(text, Origin(0, 0, "generator", "smollm2", 0)),))
    asyncio.run(run_component(BestOfN(model="gemma3"), state, pool, fake_env.bench))
    assert pool.requests[0]["messages"] == judge_messages(fake_env.bench.messages(q), text, 2048, 256)
    assert pool.requests[0]["messages"] in [r["messages"] for r in judged]

    # resuming does not judge again; a new reward rewards every sample again
    run(resume=out)
    assert len(judge_requests(fake_env.pool)) == 16
    run(resume=out, reward="reward_model:smollm2")
    assert len(fake_env.pool.rewards) == 16
    assert {r.reward_spec for r in store.load_samples(out).values()} == {"reward_model:smollm2"}


def test_judge_prompt_is_truncated_to_the_judge_context():
    messages = [{"role": "user", "content": "What is 1 + 2?"}]
    long = "x" * 100_000
    cut = judge_messages(messages, long, context_length=2048, max_tokens=256)
    assert len(cut[-1]["content"]) < 2048 * 3 and "[...truncated]" in cut[-1]["content"]


def test_a_failed_question_is_recorded_and_retried_on_resume(fake_env, tmp_path):
    out = tmp_path / "f"
    failing = fake_env.bench.subset(3, 0)[1]
    fake_env.pool.fail_on = lambda model, messages: failing.text in str(messages[-1]["content"])
    outcome = run(benchmark="fake", model="smollm2", k=4, subset=3, out=out)
    assert list(outcome.failed) == [failing.id] and "scripted failure" in outcome.failed[failing.id]
    assert outcome.tables["summary"]["questions"] == 2
    assert outcome.tables["summary"]["incomplete_questions"] == [failing.id]
    assert store.load_config(out).history[-1]["failed"] == 1
    fake_env.pool.fail_on = None
    again = run(resume=out)
    assert again.failed == {} and again.tables["summary"]["questions"] == 3 and again.samples_sent == 4


@pytest.mark.parametrize("kw,message", [
    ({"benchmark": "fake", "model": "smollm2"}, "needs --k"),
    ({"benchmark": "fake", "model": "smollm2", "k": 2, "reward": "judge"}, "judge:MODEL"),
    ({"benchmark": "fake", "model": "smollm2", "k": 2, "reward": "jduge:gemma3"}, "did you mean 'judge'"),
])
def test_bad_requests(fake_env, tmp_path, kw, message):
    with pytest.raises(InputError, match=message):
        run(out=tmp_path / "x", **kw)
    assert fake_env.opened == []


def test_unknown_models_fail_before_any_server_starts(fake_env, tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'smollm3'"):
        run(benchmark="fake", model="smollm3", k=2, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown model 'judgy'"):
        run(benchmark="fake", model="smollm2", k=2, out=tmp_path / "y", reward="judge:judgy")
    assert fake_env.opened == []


def test_an_existing_run_keeps_its_settings(fake_env, tmp_path):
    out = tmp_path / "s"
    run(benchmark="fake", model="smollm2", k=2, subset=2, out=out, temperature=0.5)
    for kw, message in [({"model": "gemma3"}, "--model gemma3"), ({"temperature": 0.9}, "--temperature 0.9"),
                        ({"subset": 3}, "--subset 3"), ({"benchmark": "other"}, "--benchmark other")]:
        with pytest.raises(InputError, match=message):
            run(out=out, **kw)
    with pytest.raises(InputError, match="not both"):
        run(out=out, resume=tmp_path / "elsewhere")
    with pytest.raises(InputError, match="not a sampling run"):
        run(resume=tmp_path / "nothing")
    assert run(out=out, temperature=0.5, k=3).config.k == 3


def test_config_is_validated(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"benchmark": "b", "model": "m", "k": "4",
                                                      "question_ids": [], "temperature": 0.7, "max_tokens": 5}))
    with pytest.raises(InputError, match="k: expected int"):
        store.load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"benchmark": "b", "model": "m", "k": 4, "oops": 1,
                                                      "question_ids": [], "temperature": 0.7, "max_tokens": 5}))
    with pytest.raises(InputError, match="unknown key 'oops'"):
        store.load_config(tmp_path)


def test_parse_reward():
    assert parse_reward("judge:gemma3").name == "judge:gemma3"
    assert parse_reward("reward_model:rm").kind == "reward_model"
    best_of_n = BestOfN(model="x")
    judge = parse_reward("judge:gemma3")
    assert (judge.temperature, judge.max_tokens) == (best_of_n.temperature, best_of_n.max_tokens)
