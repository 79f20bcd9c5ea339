"""itas's own CPU time per model call against an instant endpoint (the logic of bench/run.py's
``client_overhead``), optionally under cProfile.

    .venv/bin/python bench/bench_client.py                 # median of 3 runs of 3000 calls at concurrency 64
    .venv/bin/python bench/bench_client.py --profile 25    # one profiled run, the top 25 entries by own time
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@contextlib.contextmanager
def fake_endpoint(concurrency: int):
    """A pool config of one model on the scripted instant server (tests/fake_openai.py), run meanwhile."""
    from itas.pool.config import parse_pool
    from tests.fake_openai import in_process

    with in_process(cwd=str(REPO)) as url:
        yield parse_pool({"models": {"m": {"model": "fake-model", "max_concurrency": concurrency,
                                           "endpoints": [url]}}}, "bench")


def measure(calls: int = 3000, concurrency: int = 64, runs: int = 3) -> list[float]:
    """itas's CPU seconds per call against the instant server, one value per run, sorted."""
    with fake_endpoint(concurrency) as config:
        return sorted(asyncio.run(_run(config, calls, concurrency, None)) for _ in range(runs))


async def _run(config, calls: int, concurrency: int, profiler: cProfile.Profile | None) -> float:
    from itas.pool.client import Pool
    from itas.pool.types import SamplingParams

    async with Pool(config) as pool:
        sem = asyncio.Semaphore(concurrency)

        async def one(i):
            async with sem:
                await pool.generate("m", [{"role": "user", "content": f"question {i}"}], SamplingParams(max_tokens=8))

        await asyncio.gather(*(one(i) for i in range(200)))  # warm-up
        if profiler:
            profiler.enable()
        c0 = time.process_time()
        await asyncio.gather(*(one(i) for i in range(200, 200 + calls)))
        per_call = (time.process_time() - c0) / calls
        if profiler:
            profiler.disable()
        return per_call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="profile one run; print this many top entries")
    a = ap.parse_args()

    if a.profile:
        with fake_endpoint(a.concurrency) as config:
            prof = cProfile.Profile(time.process_time)  # CPU time, as the measurement
            per_call = asyncio.run(_run(config, a.calls, a.concurrency, prof))
        print(f"profiled run: {per_call * 1000:.3f} ms per call (inflated by the profiler)")
        stats = pstats.Stats(prof).sort_stats("tottime")
        stats.print_stats(a.profile)
        stats.sort_stats("cumulative").print_stats(a.profile)
        return
    runs = measure(a.calls, a.concurrency, a.runs)
    med = runs[len(runs) // 2]
    print(f"{med * 1000:.3f} ms per call (median of {len(runs)}; runs "
          f"{', '.join(f'{r * 1000:.3f}' for r in runs)})")


if __name__ == "__main__":
    main()
