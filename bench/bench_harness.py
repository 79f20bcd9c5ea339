"""itas's own CPU time per model call during a whole search against instant endpoints: the sampler and its study,
the call cache, the executor, scoring and the client, where bench/bench_client.py measures the client alone.

A search of the shipped default space on GSM8K, its two models each served by the scripted instant server
(tests/fake_openai.py, a process of its own, so its CPU is not counted), and a probe of the event loop's lateness
(how long a call's answer could wait for the loop).

    .venv/bin/python bench/bench_harness.py                  # budget 100, 20 questions, --jobs 16
    .venv/bin/python bench/bench_harness.py --delay 0.5      # each answer after 0.5 s (calls overlap as on a server)
    .venv/bin/python bench/bench_harness.py --profile 30     # under cProfile, the top 30 entries by own time
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma-3-270m"}  # the default pool's, as the space names


@contextlib.contextmanager
def fake_pool(work: Path, delay: float):
    """A pool file naming the default pool's models, each on a scripted server (answering after ``delay`` s)."""
    from tests.fake_openai import in_process

    with contextlib.ExitStack() as stack:
        models = {name: {"model": model, "context_length": 2048, "max_concurrency": 256,
                         "endpoints": [stack.enter_context(in_process(model, delay, cwd=str(REPO)))]}
                  for name, model in MODELS.items()}
        path = work / "pool.yaml"
        path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
        yield path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _search_with_probe(request, tick: float = 0.005) -> tuple[object, list[float], float]:
    """Run the search; meanwhile a task that asks to wake every ``tick`` s records how late the loop woke it.
    (The search's outcome, the lateness of each wake-up, the event loop thread's CPU seconds.)"""
    from itas.search.runner import run_search

    late: list[float] = []
    done = asyncio.Event()

    async def probe():
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(tick)
            late.append(time.perf_counter() - t - tick)

    task = asyncio.create_task(probe())
    m0 = time.thread_time()
    try:
        outcome = await run_search(request)
    finally:
        done.set()
        await task
    return outcome, late, time.thread_time() - m0


def measure(budget: int = 100, subset: int = 20, jobs: int = 16, delay: float = 0.0, seed: int = 0,
            profiler: cProfile.Profile | None = None, keep: bool = False) -> dict:
    """One search against the fake pool; what it cost this process (its results directory removed unless
    ``keep``)."""
    from itas.search.runner import SearchRequest

    os.environ.setdefault("ITAS_ORPHAN_GRACE", "30")
    data_dir = os.environ.get("ITAS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    work = Path(tempfile.mkdtemp(prefix="itas-bench-harness-"))
    with fake_pool(work, delay) as pool:
        request = SearchRequest(benchmark="gsm8k", budget=budget, subset=subset, space="default", jobs=jobs,
                                out=work / "run", data_dir=data_dir, pool=str(pool), seed=seed)
        if profiler:
            profiler.enable()
        c0, t0 = _cpu(), time.perf_counter()
        outcome, late, loop_cpu = asyncio.run(_search_with_probe(request))
        cpu, wall = _cpu() - c0, time.perf_counter() - t0
        if profiler:
            profiler.disable()
    try:
        db = sqlite3.connect(work / "run" / "calls.sqlite")
        try:
            requests, samples = db.execute("SELECT COUNT(DISTINCT key), COUNT(*) FROM calls").fetchone()
        finally:
            db.close()
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=None, storage=f"sqlite:///{work / 'run' / 'study.db'}")
        calls = sum(int(t.user_attrs["metrics"]["total_calls"]) for t in study.trials
                    if t.user_attrs.get("itas_status") == "evaluated")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    late.sort()
    return {"calls": calls, "counted": outcome.counted, "cpu": cpu, "loop_cpu": loop_cpu, "wall": wall,
            "requests": requests, "samples": samples,
            "late_p99": late[int(0.99 * (len(late) - 1))] if late else 0.0, "late_max": late[-1] if late else 0.0,
            "stalled": sum(x for x in late if x > 0.02), "out": work / "run" if keep else None}


def row(budget: int = 100, subset: int = 20, jobs: int = 16, runs: int = 3) -> tuple[str, str, str, str]:
    """make bench's row: a whole search's CPU per call (DESIGN.md's count: a request with n=k is k calls, cache
    hits included) against instant endpoints, the median of ``runs`` searches."""
    rs = sorted((measure(budget, subset, jobs, seed=seed) for seed in range(runs)), key=lambda r: r["cpu"] / r["calls"])
    r = rs[len(rs) // 2]
    ms = r["cpu"] / r["calls"] * 1000
    spread = "-".join(f"{x['cpu'] / x['calls'] * 1000:.2f}" for x in (rs[0], rs[-1]))
    return (f"itas's CPU time per call during a whole search against instant endpoints (median of {runs} "
            f"{r['counted']}-trial searches of the default space, GSM8K, {subset} questions, --jobs {jobs}, range "
            f"{spread} ms; the median: {r['cpu']:.1f} CPU-seconds, {r['loop_cpu']:.1f} of them on the event loop "
            f"and the rest the sampler's thread, for the {r['calls']:,} calls its trials made, {r['samples']:,} of "
            f"them sent, in {r['wall']:.0f} s, start-up included: the sampler and its study, the cache, the "
            f"executor, scoring, the trial folders and the client; {r['cpu'] / r['samples'] * 1000:.1f} ms per call "
            f"sent; the event loop woke a waiting task {r['late_p99'] * 1000:.0f} ms late at the 99th percentile)",
            f"{ms:.2f} ms", "< 1 ms", "met" if ms < 1.0 else "NOT MET")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--subset", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, help="profile the search; print this many top entries")
    ap.add_argument("--keep", action="store_true", help="keep the search's results directory")
    a = ap.parse_args()
    prof = cProfile.Profile(time.thread_time) if a.profile else None  # the event loop thread's CPU
    r = measure(a.budget, a.subset, a.jobs, a.delay, a.seed, prof, keep=a.keep)
    print(f"{r['counted']} trials, {r['requests']:,} requests ({r['samples']:,} samples) in {r['wall']:.1f} s; "
          f"{r['cpu']:.1f} CPU-s ({r['loop_cpu']:.1f} on the event loop's thread): "
          f"{r['cpu'] / r['calls'] * 1000:.2f} ms per call of the {r['calls']:,} the trials made (cache hits included), "
          f"{r['cpu'] / r['samples'] * 1000:.2f} ms per call sent"
          f"{' (inflated by the profiler)' if prof else ''}; loop late p99 {r['late_p99'] * 1000:.0f} ms, "
          f"max {r['late_max'] * 1000:.0f} ms, stalls over 20 ms summed {r['stalled']:.1f} s"
          f"{'; run in ' + str(r['out']) if r['out'] else ''}")
    if prof:
        stats = pstats.Stats(prof).sort_stats("tottime")
        stats.print_stats(a.profile)
        stats.sort_stats("cumulative").print_stats(a.profile)


if __name__ == "__main__":
    main()
