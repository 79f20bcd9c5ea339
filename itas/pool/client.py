"""The async client: every model call of itas goes through ``Pool.generate``.

One aiohttp session per endpoint (its own keep-alive connection pool, as large as the endpoint's concurrency
limit) that posts the OpenAI chat completion requests itself: the SDK's request and response machinery cost
several times the CPU of the HTTP exchange. A semaphore per endpoint (its concurrency limit); a call goes to the replica with the fewest requests in flight; one retry policy for
every call (exponential backoff on 5xx, timeouts, dropped connections and malformed bodies; 429 waits for
Retry-After); typed errors. Samples are read from the call cache first, and only the missing ones are asked
for, in one request with ``n`` where the server allows it and in separate requests where it refuses ``n`` or
returns fewer choices. Concurrent requests for the same sample wait for one another instead of asking twice.
Models of one ``turns`` group (servers that share compute) send their requests in turns (``itas.pool.turns``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass

import aiohttp
import httpx
import yarl

from itas.errors import CallError, CallRefusedError, ConfigError
from itas.pool.cache import CallCache, request_key
from itas.pool.config import Endpoint, ModelSpec, PoolConfig
from itas.pool.latency import LatencyModel
from itas.pool.turns import Turns
from itas.pool.types import Completion, SamplingParams


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # the first try and up to four retries
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a server asking for longer than this is an error

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential with full jitter in its upper half."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * rng.random())


@dataclass
class PoolStats:
    """Counters for progress displays and reports. ``calls_sent`` counts samples the servers produced."""

    requests_sent: int = 0
    calls_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    in_flight: int = 0  # requests currently at a server
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    n_fallbacks: int = 0


class _EndpointState:
    def __init__(self, model: ModelSpec, endpoint: Endpoint, timeout: float):
        self.endpoint = endpoint
        self.semaphore = asyncio.Semaphore(endpoint.max_concurrency)
        self.pending = 0  # waiting for the semaphore or at the server
        self.supports_n = model.supports_n
        self.token_ids = True  # vLLM returns each choice's token ids on request: exact per-sample usage
        api_key = "EMPTY"
        if model.api_key_env:
            api_key = os.environ.get(model.api_key_env) or ""
            if not api_key:
                raise ConfigError(f"environment variable {model.api_key_env} is not set (the API key of model "
                                  f"'{model.name}')", key=f"models.{model.name}.api_key_env")
        self.api_key = api_key
        self.chat_url = yarl.URL(endpoint.url.rstrip("/") + "/chat/completions")
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "Accept": "application/json", "User-Agent": "itas"}
        # a timeout per connect and per read (no total: a long generation may take its time), as the SDK had
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The endpoint's session, opened on first use in the running event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            # keep-alive shorter than uvicorn's 5 s (vLLM's server), so that an idle connection is not reused
            # just as the server closes it
            connector = aiohttp.TCPConnector(limit=self.endpoint.max_concurrency, limit_per_host=0,
                                             keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers, timeout=self.timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar(),
                                                  skip_auto_headers=("Accept-Encoding",), auto_decompress=True)
            self._loop = loop
        return self._session

    async def post(self, payload: bytes) -> tuple[int, object, bytes]:
        """POST a chat completion request: (status, headers, body). Raises aiohttp's errors and TimeoutError
        for timeouts, refused or dropped connections and truncated bodies."""
        async with self.session().post(self.chat_url, data=payload, allow_redirects=False) as resp:
            return resp.status, resp.headers, await resp.read()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                await session.close()
            except RuntimeError:  # opened in an event loop that is gone
                pass


class _GroupServers:
    """Pauses and resumes the vLLM servers of a turns group's models (``itas.pool.turns``) through vLLM's
    development endpoints (``VLLM_SERVER_DEV_MODE=1``). A server that cannot be reached is left as it is: its
    requests fail on their own."""

    def __init__(self, http: httpx.AsyncClient, endpoints: dict[str, list[_EndpointState]]):
        self._http = http
        self._endpoints = endpoints

    def members(self) -> list[str]:
        return list(self._endpoints)

    def _roots(self, member: str):
        for ep in self._endpoints[member]:
            url = ep.endpoint.url.rstrip("/")
            yield url.removesuffix("/v1"), {"Authorization": f"Bearer {ep.api_key}"}

    async def can_pause(self) -> bool:
        try:
            for member in self._endpoints:
                for root, headers in self._roots(member):
                    r = await self._http.get(root + "/is_sleeping", headers=headers, timeout=10.0)
                    if r.status_code != 200 or "is_sleeping" not in r.text:
                        return False
        except httpx.HTTPError:
            return False
        return bool(self._endpoints)

    async def _post(self, member: str, path: str, params: dict) -> None:
        for root, headers in self._roots(member):
            try:
                await self._http.post(root + path, params=params, headers=headers, timeout=60.0)
            except httpx.HTTPError:
                pass

    async def pause(self, member: str) -> None:
        await self._post(member, "/sleep", {"level": "0", "mode": "keep"})  # stop scheduling, keep requests

    async def resume(self, member: str) -> None:
        await self._post(member, "/wake_up", {"tags": "scheduling"})


class Pool:
    """The runtime pool: configuration, endpoints, cache, counters and latency models."""

    def __init__(self, config: PoolConfig, cache: CallCache | None = None, *, retry: RetryPolicy | None = None,
                 timeout: float = 600.0, latency: dict[str, LatencyModel] | None = None, seed: int = 0):
        self.config = config
        self.cache = cache
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stats = PoolStats()
        self.latency: dict[str, LatencyModel] = dict(latency or {})
        self._rng = random.Random(seed)
        total = sum(e.max_concurrency for m in config.models for e in m.endpoints) or 100
        limits = httpx.Limits(max_connections=total + 16, max_keepalive_connections=total + 16)
        self._http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=30.0))  # pooling API
        self._endpoints: dict[str, list[_EndpointState]] = {}
        for m in config.models:
            if not m.endpoints:
                continue
            self._endpoints[m.name] = [_EndpointState(m, e, timeout) for e in m.endpoints]
        self._inflight: dict[tuple[str, int], asyncio.Future] = {}
        # models that share compute take turns (see itas.pool.turns): one Turns per group
        self.turns: dict[str, Turns] = {}
        for group in {m.turns for m in config.models if m.turns}:
            members = {m.name: self._endpoints.get(m.name, []) for m in config.models if m.turns == group}
            self.turns[group] = Turns(_GroupServers(self._http, members))

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for turns in self.turns.values():
            await turns.aclose()  # resume the servers it paused
        for states in self._endpoints.values():
            for ep in states:
                await ep.aclose()
        await self._http.aclose()

    # ---- public -----------------------------------------------------------------------------------
    def context_length(self, model: str) -> int:
        return self.config[model].context_length

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return self.config.cost(model, prompt_tokens, completion_tokens)

    def call_latency(self, model: str, prompt_tokens: int, completion_tokens: int, measured: float) -> float:
        """Modelled seconds of one call (the measured time where the model has no calibration)."""
        lm = self.latency.get(model)
        return lm.predict(prompt_tokens, completion_tokens) if lm else measured

    async def generate(self, model: str, messages: list[dict], params: SamplingParams, k: int = 1,
                       start: int = 0) -> list[Completion]:
        """Samples ``start .. start+k-1`` of (model, messages, params): cached ones from the cache, the rest
        from the server in as few requests as it allows. Raises ``CallError`` when a request fails for good."""
        spec = self.config[model]
        key = request_key(spec.model, messages, params)
        wanted = range(start, start + k)
        found: dict[int, Completion] = self.cache.lookup(key, wanted) if self.cache else {}
        self.stats.cache_hits += len(found)
        waits: dict[int, asyncio.Future] = {}
        missing: list[int] = []
        for i in wanted:
            if i in found:
                continue
            fut = self._inflight.get((key, i))
            if fut is not None:
                waits[i] = fut
            else:
                missing.append(i)
        if missing:
            loop = asyncio.get_running_loop()
            own = {i: loop.create_future() for i in missing}
            for i, f in own.items():
                self._inflight[(key, i)] = f
            try:
                produced = await self._fetch(spec, key, messages, params, missing)
            except BaseException as exc:
                for i, f in own.items():
                    self._inflight.pop((key, i), None)
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else CallError("cancelled"))
                        f.exception()  # mark retrieved: the waiters (if any) re-raise it
                raise
            for c in produced:
                found[c.sample_index] = c
                f = own[c.sample_index]
                self._inflight.pop((key, c.sample_index), None)
                if not f.done():
                    f.set_result(c)
        for i, fut in waits.items():
            c = await asyncio.shield(fut)
            found[i] = Completion(**{**c.__dict__, "cached": True})
        out = [found[i] for i in wanted]
        return [c if c.model == model else Completion(**{**c.__dict__, "model": model}) for c in out]

    async def reward(self, model: str, messages: list[dict], response: str) -> float:
        """The score a reward model (served behind vLLM's pooling API, ``POST /pooling``) gives ``response`` to
        the conversation ``messages``. The last value of the returned vector is the reward."""
        spec = self.config[model]
        ep = self._pick(model)
        base = ep.endpoint.url[:-3] if ep.endpoint.url.endswith("/v1") else ep.endpoint.url
        body = {"model": spec.model, "messages": [*messages, {"role": "assistant", "content": response}]}
        last: Exception | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                async with ep.semaphore:
                    self.stats.requests_sent += 1
                    r = await self._http.post(base + "/pooling", json=body,
                                              headers={"Authorization": f"Bearer {ep.api_key}"})
                if r.status_code >= 500 or r.status_code == 429:
                    raise httpx.HTTPStatusError(f"HTTP {r.status_code}", request=r.request, response=r)
                if r.status_code != 200:
                    raise CallRefusedError(f"pooling request refused (HTTP {r.status_code}): {r.text[:200]}",
                                           endpoint=ep.endpoint.url, status=r.status_code)
                data = r.json()["data"][0]["data"]
                while isinstance(data, list):
                    data = data[-1]
                return float(data)
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
                last = exc
                self.stats.retries += 1
                await asyncio.sleep(self.retry.backoff(attempt, self._rng))
        self.stats.failures += 1
        raise CallError(f"reward request failed after {self.retry.max_attempts} attempts: {last}",
                        endpoint=ep.endpoint.url)

    # ---- internals ----------------------------------------------------------------------------------
    def _pick(self, model: str) -> _EndpointState:
        try:
            states = self._endpoints[model]
        except KeyError:
            raise ConfigError(f"model '{model}' has no running endpoint; start the pool first (itas pool up)",
                              source=self.config.source, key=f"models.{model}") from None
        if len(states) == 1:
            return states[0]
        low = min(s.pending for s in states)
        return self._rng.choice([s for s in states if s.pending == low])

    async def _fetch(self, spec: ModelSpec, key: str, messages: list[dict], params: SamplingParams,
                     indices: list[int]) -> list[Completion]:
        """Ask the server for the samples at ``indices`` (all missing from the cache) and store them."""
        results: list[Completion] = []
        todo = list(indices)
        # vLLM refuses n > 1 with greedy sampling ("n must be 1 when using greedy sampling"): such samples (two
        # components alike at temperature 0) go as separate requests, and the endpoint is not taken for one that
        # refuses n (which would send every later sample alone)
        greedy = params.temperature == 0
        while todo:
            ep = self._pick(spec.name)
            if ep.supports_n and len(todo) > 1 and not greedy:
                got = await self._request(spec, ep, messages, params, todo, use_n=True)
            else:
                got = await self._request(spec, ep, messages, params, todo[:1], use_n=False)
                if len(todo) > 1 and (greedy or not ep.supports_n):
                    # greedy, or the endpoint refuses n: the remaining samples as separate concurrent requests
                    rest = await asyncio.gather(*(self._request(spec, self._pick(spec.name), messages, params,
                                                                [i], use_n=False) for i in todo[1:]))
                    for r in rest:
                        got.extend(r)
            if self.cache is not None and got:
                self.cache.store(key, spec.model, {"messages": messages, "params": params.key()}, got)
            results.extend(got)
            done = {c.sample_index for c in got}
            todo = [i for i in todo if i not in done]
        return results

    async def _request(self, spec: ModelSpec, ep: _EndpointState, messages: list[dict], params: SamplingParams,
                       indices: list[int], *, use_n: bool) -> list[Completion]:
        n = len(indices) if use_n else 1
        body = {"model": spec.model, "messages": messages, "temperature": params.temperature,
                "max_tokens": params.max_tokens, "top_p": params.top_p}
        if params.extra:
            body["extra_body"] = dict(params.extra)
        if n > 1:
            body["n"] = n
            if ep.token_ids:
                body["extra_body"] = {**body.get("extra_body", {}), "return_token_ids": True}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed + indices[0]
        attempt = 0
        payload = _encode(body)
        turns = self.turns.get(spec.turns) if spec.turns else None
        ep.pending += 1
        try:
            while True:
                attempt += 1
                try:
                    async with ep.semaphore:
                        if turns is not None:
                            await turns.acquire(spec.name)
                        self.stats.in_flight += 1
                        self.stats.requests_sent += 1
                        t0 = time.perf_counter()
                        try:
                            status, headers, raw = await ep.post(payload)
                        finally:
                            self.stats.in_flight -= 1
                            if turns is not None:
                                turns.release(spec.name)
                        duration = time.perf_counter() - t0
                    if 200 <= status < 300:
                        return self._parse(spec, ep, json.loads(raw), indices, n, duration, params.max_tokens)
                    if status == 400:
                        if "return_token_ids" in body.get("extra_body", {}):
                            # a server that does not know return_token_ids: usage is split by text length instead
                            ep.token_ids = False
                            body["extra_body"].pop("return_token_ids")
                            if not body["extra_body"]:
                                body.pop("extra_body")
                            payload = _encode(body)
                            attempt -= 1
                            continue
                        if n > 1:
                            # a server that refuses n: remember it, and ask for one sample at a time from now on
                            ep.supports_n = False
                            self.stats.n_fallbacks += 1
                            n = 1
                            body.pop("n", None)
                            payload = _encode(body)
                            attempt -= 1
                            continue
                        self.stats.failures += 1
                        raise CallRefusedError(f"request refused (HTTP 400): {_status_text(status, raw)}",
                                               endpoint=ep.endpoint.url, status=400)
                    retryable = status >= 500 or status in (408, 409, 429)
                    if not retryable or attempt >= self.retry.max_attempts:
                        self.stats.failures += 1
                        err = CallError if retryable else CallRefusedError
                        raise err(f"HTTP {status} after {attempt} attempt(s): {_status_text(status, raw)}",
                                  endpoint=ep.endpoint.url, status=status)
                    delay = self.retry.backoff(attempt, self._rng)
                    if status == 429:
                        after = _retry_after(headers)
                        if after is not None:
                            if after > self.retry.max_retry_after:
                                self.stats.failures += 1
                                raise CallError(f"HTTP 429 asks to wait {after:.0f} s, more than the "
                                                f"{self.retry.max_retry_after:.0f} s allowed",
                                                endpoint=ep.endpoint.url, status=429)
                            delay = after
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                    # timeouts, refused or dropped connections, truncated or malformed bodies
                    if attempt >= self.retry.max_attempts:
                        self.stats.failures += 1
                        raise CallError(f"{type(exc).__name__} after {attempt} attempt(s): {_describe(exc)}",
                                        endpoint=ep.endpoint.url) from None
                    delay = self.retry.backoff(attempt, self._rng)
                self.stats.retries += 1
                await asyncio.sleep(delay)
        finally:
            ep.pending -= 1

    def _parse(self, spec: ModelSpec, ep: _EndpointState, resp, indices: list[int], n: int,
               duration: float, body_max_tokens: int) -> list[Completion]:
        if not isinstance(resp, dict):
            raise ValueError("the response is not a JSON object")
        choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise ValueError("response has no choices")
        if n > 1 and len(choices) < n:
            # fewer choices than asked: keep what came, ask for the rest one at a time from now on
            ep.supports_n = False
            self.stats.n_fallbacks += 1
        usage = resp.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total_completion = int(usage.get("completion_tokens") or 0)
        choices = choices[: len(indices)]
        texts = [((c.get("message") or {}).get("content") or "") for c in choices]
        if len(choices) == 1:
            split = [total_completion]
        else:
            ids = [c.get("token_ids") for c in choices]
            if all(isinstance(t, list) for t in ids):
                split = [len(t) for t in ids]
            else:
                split = _split_usage(total_completion, texts, [c.get("finish_reason") for c in choices],
                                     max_tokens=body_max_tokens)
        out = []
        for idx, text, ctoks, ch in zip(indices, texts, split, choices, strict=False):
            out.append(Completion(text=text, model=spec.name, sample_index=idx, prompt_tokens=prompt_tokens,
                                  completion_tokens=ctoks, duration=duration, finish_reason=ch.get("finish_reason")))
        self.stats.calls_sent += len(out)
        self.stats.prompt_tokens += prompt_tokens * len(out)
        self.stats.completion_tokens += total_completion
        self.stats.cost += sum(self.config.cost(spec.name, c.prompt_tokens, c.completion_tokens) for c in out)
        return out


def _wire(body: dict) -> dict:
    extra = body.get("extra_body")
    if not extra:
        return body
    out = {k: v for k, v in body.items() if k != "extra_body"}
    out.update(extra)
    return out


def _encode(body: dict) -> bytes:
    """The request's JSON: the body with ``extra_body`` merged in, as the OpenAI SDK sends it."""
    return json.dumps(_wire(body)).encode()


def _split_usage(total: int, texts: list[str], finish: list[str | None], max_tokens: int) -> list[int]:
    """Per-choice completion tokens when the server reports only the total: a choice cut at the length limit
    used exactly ``max_tokens``; the rest is split in proportion to text length, none above ``max_tokens``."""
    out = [max_tokens if f == "length" else 0 for f in finish]
    rest = max(0, total - sum(out))
    free = [i for i, f in enumerate(finish) if f != "length"]
    if free:
        shares = _apportion(rest, [max(1, len(texts[i])) for i in free])
        for i, v in zip(free, shares, strict=True):
            out[i] = min(max_tokens, v)
    return out


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    wsum = sum(weights)
    raw = [total * w / wsum for w in weights]
    base = [int(r) for r in raw]
    rest = total - sum(base)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - base[i], reverse=True)
    for i in order[:rest]:
        base[i] += 1
    return base


def _retry_after(headers) -> float | None:
    """Seconds a ``Retry-After`` header (seconds or an HTTP date) asks to wait; None without a usable one."""
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _status_text(status: int, raw: bytes) -> str:
    """An error answer, for messages: its status and the start of its body (the server's error message)."""
    text = raw[:400].decode("utf-8", errors="replace")
    return _short(f"Error code: {status} - {text}")


def _describe(exc: BaseException) -> str:
    text = _short(exc)
    if not text and isinstance(exc, TimeoutError):
        return "the request timed out"
    return text or type(exc).__name__


def _short(exc: BaseException | str) -> str:
    text = str(exc).replace("\n", " ")
    return text[:200]
