"""Serving settings for the default pool on this machine: throughput of each model alone and both together,
under two core bindings (both servers on both cores; one core each). Slow (several server starts); run by hand:
``python bench/bench_serving.py``. Results go to bench/results/serving.md."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path

from itas.pool.config import load_pool
from itas.pool.serving import managed, stop_detached
from itas.pool.session import open_pool
from itas.pool.types import SamplingParams

PROMPT = "Write a short story about a robot who learns to paint. Use at least five sentences."
CONCURRENCY = 16
MAX_TOKENS = 96


def with_binding(config, binds: dict[str, str]):
    models = []
    for m in config.models:
        env = dict(m.serve.env)
        env["VLLM_CPU_OMP_THREADS_BIND"] = binds[m.name]
        serve = dataclasses.replace(m.serve, env=tuple(sorted(env.items())))
        models.append(dataclasses.replace(m, serve=serve))
    return dataclasses.replace(config, models=tuple(models), _by_name={})


async def load(pool, names: list[str]) -> dict[str, float]:
    params = SamplingParams(temperature=1.0, max_tokens=MAX_TOKENS)

    async def one(name, i):
        out = await pool.generate(name, [{"role": "user", "content": f"{PROMPT} ({i})"}], params)
        return out[0].completion_tokens

    t0 = time.perf_counter()
    results = await asyncio.gather(*(asyncio.gather(*(one(n, i) for i in range(CONCURRENCY))) for n in names))
    elapsed = time.perf_counter() - t0
    return {n: sum(r) / elapsed for n, r in zip(names, results, strict=True)}


async def measure(config) -> dict[str, float]:
    async with open_pool(config, calibrate=False) as pool:
        await load(pool, pool.config.names)  # warm-up
        alone = {}
        for n in pool.config.names:
            alone.update(await load(pool, [n]))
        together = await load(pool, pool.config.names)
    return {**{f"{n} alone": v for n, v in alone.items()}, **{f"{n} together": v for n, v in together.items()}}


def main() -> None:
    base = load_pool(None)
    stop_detached(base)
    settings = {
        "both servers on cores 0-1": {"smollm2": "0-1", "gemma3": "0-1"},
        "smollm2 on core 0, gemma3 on core 1": {"smollm2": "0", "gemma3": "1"},
    }
    rows = []
    for label, binds in settings.items():
        config = with_binding(base, binds)
        with managed(config, calibrate=False) as running:
            print(f"measuring: {label}", file=sys.stderr)
            res = asyncio.run(measure(running.config))
        rows.append((label, res))
    cols = list(rows[0][1])
    lines = ["| binding | " + " | ".join(f"{c} (tok/s)" for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, res in rows:
        lines.append(f"| {label} | " + " | ".join(f"{res[c]:.0f}" for c in cols) + " |")
    text = (f"{CONCURRENCY} concurrent requests per model, {MAX_TOKENS} output tokens, temperature 1.0\n\n"
            + "\n".join(lines) + "\n")
    out = Path(__file__).parent / "results" / "serving.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
