"""The real pool client and SQLite call cache (against a scripted OpenAI-compatible server on loopback) and the
real GSM8K benchmark: a larger K sends only the new samples, in one request with n per question."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import yaml

from itas.sampling import store
from itas.sampling.runner import SampleRequest, sample
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def server():
    s = FakeOpenAI(model="fake-model", text="Step by step. The answer is 18.").start()
    try:
        yield s
    finally:
        s.stop()


def chat_requests(server, prompt_start="Solve the following math problem"):
    return [r for r in server.requests
            if str(r.get("messages", [{}])[-1].get("content", "")).startswith(prompt_start)]


def test_extending_k_sends_only_the_new_samples(server, data_dir, tmp_path):
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump({"models": {"smollm2": {
        "model": "fake-model", "context_length": 2048, "max_concurrency": 8, "endpoints": [server.url]}}}))
    out = tmp_path / "run"

    def go(k):
        return asyncio.run(sample(SampleRequest(benchmark="gsm8k", model="smollm2", k=k, subset=3, seed=0,
                                                max_tokens=16, pool=pool, data_dir=data_dir, out=out), plots=False))

    first = go(4)
    with sqlite3.connect(out / store.CACHE) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 12
    asked = chat_requests(server)
    assert len(asked) == 3 and {r["n"] for r in asked} == {4}  # one request with n=4 per question
    assert first.samples_sent == 12 and first.calls_sent == 12

    second = go(8)
    with sqlite3.connect(out / store.CACHE) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 24
    new = chat_requests(server)[3:]
    assert len(new) == 3 and {r["n"] for r in new} == {4}  # only the 4 new samples per question
    assert second.samples_sent == 12 and second.cache_hits == 12
    records = store.load_samples(out)
    assert len(records) == 24
    assert {r.extracted for r in records.values()} == {"18"}  # every sample answers 18: one voting answer
    tables = second.tables
    assert tables["curves"][0]["coverage"] == tables["curves"][-1]["coverage"]  # all samples alike
    assert tables["curves"][-1]["vote"] == pytest.approx(tables["curves"][-1]["coverage"])
