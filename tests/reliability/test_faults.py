"""Endpoint faults, injected by a proxy on loopback (tests/faultproxy.py): HTTP 500, 429 with Retry-After,
timeouts, dropped connections and truncated bodies.

Counted at the proxy: a call is tried at most ``RetryPolicy.max_attempts`` times and a completed call is never
sent again; a call that keeps failing raises ``CallError`` after exactly that many attempts; a search through
the proxy at 5% and 20% faults completes with the budget met, every trial evaluated or recorded as failed with
its reason, within a bounded time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict

import pytest

from itas.errors import CallError
from itas.pool.client import Pool, RetryPolicy
from itas.pool.config import parse_pool
from itas.pool.types import SamplingParams
from tests.fake_openai import FakeOpenAI
from tests.faultproxy import KINDS, FaultProxy
from tests.reliability.helpers import (
    FLAT_LATENCY,
    SPACE,
    cache_counts,
    check_table_matches_study,
    itas,
    itas_env,
    pool_file,
    request_key_of,
    rows,
    seed_calibration,
    write_yaml,
)

MAX_ATTEMPTS = RetryPolicy().max_attempts
FAST = RetryPolicy(max_attempts=MAX_ATTEMPTS, base_delay=0.02, max_delay=0.1)


@pytest.fixture
def upstream():
    s = FakeOpenAI(model="fake-a").start()
    try:
        yield s
    finally:
        s.stop()


def one_model_pool(url: str):
    return parse_pool({"models": {"smollm2": {"model": "fake-a", "endpoints": [url]}}}, "pool.yaml")


async def ask(url: str, questions: int, timeout: float = 1.0) -> list:
    async with Pool(one_model_pool(url), retry=FAST, timeout=timeout) as pool:
        params = SamplingParams(temperature=0.7, max_tokens=16)
        return await asyncio.gather(*(pool.generate("smollm2", [{"role": "user", "content": f"q{i}"}], params, k=2)
                                      for i in range(questions)), return_exceptions=True)


def per_key(proxy: FaultProxy) -> dict[str, list]:
    out = defaultdict(list)
    for a in proxy.attempts():
        out[a.key].append(a)
    return out


# ---- one call at a time, each fault kind --------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_is_retried_until_the_call_succeeds(upstream, kind):
    # every call meets the fault MAX_ATTEMPTS-1 times in a row, then gets through: all calls complete
    with FaultProxy(upstream.url, rate=1.0, kinds=(kind,), hold=2.0, retry_after=0.2,
                    max_consecutive=MAX_ATTEMPTS - 1) as proxy:
        t0 = time.monotonic()
        results = asyncio.run(ask(proxy.url, questions=4))
        elapsed = time.monotonic() - t0
    assert all(isinstance(r, list) and len(r) == 2 for r in results), results
    keys = per_key(proxy)
    assert len(keys) == 4
    for attempts in keys.values():
        assert [a.fault for a in attempts] == [kind] * (MAX_ATTEMPTS - 1) + ["ok"]
    assert elapsed < 30


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_that_always_fails_stops_after_max_attempts(upstream, kind):
    with FaultProxy(upstream.url, rate=1.0, kinds=(kind,), hold=2.0, retry_after=0.2) as proxy:
        t0 = time.monotonic()
        results = asyncio.run(ask(proxy.url, questions=3))
        elapsed = time.monotonic() - t0
    assert all(isinstance(r, CallError) for r in results), results
    assert all(f"after {MAX_ATTEMPTS} attempt(s)" in str(r) for r in results), results
    keys = per_key(proxy)
    assert len(keys) == 3 and all(len(v) == MAX_ATTEMPTS for v in keys.values())  # bounded, and not fewer
    # timeouts cost the client's timeout per attempt, the rest only the backoff: nothing hangs
    assert elapsed < (MAX_ATTEMPTS * 1.0 + 5 if kind == "timeout" else 10)


def test_retry_after_longer_than_allowed_is_an_error_at_once(upstream):
    with FaultProxy(upstream.url, rate=1.0, kinds=("429",), retry_after=3600) as proxy:
        t0 = time.monotonic()
        results = asyncio.run(ask(proxy.url, questions=1))
    assert isinstance(results[0], CallError) and "429" in str(results[0])
    assert len(proxy.attempts()) == 1 and time.monotonic() - t0 < 5


# ---- whole searches through the proxy ------------------------------------------------------------------------------
def proxied_search(tmp_path, upstreams: dict[str, str], served: dict[str, str], *, rate: float, seed: int,
                   budget: int, subset: int, timeout: float, hold: float, data_dir, space=SPACE,
                   max_consecutive: int | None = MAX_ATTEMPTS - 1, rates: dict[str, float] | None = None,
                   jobs: int = 2, run_timeout: float = 240, calibration: dict | None = None):
    """One proxy per model in front of its upstream; ``itas search`` through them as a subprocess."""
    proxies = {name: FaultProxy(url, rate=(rates or {}).get(name, rate), seed=seed + i, hold=hold,
                                retry_after=1.0, max_consecutive=max_consecutive).start()
               for i, (name, url) in enumerate(upstreams.items())}
    try:
        state = tmp_path / "state"
        seed_calibration(state, {f"{p.url}|{served[name]}": (calibration or {}).get(name, FLAT_LATENCY)
                                 for name, p in proxies.items()})
        pool = pool_file(tmp_path / "pool.yaml", {name: p.url for name, p in proxies.items()}, served)
        space_path = write_yaml(tmp_path / "space.yaml", space)
        run = tmp_path / "run"
        t0 = time.monotonic()
        out = itas("search", "--benchmark", "gsm8k", "--budget", budget, "--subset", subset, "--space", space_path,
                   "--pool", pool, "--out", run, "--jobs", jobs, "--seed", seed, "--timeout", timeout,
                   "--data-dir", data_dir, env=itas_env(state), timeout=run_timeout)
        elapsed = time.monotonic() - t0
    finally:
        for p in proxies.values():
            p.stop()
    return out, run, proxies, elapsed


def check_proxied_search(out, run, proxies, budget: int, *, all_succeed: bool) -> None:
    assert out is None or "Traceback" not in out.stderr, out.stderr[-3000:]
    table = rows(run)
    check_table_matches_study(run)
    for r in table:  # every trial: evaluated (or infeasible / duplicate, which make no call), or failed with why
        assert r["status"] in ("evaluated", "infeasible", "duplicate", "failed"), r
        if r["status"] == "failed":
            assert r["reason"].strip(), r
    evaluated = [r for r in table if r["status"] == "evaluated"]
    if all_succeed:
        assert out.returncode == 0, out.stderr[-3000:]
        assert len(evaluated) == budget  # the budget, exactly
        assert not [r for r in table if r["status"] == "failed"], table
    # a completed call is never sent again: samples answered at the proxies == samples in the call cache
    answered: Counter = Counter()
    for proxy in proxies.values():
        for a in proxy.attempts():
            if a.fault == "ok" and a.status == 200:
                answered[request_key_of(a.body)] += a.n
    assert answered == cache_counts(run / "calls.sqlite")
    if all_succeed:  # every request got through, each within the retry policy's attempts
        for name, proxy in proxies.items():
            for attempts in per_key(proxy).values():
                oks = [a for a in attempts if a.fault == "ok"]
                assert attempts[-1].fault == "ok" and len(attempts) <= MAX_ATTEMPTS * len(oks), (name, attempts)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rate,seed", [(0.05, 1), (0.2, 2)], ids=["5pct", "20pct"])
def test_search_through_faults_completes(tmp_path, upstream, data_dir, rate, seed):
    upstreams = {"smollm2": upstream.url, "gemma3": upstream.url}
    served = {"smollm2": "fake-a", "gemma3": "fake-b"}
    out, run, proxies, elapsed = proxied_search(tmp_path, upstreams, served, rate=rate, seed=seed, budget=10,
                                                subset=5, timeout=2, hold=3, data_dir=data_dir)
    check_proxied_search(out, run, proxies, budget=10, all_succeed=True)
    faults = {k: sum(p.faults().get(k, 0) for p in proxies.values()) for k in KINDS}
    attempts = sum(len(p.attempts()) for p in proxies.values())
    print(f"{attempts} attempts, faults {faults}, {elapsed:.1f} s")
    assert attempts >= 20 and sum(faults.values()) >= 1, faults
    if rate >= 0.2:
        assert sum(1 for v in faults.values() if v) >= 4, faults  # (nearly) every kind met, not only one
    assert elapsed < 240


@pytest.mark.timeout(300)
def test_a_model_that_always_fails_fails_its_trials_with_the_reason(tmp_path, upstream, data_dir, monkeypatch):
    """gemma3 never answers: its trials are recorded failed with the CallError, smollm2's complete; the search
    ends (the budget met, or exit 1 after five failures in a row) and every failed call stopped at the policy.
    In-process, with the default policy's attempts but short backoffs, so that it takes seconds."""
    import functools

    import itas.pool.client
    from itas.search.runner import SearchFailed, SearchRequest, run_search

    monkeypatch.setattr(itas.pool.client, "RetryPolicy", functools.partial(RetryPolicy, base_delay=0.02,
                                                                            max_delay=0.1))
    monkeypatch.setenv("ITAS_STATE_DIR", str(tmp_path / "state"))
    space = {"name": "one-bad", "max_tokens": 32, "stages": [
        {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3]}}]}
    good = FaultProxy(upstream.url, rate=0.0).start()
    bad = FaultProxy(upstream.url, rate=1.0, seed=3, hold=1.5, retry_after=0.2).start()
    proxies = {"smollm2": good, "gemma3": bad}
    try:
        seed_calibration(tmp_path / "state", {f"{good.url}|fake-a": FLAT_LATENCY, f"{bad.url}|fake-b": FLAT_LATENCY})
        pool = pool_file(tmp_path / "pool.yaml", {"smollm2": good.url, "gemma3": bad.url})
        request = SearchRequest(benchmark="gsm8k", budget=3, out=tmp_path / "run", subset=2, seed=3, jobs=2,
                                space=str(write_yaml(tmp_path / "space.yaml", space)), pool=str(pool),
                                data_dir=str(data_dir), timeout=1)
        t0 = time.monotonic()
        try:
            outcome = asyncio.run(run_search(request))
            assert outcome.counted == 3
        except SearchFailed as exc:
            assert "5 trials failed in a row" in str(exc)
        elapsed = time.monotonic() - t0
    finally:
        good.stop()
        bad.stop()
    run = tmp_path / "run"
    check_proxied_search(None, run, proxies, budget=3, all_succeed=False)
    table = rows(run)
    failed = [r for r in table if r["status"] == "failed"]
    assert failed and all("CallError" in r["reason"] and f"after {MAX_ATTEMPTS} attempt(s)" in r["reason"]
                          for r in failed), failed
    assert all("gemma3" in r["description"] for r in failed)
    assert all("gemma3" not in r["description"] for r in table if r["status"] == "evaluated")
    # bounded: no more attempts at gemma3's proxy than MAX_ATTEMPTS per request its failed trials could make
    attempts = bad.attempts()
    assert attempts and all(a.fault != "ok" for a in attempts)
    possible = sum(int(r["estimated_calls"] or 0) for r in failed) * 2  # calls per query x questions
    assert len(attempts) <= MAX_ATTEMPTS * possible, (len(attempts), possible)
    assert elapsed < 120


