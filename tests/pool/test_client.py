"""The async client against a scripted OpenAI-compatible server on loopback that counts requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from itas.errors import CallError, CallRefusedError
from itas.pool.cache import CallCache
from itas.pool.client import Pool, RetryPolicy, _split_usage
from itas.pool.config import parse_pool
from itas.pool.types import SamplingParams
from tests.fake_openai import FakeOpenAI

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
MSGS = [{"role": "user", "content": "What is six times seven?"}]
PARAMS = SamplingParams(temperature=0.8, max_tokens=16)


@pytest.fixture
def server():
    s = FakeOpenAI().start()
    try:
        yield s
    finally:
        s.stop()


def make_pool(urls, cache=None, retry=FAST, timeout=5.0, **model):
    eps = [{"url": u, "max_concurrency": model.pop("max_concurrency", 64)} for u in urls]
    config = parse_pool({"models": {"m": {"model": "fake-model", "endpoints": eps, **model}}}, "test-pool.yaml")
    return Pool(config, cache, retry=retry, timeout=timeout)


def run(coro):
    return asyncio.run(coro)


async def gen(pool, k=1, start=0, msgs=MSGS):
    async with pool:
        return await pool.generate("m", msgs, PARAMS, k=k, start=start)


def test_a_call_returns_texts_usage_and_duration(server):
    out = run(gen(make_pool([server.url])))
    assert len(out) == 1 and out[0].text.startswith("The answer is 42.")
    assert out[0].prompt_tokens > 0 and out[0].completion_tokens == 7 and out[0].duration > 0
    assert server.count == 1


def test_retries_on_5xx_then_succeeds(server):
    server.script = [("status", 500), ("status", 503)]
    pool = make_pool([server.url])
    out = run(gen(pool))
    assert out[0].text and server.count == 3 and pool.stats.retries == 2


def test_retries_stop_at_the_bound(server):
    server.default = ("status", 500)
    pool = make_pool([server.url])
    with pytest.raises(CallError) as err:
        run(gen(pool))
    assert server.count == FAST.max_attempts
    assert "500" in str(err.value) and pool.stats.failures == 1


def test_a_4xx_is_not_retried(server):
    server.script = [("status", 404)]
    with pytest.raises(CallRefusedError):
        run(gen(make_pool([server.url])))
    assert server.count == 1


def test_429_waits_for_retry_after(server):
    server.script = [("429", 1)]
    t0 = time.monotonic()
    out = run(gen(make_pool([server.url])))
    assert time.monotonic() - t0 >= 0.95
    assert out[0].text and server.count == 2


def test_dropped_connection_and_truncated_body_are_retried(server):
    server.script = ["drop", "truncated"]
    out = run(gen(make_pool([server.url])))
    assert out[0].text and server.count == 3


def test_timeouts_are_retried_and_bounded(server):
    server.default = ("sleep", 1.0)
    pool = make_pool([server.url], retry=RetryPolicy(max_attempts=2, base_delay=0.01), timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(CallError):
        run(gen(pool))
    assert server.count == 2 and time.monotonic() - t0 < 5


def test_n_is_used_for_several_samples(server):
    out = run(gen(make_pool([server.url]), k=4))
    assert [c.sample_index for c in out] == [0, 1, 2, 3]
    assert server.count == 1 and server.requests[0]["n"] == 4


def test_n_falls_back_to_separate_requests_when_refused(server):
    server.refuse_n_always = True
    pool = make_pool([server.url])

    async def go():
        async with pool:
            a = await pool.generate("m", MSGS, PARAMS, k=3)
            before = server.count
            b = await pool.generate("m", [{"role": "user", "content": "again"}], PARAMS, k=2)
            return a, b, before

    a, b, before = run(go())
    assert len(a) == 3 and len(b) == 2
    # refused twice with n=3 (first with return_token_ids, then without), then three separate requests
    assert before == 2 + 3
    assert server.count == before + 2  # the endpoint is remembered as refusing n
    assert all("n" not in r for r in server.requests[2:])
    assert pool.stats.n_fallbacks == 1


def test_greedy_samples_go_apart_and_the_endpoint_keeps_n(server):
    """vLLM refuses n > 1 at temperature 0; two greedy samples of one prompt (two components alike) are sent as
    two requests, and later samples at a temperature still share one request (the endpoint is not marked as
    refusing n, as it once was after the 400)."""
    from itas.pool.types import SamplingParams

    pool = make_pool([server.url])

    async def go():
        async with pool:
            greedy = await pool.generate("m", MSGS, SamplingParams(temperature=0.0, max_tokens=8), k=2)
            before = server.count
            warm = await pool.generate("m", [{"role": "user", "content": "again"}], PARAMS, k=3)
            return greedy, warm, before

    greedy, warm, before = run(go())
    assert [c.sample_index for c in greedy] == [0, 1] and len(warm) == 3
    assert before == 2 and all(r.get("n", 1) == 1 for r in server.requests[:2])
    assert server.count == before + 1 and server.requests[-1]["n"] == 3
    assert pool.stats.n_fallbacks == 0


def test_n_falls_back_when_fewer_choices_come_back(server):
    server.script = [("fewer", 1)]
    out = run(gen(make_pool([server.url]), k=3))
    assert [c.sample_index for c in out] == [0, 1, 2]
    assert server.count == 3  # n=3 gave one choice; the two missing were asked for one at a time


def test_a_cached_call_makes_no_request(server, tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    first = run(gen(make_pool([server.url], cache)))
    second = run(gen(make_pool([server.url], cache)))
    assert server.count == 1
    assert second[0].cached and second[0].text == first[0].text
    assert second[0].completion_tokens == first[0].completion_tokens and second[0].duration == first[0].duration


def test_eight_samples_after_five_cached_make_one_request_for_three(server, tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    run(gen(make_pool([server.url], cache), k=5))
    assert server.count == 1
    out = run(gen(make_pool([server.url], cache), k=8))
    assert server.count == 2 and server.requests[1]["n"] == 3
    assert [c.sample_index for c in out] == list(range(8))
    assert [c.cached for c in out] == [True] * 5 + [False] * 3


def test_concurrent_requests_for_the_same_samples_ask_once(server):
    server.default = ("sleep", 0.2)
    pool = make_pool([server.url])

    async def go():
        async with pool:
            return await asyncio.gather(*(pool.generate("m", MSGS, PARAMS, k=2) for _ in range(5)))

    outs = run(go())
    assert server.count == 1
    assert all([c.text for c in o] == [c.text for c in outs[0]] for o in outs)


def test_a_call_goes_to_the_replica_with_fewest_in_flight():
    slow, fast = FakeOpenAI().start(), FakeOpenAI().start()
    slow.default = fast.default = ("sleep", 0.6)
    try:
        pool = make_pool([slow.url, fast.url])

        async def go():
            async with pool:
                first = asyncio.create_task(pool.generate("m", [{"role": "user", "content": "q0"}], PARAMS))
                await asyncio.sleep(0.1)  # q0 is in flight at one replica
                fast.default = slow.default = "ok"
                for i in range(1, 5):  # each of these finds the other replica with nothing in flight
                    await pool.generate("m", [{"role": "user", "content": f"q{i}"}], PARAMS)
                await first

        run(go())
        busy, idle = (slow, fast) if slow.requests and slow.requests[0]["messages"][0]["content"] == "q0" else (fast, slow)
        assert busy.count == 1 and idle.count == 4
    finally:
        slow.stop()
        fast.stop()


def test_concurrency_limit_per_endpoint_is_respected(server):
    server.default = ("sleep", 0.2)
    pool = make_pool([server.url], max_concurrency=2)
    peak = 0

    async def watch():
        nonlocal peak
        for _ in range(40):
            peak = max(peak, pool.stats.in_flight)
            await asyncio.sleep(0.02)

    async def go():
        async with pool:
            msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
            await asyncio.gather(watch(), *(pool.generate("m", m, PARAMS) for m in msgs))

    run(go())
    assert peak == 2


def test_missing_api_key_variable_is_a_clear_error(server, monkeypatch):
    monkeypatch.delenv("ITAS_TEST_KEY", raising=False)
    from itas.errors import ConfigError

    with pytest.raises(ConfigError, match="ITAS_TEST_KEY"):
        make_pool([server.url], api_key_env="ITAS_TEST_KEY")


def test_usage_split_without_token_ids_never_exceeds_max_tokens():
    split = _split_usage(120, ["a" * 10, "b" * 200, "c" * 30], ["stop", "length", "stop"], max_tokens=48)
    assert split[1] == 48 and sum(split) <= 120 and max(split) <= 48
