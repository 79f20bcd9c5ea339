"""End to end on real vLLM: the default models, prepared from their packages, served by itas itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from itas.pool.cache import CallCache
from itas.pool.session import open_pool
from itas.pool.types import SamplingParams

pytestmark = pytest.mark.vllm

QUESTION = [{"role": "user", "content": "What is 12 plus 30? Answer with a number."}]


def test_each_default_model_answers_with_real_token_usage(real_pool, tmp_path):
    async def go():
        async with open_pool(real_pool.config, cache=tmp_path / "calls.sqlite") as pool:
            out = {}
            for name in pool.config.names:
                out[name] = await pool.generate(name, QUESTION, SamplingParams(temperature=0.7, max_tokens=24), k=3)
            return out, pool.stats

    out, stats = asyncio.run(go())
    for name, comps in out.items():
        assert len(comps) == 3, name
        assert all(c.prompt_tokens > 5 and c.completion_tokens > 0 for c in comps), name
        assert any(c.text.strip() for c in comps), name
        assert all(c.completion_tokens <= 24 for c in comps)  # exact per-sample counts (token ids)
        print(f"{name}: {comps[0].text!r} ({comps[0].prompt_tokens}+{comps[0].completion_tokens} tokens)")
    assert stats.requests_sent == 2 and stats.calls_sent == 6  # one request with n=3 per model


def test_a_real_cached_call_is_not_sent_again(real_pool, tmp_path):
    cache_path = tmp_path / "calls.sqlite"
    params = SamplingParams(temperature=0.9, max_tokens=16)

    async def go(k):
        async with open_pool(real_pool.config, cache=cache_path) as pool:
            res = await pool.generate("smollm2", QUESTION, params, k=k)
            return res, pool.stats

    first, s1 = asyncio.run(go(5))
    again, s2 = asyncio.run(go(8))
    assert s1.calls_sent == 5 and s2.calls_sent == 3 and s2.requests_sent == 1
    assert [c.text for c in again[:5]] == [c.text for c in first]
    assert CallCache(cache_path).count() == 8


def test_the_default_pools_servers_take_turns_by_pausing_and_are_left_running(real_pool, tmp_path):
    """Both models asked at once: the server whose model does not hold the turn is paused with its requests
    kept (vLLM's /sleep level 0), every request is answered, and no server is left paused when the pool closes."""
    import httpx

    params = SamplingParams(temperature=0.8, max_tokens=64)

    async def go():
        async with open_pool(real_pool.config, cache=tmp_path / "calls.sqlite") as pool:
            turns = pool.turns["cpu"]
            # each model's 768 tokens take seconds (SmolLM2's, the faster, about 2 s here), so the turn cannot
            # stay with its first holder until it is done: it passes at max_turn, and back
            turns.min_turn, turns.max_turn = 0.1, 0.8
            calls = [pool.generate(name, [{"role": "user", "content": f"Count from {i} to {i + 200}, one number "
                                                                      f"per line."}], params)
                     for i in range(12) for name in ("smollm2", "gemma3")]
            out = await asyncio.gather(*calls)
            return out, turns

    out, turns = asyncio.run(go())
    assert turns.pausing is True and turns.switches >= 2
    assert len(out) == 24 and all(c[0].completion_tokens > 0 for c in out)
    for m in real_pool.config.models:
        root = m.endpoints[0].url.removesuffix("/v1")
        assert httpx.get(root + "/is_sleeping", timeout=10).json() == {"is_sleeping": False}, m.name


def test_latency_models_were_calibrated_on_the_idle_servers(real_pool):
    for name in real_pool.config.names:
        lm = real_pool.latency[name]
        assert 0 < lm.time_per_output_token < 1.0, (name, lm)
        assert lm.predict(100, 50) > lm.predict(100, 10)


def test_pool_status_shows_the_running_servers(real_pool):
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "itas", "pool", "status"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    for m in real_pool.config.models:
        assert str(m.endpoints[0].url.split(":")[-1].split("/")[0]) in out.stdout
    assert out.stdout.count("yes") >= 4  # managed and answering, for both models
