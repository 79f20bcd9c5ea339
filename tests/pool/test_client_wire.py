"""What the client puts on the wire (it posts the chat completion requests itself, without the OpenAI SDK):
the path, the headers (the API key as a Bearer token), the JSON body (``extra`` merged in, ``n`` and
``return_token_ids`` for several samples), keep-alive connections within the endpoint's concurrency limit, and
the error answers it maps to the retry policy."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from itas.errors import CallError, CallRefusedError
from itas.pool.client import Pool, RetryPolicy
from itas.pool.config import parse_pool
from itas.pool.types import SamplingParams

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
MSGS = [{"role": "user", "content": "What is six times seven? \u00e9\u4e2d"}]


class Recorder:
    """A chat server that records each request's path, headers, raw body and client port. ``answer(body)``
    returns (status, payload, headers); the default answers every request with ``n`` choices."""

    def __init__(self, delay: float = 0.0):
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.answer = self.ok
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                with outer.lock:
                    outer.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "raw": raw,
                                       "body": body, "port": self.client_address[1]})
                if delay:
                    time.sleep(delay)
                status, payload, headers = outer.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def ok(body):
        n = body.get("n", 1)
        choices = [{"index": i, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop",
                    **({"token_ids": list(range(i + 1))} if body.get("return_token_ids") else {})}
                   for i in range(n)]
        return 200, {"choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 3 * n}}, {}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def rec():
    r = Recorder()
    try:
        yield r
    finally:
        r.stop()


def pool_for(url, retry=FAST, max_concurrency=64, **model):
    config = parse_pool({"models": {"m": {"model": "served-name", "endpoints": [
        {"url": url, "max_concurrency": max_concurrency}], **model}}}, "test-pool.yaml")
    return Pool(config, retry=retry, timeout=5.0)


async def gen(pool, params, k=1, msgs=MSGS):
    async with pool:
        return await pool.generate("m", msgs, params, k=k)


def test_the_request_is_an_openai_chat_completion(rec):
    params = SamplingParams(temperature=0.3, max_tokens=9, top_p=0.9, stop=("\n\n",), seed=7,
                            extra=(("min_tokens", 2),))
    out = asyncio.run(gen(pool_for(rec.url), params))
    assert out[0].text == "answer 0" and out[0].prompt_tokens == 11 and out[0].completion_tokens == 3
    (req,) = rec.seen
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer EMPTY"
    assert req["headers"]["content-type"] == "application/json"
    assert req["body"] == {"model": "served-name", "messages": MSGS, "temperature": 0.3, "max_tokens": 9,
                           "top_p": 0.9, "min_tokens": 2, "stop": ["\n\n"], "seed": 7}


def test_several_samples_ask_for_n_and_token_ids(rec):
    params = SamplingParams(max_tokens=9, seed=100, extra=(("min_tokens", 2),))
    out = asyncio.run(gen(pool_for(rec.url), params, k=3))
    (req,) = rec.seen
    body = req["body"]
    assert body["n"] == 3 and body["return_token_ids"] is True and body["min_tokens"] == 2 and body["seed"] == 100
    assert "extra_body" not in body
    assert [c.completion_tokens for c in out] == [1, 2, 3]  # exact per-choice usage from the token ids


def test_a_server_without_return_token_ids_is_asked_again_without_it(rec):
    def answer(body):
        if "return_token_ids" in body:
            return 400, {"error": {"message": "unknown field return_token_ids"}}, {}
        return Recorder.ok(body)

    rec.answer = answer
    out = asyncio.run(gen(pool_for(rec.url), SamplingParams(max_tokens=9), k=2))
    assert len(out) == 2 and len(rec.seen) == 2
    assert "return_token_ids" in rec.seen[0]["body"] and "return_token_ids" not in rec.seen[1]["body"]
    assert rec.seen[1]["body"]["n"] == 2


def test_the_api_key_is_sent_as_a_bearer_token(rec, monkeypatch):
    monkeypatch.setenv("ITAS_TEST_WIRE_KEY", "sk-secret")
    asyncio.run(gen(pool_for(rec.url, api_key_env="ITAS_TEST_WIRE_KEY"), SamplingParams(max_tokens=4)))
    assert rec.seen[0]["headers"]["authorization"] == "Bearer sk-secret"


def test_connections_are_kept_alive_within_the_concurrency_limit():
    rec = Recorder(delay=0.05)
    try:
        pool = pool_for(rec.url, max_concurrency=3)

        async def go():
            async with pool:
                await asyncio.gather(*(pool.generate("m", [{"role": "user", "content": f"q{i}"}],
                                                     SamplingParams(max_tokens=4)) for i in range(15)))

        asyncio.run(go())
        assert len(rec.seen) == 15
        assert len({r["port"] for r in rec.seen}) <= 3
    finally:
        rec.stop()


def test_a_pool_works_in_a_second_event_loop(rec):
    # each endpoint's HTTP session is opened in the running event loop (the SDK's client could not be reused)
    pool = pool_for(rec.url)
    for i in range(2):
        out = asyncio.run(gen(pool, SamplingParams(max_tokens=4), msgs=[{"role": "user", "content": f"q{i}"}]))
        assert out[0].text == "answer 0"
    assert len(rec.seen) == 2


@pytest.mark.parametrize("status", [401, 404, 422])
def test_a_4xx_is_refused_at_once_with_the_servers_message(rec, status):
    rec.answer = lambda body: (status, {"error": {"message": "no such model served-name"}}, {})
    pool = pool_for(rec.url)
    with pytest.raises(CallRefusedError) as err:
        asyncio.run(gen(pool, SamplingParams(max_tokens=4)))
    assert err.value.status == status and "no such model" in str(err.value) and str(status) in str(err.value)
    assert len(rec.seen) == 1 and pool.stats.failures == 1


def test_a_400_is_refused_at_once(rec):
    rec.answer = lambda body: (400, {"error": {"message": "prompt too long"}}, {})
    with pytest.raises(CallRefusedError) as err:
        asyncio.run(gen(pool_for(rec.url), SamplingParams(max_tokens=4)))
    assert err.value.status == 400 and "prompt too long" in str(err.value) and len(rec.seen) == 1


def test_408_and_409_are_retried(rec):
    answers = iter([408, 409])
    rec.answer = lambda body: ((s, {"error": {}}, {}) if (s := next(answers, 200)) != 200 else Recorder.ok(body))
    pool = pool_for(rec.url)
    out = asyncio.run(gen(pool, SamplingParams(max_tokens=4)))
    assert out[0].text and len(rec.seen) == 3 and pool.stats.retries == 2


def test_a_long_retry_after_is_an_error_at_once(rec):
    rec.answer = lambda body: (429, {"error": {"message": "slow down"}}, {"Retry-After": "3600"})
    with pytest.raises(CallError) as err:
        asyncio.run(gen(pool_for(rec.url), SamplingParams(max_tokens=4)))
    assert "429" in str(err.value) and err.value.status == 429 and len(rec.seen) == 1


def test_a_body_that_is_not_an_object_is_retried_then_an_error(rec):
    rec.answer = lambda body: (200, ["not", "an", "object"], {})
    with pytest.raises(CallError) as err:
        asyncio.run(gen(pool_for(rec.url), SamplingParams(max_tokens=4)))
    assert f"after {FAST.max_attempts} attempt(s)" in str(err.value) and len(rec.seen) == FAST.max_attempts


def test_a_refused_connection_is_retried_then_an_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    pool = pool_for(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(CallError) as err:
        asyncio.run(gen(pool, SamplingParams(max_tokens=4)))
    assert f"after {FAST.max_attempts} attempt(s)" in str(err.value)
    assert pool.stats.retries == FAST.max_attempts - 1 and pool.stats.failures == 1
