"""``open_pool``: the one way a command gets a working pool.

It loads the pool YAML (or the embedded default), starts or adopts the servers itas manages, calibrates the
latency model of every model (managed servers at start; other endpoints once, remembered in the state
directory), opens the call cache, and yields a ``Pool``. ``lora``: the models whose managed servers must load
LoRA adapters (test-time training; ``itas.ttt.lora.lora_models`` computes it from a search space or an
architecture); the others start without LoRA, which would slow them down. On exit it closes the client and stops the servers
this process started, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

from itas.errors import InputError
from itas.fsutil import atomic_write
from itas.paths import state_dir
from itas.pool import serving
from itas.pool.cache import CallCache
from itas.pool.client import Pool, RetryPolicy
from itas.pool.config import PoolConfig, load_pool
from itas.pool.latency import LatencyModel


def _calibration_file() -> Path:
    return state_dir() / "calibration.json"


def endpoint_latency(config: PoolConfig, report: Callable[[str], None]) -> dict[str, LatencyModel]:
    """Latency models of the pool's unmanaged models, measured once per (url, model) and remembered."""
    path = _calibration_file()
    try:
        known = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        known = {}
    out: dict[str, LatencyModel] = {}
    changed = False
    for m in config.models:
        if m.managed or not m.endpoints:
            continue
        key = f"{m.endpoints[0].url}|{m.model}"
        if key in known:
            out[m.name] = LatencyModel.from_dict(known[key])
            continue
        try:
            api_key = os.environ.get(m.api_key_env, "") if m.api_key_env else "EMPTY"
            lm = serving.calibrate_endpoint(m.endpoints[0].url, m.model, api_key=api_key)
        except Exception as exc:  # an endpoint that cannot be calibrated uses measured times
            report(f"{m.name}: no latency calibration ({type(exc).__name__}); measured call times are used")
            continue
        report(f"{m.name}: calibrated latency model at {m.endpoints[0].url}")
        out[m.name] = lm
        known[key] = lm.to_dict()
        changed = True
    if changed:
        atomic_write(path, json.dumps(known, indent=2))
    return out


@contextlib.asynccontextmanager
async def open_pool(pool: str | Path | PoolConfig | None = None, *, cache: str | Path | None = None,
                    report: Callable[[str], None] | None = None, timeout: float = 600.0,
                    retry: RetryPolicy | None = None, calibrate: bool = True,
                    lora: Collection[str] = (), latency: dict[str, LatencyModel] | None = None) -> AsyncIterator[Pool]:
    """The pool, its managed servers started (and stopped on exit). Latency models are calibrated on the idle
    servers, except those given in ``latency`` (a resumed search keeps the ones its trials were scored with)."""
    report = report or (lambda _: None)
    config = pool if isinstance(pool, PoolConfig) else load_pool(pool)
    call_cache = CallCache(cache) if cache is not None else None
    running = None
    known = dict(latency or {})
    try:
        if any(m.managed for m in config.models):
            unknown = any(m.managed and m.name not in known for m in config.models)
            running = await _started(config, report=report, calibrate=calibrate and unknown, lora=frozenset(lora))
            config = running.config
        models = dict(running.latency) if running else {}
        if calibrate and any(not m.managed and m.name not in known for m in config.models):
            models.update(await asyncio.to_thread(endpoint_latency, config, report))
        models.update(known)
        async with Pool(config, call_cache, timeout=timeout, retry=retry, latency=models) as p:
            yield p
    finally:
        if running is not None:
            await asyncio.shield(asyncio.to_thread(running.stop, report))
        if call_cache is not None:
            call_cache.close()


async def _started(config: PoolConfig, **kw) -> serving.RunningPool:
    """``serving.start_pool`` in a thread. Cancelled (Ctrl-C) while the servers start, it tells the thread to stop
    waiting and waits for it: the servers it started are stopped now, not left to their watchdogs."""
    cancel = threading.Event()
    start = asyncio.ensure_future(asyncio.to_thread(serving.start_pool, config, cancel=cancel, **kw))
    try:
        return await asyncio.shield(start)
    except asyncio.CancelledError:
        cancel.set()
        try:
            late = await asyncio.shield(start)
        except BaseException:  # the thread stopped what it had started
            raise asyncio.CancelledError from None
        await asyncio.shield(asyncio.to_thread(late.stop))  # it had finished before it saw the cancel
        raise


def check_reachable(pool_config, attempts: int = 3) -> None:
    """Every endpoint of the pool's unmanaged models answers HTTP (any status will do): a server that cannot be
    reached is bad input, reported before the first call rather than as a run of failed questions and trials."""
    import httpx

    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        for m in pool_config.models:
            if m.managed:
                continue
            for ep in m.endpoints:
                for attempt in range(1, attempts + 1):
                    try:
                        http.get(ep.url + "/models")
                        break
                    except httpx.HTTPError as exc:
                        if attempt == attempts:
                            raise InputError(
                                f"model '{m.name}': no server answers at {ep.url} ({type(exc).__name__}); start "
                                f"it, or give a reachable URL in models.{m.name}.endpoints of {pool_config.source}"
                            ) from None
                        time.sleep(0.5)
