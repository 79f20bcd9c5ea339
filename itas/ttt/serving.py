"""Serving trained adapters through vLLM's LoRA support, loaded while the server runs.

The server must have been started with ``--enable-lora --max-lora-rank R --max-loras N`` (R at least the rank of
every adapter; N adapters in one batch) and the environment variable ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``;
itas starts its managed servers so when the run needs adapters of their model (``serve.lora`` of the pool,
``itas.ttt.lora``).
An adapter is then loaded with ``POST <endpoint>/load_lora_adapter {"lora_name", "lora_path"}`` (0.05 s) on every
replica of the model, and requested by its name as the ``model`` of a chat completion (see
``adapter_params``). Loads are reference-counted per adapter: the questions that use one adapter at the same
time share one load, and the last one unloads it (``/unload_lora_adapter``), so the server holds only the
adapters in use.

The adapter folder must be readable by the server: this works for servers on this machine (every managed
server); a remote endpoint would need the adapter folder on a shared file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from itas.errors import CallError, ServingError
from itas.pool.types import SamplingParams

RUNTIME_LORA_HELP = ("start vLLM with --enable-lora --max-lora-rank 16 --max-loras 4 and the environment variable "
                     "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (servers itas starts get them from serve.lora in the pool)")


def adapter_params(params: SamplingParams, adapter_name: str) -> SamplingParams:
    """Sampling parameters that ask the server for ``adapter_name`` instead of the base model (the request's
    ``model`` field, set through the pass-through parameters; part of the call cache's key)."""
    extra = tuple(sorted({**dict(params.extra), "model": adapter_name}.items()))
    return replace(params, extra=extra)


class LoraServing:
    """Loads and unloads adapters on the endpoints of one pool's models (one instance per pool)."""

    def __init__(self, pool: Any, timeout: float = 60.0, transport: httpx.AsyncBaseTransport | None = None):
        self.pool = pool
        self.timeout = timeout
        self.transport = transport  # tests: an httpx.MockTransport
        self._users: dict[tuple[str, str], int] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._weights: dict[str, str] = {}

    # ---- the base model's weights -------------------------------------------------------------------------
    async def base_weights(self, model: str) -> str:
        """The local folder of ``model``'s weights (to train on): the ``--model`` argument of a managed server,
        else the ``root`` the server reports for the model in ``GET /models``."""
        if model in self._weights:
            return self._weights[model]
        spec = self.pool.config[model]
        found = None
        if spec.serve is not None:
            args = list(spec.serve.args)
            if "--model" in args[:-1]:
                from itas.pool.serving import expand

                found = expand(args[args.index("--model") + 1], 0)
        if found is None or not Path(found).is_dir():
            root = await self._reported_root(model)
            if root and Path(root).is_dir():
                found = root
            else:
                raise ServingError(f"the weights of '{model}' are not on this machine (the server reports "
                                   f"{root!r}); test-time training needs the base model's folder locally")
        self._weights[model] = str(found)
        return self._weights[model]

    async def _reported_root(self, model: str) -> str | None:
        spec = self.pool.config[model]
        for ep in spec.endpoints:
            try:
                async with self._client(model) as http:
                    r = await http.get(ep.url + "/models")
                r.raise_for_status()
                for d in r.json().get("data", []):
                    if d.get("id") == spec.model:
                        return d.get("root")
            except (httpx.HTTPError, ValueError):
                continue
        return None

    # ---- loading ---------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def loaded(self, model: str, name: str, path: Path) -> AsyncIterator[None]:
        """The adapter is loaded on every endpoint of ``model`` while the block runs."""
        key = (model, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if self._users.get(key, 0) == 0:
                await self._post_all(model, "load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
            self._users[key] = self._users.get(key, 0) + 1
        try:
            yield
        finally:
            async with lock:
                self._users[key] -= 1
                if self._users[key] == 0:
                    with contextlib.suppress(CallError, ServingError):
                        await self._post_all(model, "unload_lora_adapter", {"lora_name": name})

    async def _post_all(self, model: str, route: str, body: dict) -> None:
        spec = self.pool.config[model]
        if not spec.endpoints:
            raise ServingError(f"model '{model}' has no running endpoint to load an adapter on")
        async with self._client(model) as http:
            await asyncio.gather(*(self._post(http, ep.url, route, body) for ep in spec.endpoints))

    async def _post(self, http: httpx.AsyncClient, url: str, route: str, body: dict) -> None:
        try:
            r = await http.post(f"{url}/{route}", json=body)
        except httpx.HTTPError as exc:
            raise CallError(f"{route} failed: {type(exc).__name__}: {exc}", endpoint=url) from None
        if r.status_code == 200:
            return
        text = r.text[:300]
        if route == "load_lora_adapter" and r.status_code == 400 and "already been loaded" in text:
            return  # loaded by an earlier process: the name says it is the same adapter
        if r.status_code in (404, 405):
            raise ServingError(f"{url} does not load LoRA adapters at runtime (HTTP {r.status_code} on /{route}): "
                               f"{RUNTIME_LORA_HELP}")
        raise ServingError(f"{url}/{route} refused (HTTP {r.status_code}): {text}")

    def _client(self, model: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, headers=self._headers(model), transport=self.transport)

    def _headers(self, model: str) -> dict[str, str]:
        env = self.pool.config[model].api_key_env
        return {"Authorization": f"Bearer {os.environ.get(env, '') if env else 'EMPTY'}"}