# ---- the same against the real shared pool ---------------------------------------------------------------------------
@pytest.mark.vllm
@pytest.mark.timeout(1800)
def test_search_through_faults_on_the_real_pool(tmp_path, real_pool, real_pool_file, data_dir):
    """A real search (GSM8K, budget 4, 3 questions, 32-token outputs) through 20% faults in front of the shared
    vLLM servers. The client timeout (60 s) is far above a 32-token call on this pool; held requests exceed it."""
    import yaml

    models = yaml.safe_load(real_pool_file.read_text())["models"]
    upstreams = {name: m["endpoints"][0] for name, m in models.items()}
    served = {name: m["model"] for name, m in models.items()}
    calibration = {m.name: real_pool.latency[m.name].to_dict() for m in real_pool.config.models
                   if m.name in real_pool.latency}
    space = {"name": "e2e-faults", "max_tokens": 32, "stages": [
        {"generate": {"models": list(upstreams), "count": [1, 2], "samples": [1, 2]}},
        {"fuse": {"layers": [0, 1], "model": list(upstreams)[0]}}],
        "constraints": {"max_calls_per_query": 4}}
    out, run, proxies, elapsed = proxied_search(tmp_path, upstreams, served, rate=0.2, seed=5, budget=4, subset=3,
                                                timeout=60, hold=65, data_dir=data_dir, space=space,
                                                run_timeout=1700, calibration=calibration)
    print(out.stderr[-3000:])
    print(json.dumps({name: p.faults() for name, p in proxies.items()}))
    check_proxied_search(out, run, proxies, budget=4, all_succeed=True)
