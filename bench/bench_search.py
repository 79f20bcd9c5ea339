"""A real search on the default pool, measured: sample reuse and engine use during a search.

- sample reuse: the calls the servers actually produced during a 50-trial search of the shipped default space,
  divided by the calls its evaluated trials would have sent without the call cache (each trial's own count of
  the calls its architecture made, cached or not). Target <= 0.5.
- engine use: generated tokens/s during that search (completion tokens of every call it sent, over the time
  from its first call's start to its last call's end) divided by the tokens/s of a plain load of the same
  requests (same prompts, parameters and number of samples, taken from the search's call cache), all sent at
  once to the same servers in the same run: the better of all of them at once and each model's at once, one
  model after the other (servers that share cores do more apart). Target >= 0.95. Every plain load starts on
  emptied prefix caches (``reset_prefix_caches``), as the search did: on caches warmed by the search the same
  requests went 222 against 169 tok/s cold.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

Row = tuple[str, str, str, str]


def _ok(good: bool) -> str:
    return "met" if good else "NOT MET"


def in_flight(cache_path: Path) -> float:
    """Mean number of samples being generated at once over the search (from each call's start and end)."""
    db = sqlite3.connect(cache_path)
    try:
        spans = db.execute("SELECT created - duration, created FROM calls").fetchall()
    finally:
        db.close()
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    area, level, last = 0.0, 0, events[0][0]
    for t, step in events:
        area += level * (t - last)
        level, last = level + step, t
    return area / (events[-1][0] - events[0][0])


def busy_seconds(cache_path: Path) -> float:
    """Seconds during which at least one call was being generated (the union of the calls' spans): the time a
    search asked the servers for work, without the pauses between the runs of a resumed search."""
    db = sqlite3.connect(cache_path)
    try:
        spans = sorted(db.execute("SELECT created - duration, created FROM calls").fetchall())
    finally:
        db.close()
    total, end = 0.0, None
    start = None
    for a, b in spans:
        if end is None or a > end:
            if end is not None:
                total += end - start
            start, end = a, b
        else:
            end = max(end, b)
    return total + (end - start if end is not None else 0.0)


def harness_gaps(run_dir: Path) -> list[float]:
    """For every question of every trial and every layer after the first: seconds between the end of the layers
    before it (the executor's layer wall times) and its first call. What itas itself adds between layers."""
    gaps = []
    for path in (run_dir / "trials").glob("*/questions.jsonl"):
        for line in path.read_text().splitlines():
            q = json.loads(line)
            layers: dict[int, float] = {}
            for r in q.get("call_records") or ():
                layers[r["layer"]] = min(layers.get(r["layer"], float("inf")), r["started"])
            walls = q.get("layer_wall_times") or []
            gaps += [start - sum(walls[:layer]) for layer, start in layers.items() if layer > 0]
    return gaps


def tail_share(run_dir: Path, first: float, last: float) -> float:
    """Share of the search's span after its last trial started (when no new work could be added)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")
    started = max(t.datetime_start.timestamp() for t in study.trials if t.datetime_start is not None)
    return max(0.0, last - max(started, first)) / (last - first)


def sent_requests(cache_path: Path) -> tuple[list[tuple[str, dict, int]], int, float, float]:
    """(model, request, samples) of every request in a call cache; total completion tokens; first start; last end."""
    db = sqlite3.connect(cache_path)
    try:
        reqs = {k: (m, json.loads(r)) for k, m, r in db.execute("SELECT key, model, request FROM requests")}
        rows = db.execute("SELECT key, COUNT(*), SUM(completion_tokens), MIN(created - duration), MAX(created) "
                          "FROM calls GROUP BY key").fetchall()
    finally:
        db.close()
    out = [(reqs[k][0], reqs[k][1], n) for k, n, _, _, _ in rows if k in reqs]
    tokens = sum(t for _, _, t, _, _ in rows)
    return out, tokens, min(r[3] for r in rows), max(r[4] for r in rows)


async def plain_load(config, requests: list[tuple[str, dict, int]], cap: int | None = None) -> tuple[int, float]:
    """Send every request at once (at most ``cap`` at a time, when given) straight to the servers (httpx, no
    itas); (completion tokens, seconds)."""
    import httpx

    gate = asyncio.Semaphore(cap or max(1, len(requests)))
    urls = {m.model: m.endpoints[0].url for m in config.models}  # the cache records the served model name
    async with httpx.AsyncClient(timeout=3600, limits=httpx.Limits(max_connections=4000)) as http:
        async def one(model: str, req: dict, n: int) -> int:
            url = urls[model]
            params = req["params"]
            body = {"model": model, "messages": req["messages"], "n": n,
                    **{k: v for k, v in params.items() if k in ("temperature", "max_tokens", "top_p", "stop", "seed")
                       and v is not None}}
            async with gate:
                r = await http.post(url + "/chat/completions", json=body)
            r.raise_for_status()
            return r.json()["usage"]["completion_tokens"]

        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(one(m, r, n) for m, r, n in requests))
        return sum(tokens), time.perf_counter() - t0


DEV_MODE = "VLLM_SERVER_DEV_MODE"  # lets a vLLM server reset its prefix cache (POST /reset_prefix_cache)


def cold_servers() -> None:
    """Servers started from here on can empty their prefix caches (``reset_prefix_caches``): call before starting
    the pool. The variable only adds vLLM's development endpoints; the pool's servers are otherwise the same (the
    variable is not part of a server's fingerprint, so a search started inside adopts them)."""
    os.environ[DEV_MODE] = "1"


def reset_prefix_caches(config) -> None:
    """Empty every server's prefix cache, so that a plain load pays for its prompts as the search did, instead of
    finding them all cached by the search that sent them (measured: 222 against 169 tok/s, the same requests warm
    and cold). Needs servers started after ``cold_servers()``."""
    import httpx

    for m in config.models:
        for ep in m.endpoints:
            root = ep.url.rstrip("/").removesuffix("/v1")
            r = httpx.post(root + "/reset_prefix_cache", timeout=60)
            if r.status_code == 404:
                raise RuntimeError(f"{m.name}'s server at {root} cannot reset its prefix cache: it was started "
                                   f"without {DEV_MODE}=1 (adopted from an earlier run?); stop it (itas pool down) "
                                   f"and run again")
            r.raise_for_status()


def plain_apart(config, requests: list[tuple[str, dict, int]]) -> float:
    """Tokens/s of the plain load sent one model at a time (each model's requests all at once): on servers that
    share cores, faster than all at once."""
    tokens, seconds = 0, 0.0
    reset_prefix_caches(config)
    for model in sorted({m for m, _, _ in requests}):
        t, s = asyncio.run(plain_load(config, [r for r in requests if r[0] == model]))
        tokens, seconds = tokens + t, seconds + s
    return tokens / seconds


def main(budget: int = 50, subset: int = 4, jobs: int = 16, pool: str | None = None,
         space: str = "default") -> list[Row]:
    from itas.pool.config import load_pool
    from itas.pool.serving import managed
    from itas.search.runner import SearchRequest, run_search

    config = load_pool(pool)
    cold_servers()
    work = Path(tempfile.mkdtemp(prefix="itas-bench-search-"))
    out = work / "run"
    data_dir = os.environ.get("ITAS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    with managed(config, calibrate=False) as running:
        t0 = time.perf_counter()
        request = SearchRequest(benchmark="gsm8k", budget=budget, subset=subset, space=space, jobs=jobs,
                                out=out, data_dir=data_dir, pool=pool)
        outcome = asyncio.run(run_search(request))
        search_s = time.perf_counter() - t0
        import optuna

        would = 0

        study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
        evaluated = [t for t in study.trials if t.user_attrs.get("itas_status") == "evaluated"]
        for t in evaluated:
            would += int(t.user_attrs["metrics"]["total_calls"])
        requests, tokens, first, last = sent_requests(out / "calls.sqlite")
        sent = sum(n for _, _, n in requests)
        search_rate = tokens / (last - first)
        busy = in_flight(out / "calls.sqlite")
        reset_prefix_caches(running.config)
        plain_tokens, plain_s = asyncio.run(plain_load(running.config, requests))
        together = plain_tokens / plain_s
        apart = plain_apart(running.config, requests)
        plain_rate = max(together, apart)
    turns = any(m.turns for m in config.models)
    reuse = sent / would
    use = search_rate / plain_rate
    gaps = sorted(harness_gaps(out))
    p95 = gaps[int(0.95 * (len(gaps) - 1))] if gaps else 0.0
    tail = tail_share(out, first, last)
    return [
        (f"sample reuse: calls sent ÷ calls without the cache ({outcome.counted}-trial search of the "
         f"{'default space' if space == 'default' else 'space ' + space}, "
         f"GSM8K, {subset} questions, --jobs {jobs}, {len(evaluated)} evaluated trials: {sent:,} sent of "
         f"{would:,}; search took {search_s / 60:.1f} min)", f"{reuse:.2f}", "<= 0.5", _ok(reuse <= 0.5)),
        (f"engine use during that search: tokens/s while it ran ÷ the better plain load of its {len(requests):,} "
         f"requests ({search_rate:.0f} tok/s against {together:.0f} with all sent at once to both servers and "
         f"{apart:.0f} with each model's sent at once, one model after the other; on average {busy:.0f} samples "
         f"were at the servers at once during the search, those of a paused server included)", f"{use:.2f}", ">= 0.95", _ok(use >= 0.95)),
        (f"engine use, where the time went: each next layer's first call reached its server {p95 * 1000:.0f} ms "
         f"(p95 of {len(gaps):,}; max {max(gaps, default=0) * 1000:.0f} ms) after the layer before it ended"
         + (" (the pool's servers take turns on the cores: a call whose model does not hold the turn waits for it "
            "here while the holder drains, or at its paused server, which this does not count)" if turns else "")
         + f"; the last "
         f"{tail:.0%} of the search ran after its last trial had started (only the deepest trials' later layers "
         f"left: the calls that depend on earlier ones)", f"{tail:.0%} tail", "—", "—"),
    ]


def engine_use_of_run(run_dir: Path, sample: float = 0.25, seed: int = 0) -> dict:
    """Engine use of a finished search (any results directory): its generated tokens per busy second against a
    plain load of a seeded sample of its requests, all sent at once to freshly started default-pool servers."""
    import random

    from itas.pool.config import load_pool
    from itas.pool.serving import managed

    cache = run_dir / "calls.sqlite"
    requests, tokens, first, last = sent_requests(cache)
    busy = busy_seconds(cache)
    picked = random.Random(seed).sample(requests, max(1, round(len(requests) * sample)))
    cold_servers()
    with managed(load_pool(None), calibrate=False) as running:
        reset_prefix_caches(running.config)
        plain_tokens, plain_s = asyncio.run(plain_load(running.config, picked))
        plain_rate = max(plain_tokens / plain_s, plain_apart(running.config, picked))
    gaps = sorted(harness_gaps(run_dir))
    return {"requests": len(requests), "calls": sum(n for _, _, n in requests), "tokens": tokens, "busy_s": busy,
            "search_rate": tokens / busy, "sampled": len(picked), "plain_rate": plain_rate,
            "use": (tokens / busy) / plain_rate, "tail": tail_share(run_dir, first, last),
            "gap_p95_ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))] if gaps else 0.0}


async def _with_trickle(config, main_reqs, other_reqs, trickle: int) -> tuple[int, float]:
    """``main_reqs`` all at once while ``trickle`` requests of ``other_reqs`` (one sample, 64 tokens each) are
    always in flight at the other model's server: the main model's tokens and seconds."""
    stop = asyncio.Event()

    async def trickler(k: int):
        i = k
        while not stop.is_set():
            m, req, _ = other_reqs[i % len(other_reqs)]
            i += trickle
            short = {**req, "params": {**req["params"], "max_tokens": 64}}
            await plain_load(config, [(m, short, 1)])

    tasks = [asyncio.ensure_future(trickler(k)) for k in range(trickle)]
    tokens, seconds = await plain_load(config, main_reqs)
    stop.set()
    await asyncio.gather(*tasks)
    return tokens, seconds


def causes(run_dir: Path, sample: float = 0.5, seed: int = 0) -> list[str]:
    """What holds a search's engine use down, measured on a seeded sample of its requests with freshly started
    default-pool servers: (1) in-flight: the plain load capped at 16 and at the search's mean in flight, against
    all at once; (2) two servers on the same cores: the busiest model's requests all at once, alone and with one
    request of the other model always in flight (itas's ``turns`` exist to prevent the latter)."""
    import random

    from itas.pool.config import load_pool
    from itas.pool.serving import managed

    requests, *_ = sent_requests(run_dir / "calls.sqlite")
    picked = random.Random(seed).sample(requests, max(2, round(len(requests) * sample)))
    mean = max(1, round(in_flight(run_dir / "calls.sqlite")))
    by_model: dict[str, list] = {}
    for r in picked:
        by_model.setdefault(r[0], []).append(r)
    busiest = max(by_model, key=lambda m: sum(r[1]["params"].get("max_tokens") or 0 for r in by_model[m]))
    others = [r for m, rs in by_model.items() if m != busiest for r in rs]
    lines = []
    cold_servers()
    with managed(load_pool(None), calibrate=False) as running:
        cfg = running.config
        asyncio.run(plain_load(cfg, picked[:8]))  # warm-up
        for cap in (16, mean, len(picked)):
            reset_prefix_caches(cfg)
            t, s = asyncio.run(plain_load(cfg, picked, cap))
            lines.append(f"{len(picked)} of the search's requests, at most {cap} at once: {t / s:.0f} tok/s")
        reset_prefix_caches(cfg)
        t, s = asyncio.run(plain_load(cfg, by_model[busiest]))
        lines.append(f"{busiest}'s {len(by_model[busiest])} requests all at once, alone: {t / s:.0f} tok/s")
        if others:
            reset_prefix_caches(cfg)
            t, s = asyncio.run(_with_trickle(cfg, by_model[busiest], others, 1))
            lines.append(f"the same, with one request of the other model always in flight: {t / s:.0f} tok/s")
    return lines


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="make bench's search measurements, or (--run) the engine use of a "
                                             "finished search against a plain load of a sample of its requests")
    ap.add_argument("--run", type=Path, help="a search's results directory")
    ap.add_argument("--sample", type=float, help="share of its requests in the plain load (default: 0.25 with --run, "
                                                 "0.5 with --causes)")
    ap.add_argument("--causes", type=Path, help="a search's results directory: measure what holds its engine use "
                                                "down (in flight; two servers on the same cores)")
    ap.add_argument("--pool", help="a pool YAML for the search and its plain loads (default: the embedded pool)")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--subset", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--space", default="default", help="the search space (default: the shipped default space)")
    a = ap.parse_args()
    if a.causes:
        print("\n".join(causes(a.causes, a.sample or 0.5)))
    elif a.run:
        print(json.dumps(engine_use_of_run(a.run, a.sample or 0.25), indent=1))
    else:
        for r in main(a.budget, a.subset, a.jobs, a.pool, a.space):
            print(" | ".join(r))
