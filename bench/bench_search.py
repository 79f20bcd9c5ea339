"""Real searches on the default pool, measured: sample reuse and engine use.

- engine use: during a 50-trial search of the shipped default space's architectures with 48-token outputs on
  GSM8K's default subset of 20 questions (the shipped space on 20 questions would take about half an hour here),
  generated tokens/s (completion tokens of every call it sent, over the time from its first call's start to its
  last call's end) divided by the tokens/s of a plain load of the same requests (same prompts, parameters and
  number of samples, taken from the search's call cache), all sent at once to the same servers in the same run:
  the better of all of them at once and each model's at once, one model after the other (servers that share
  cores do more apart). Target >= 0.95. Every plain load starts on emptied prefix caches
  (``reset_prefix_caches``), as the search did: on caches warmed by the search the same requests went 222
  against 169 tok/s cold. Also split where the search's last trial started (after it only the last trials'
  dependent calls are left), and the search process's own CPU time, taken from the cores the servers run on.
  When engine use misses its target (``--diagnose unmet``, the default), also what the layers' dependencies
  alone leave of the plain load: the same requests sent in waves, each wave after every request its requests
  depend on, by a harness that knows every call in advance (``plain_waves``, no itas); with ``--diagnose
  always``, that and, to tell the search's own work from the shape of its calls, the same calls replayed through
  itas's pool with the same dependencies and trials at once but no search (``replay``). Each of these loads
  takes about as long as the search: measured every time, they put make bench over its 30 minutes on a slow host.
- sample reuse: the calls the servers actually produced during that same 50-trial search, divided by the calls
  its evaluated trials would have sent without the call cache (each trial's own count of the calls its
  architecture made, cached or not). Target <= 0.5. Which calls two architectures share depends on their
  models, prompts, temperatures and sample counts, which the 48-token outputs leave as the shipped space has
  them (every architecture of a search has the same output length). ``--reuse-search`` measures it instead on a
  separate search of the shipped space itself (4 questions, 256-token outputs; 0.29-0.31 where the engine-use
  search gives 0.21-0.25), as make bench did until 2026-12-06: 3.5-13 more minutes.
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
            if n > 1 and params.get("temperature") == 0:  # vLLM refuses n > 1 when greedy: sent apart, as itas does
                return sum(await asyncio.gather(*(one(model, req, 1) for _ in range(n))))
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


def _one_model_at_a_time(config, requests: list[tuple[str, dict, int]]) -> tuple[int, float]:
    """A plain load of ``requests`` one model after the other, each model's all at once: (tokens, seconds)."""
    tokens, seconds = 0, 0.0
    for model in sorted({m for m, _, _ in requests}):
        t, s = asyncio.run(plain_load(config, [r for r in requests if r[0] == model]))
        tokens, seconds = tokens + t, seconds + s
    return tokens, seconds


def plain_apart(config, requests: list[tuple[str, dict, int]]) -> float:
    """Tokens/s of the plain load sent one model at a time (each model's requests all at once): on servers that
    share cores, faster than all at once."""
    reset_prefix_caches(config)
    tokens, seconds = _one_model_at_a_time(config, requests)
    return tokens / seconds


def search_graph(run_dir: Path) -> tuple[dict, dict[int, list[list[list[str]]]], int]:
    """What a finished search asked for, and in what order: its requests (call-cache key: (model, request,
    samples)), and for each trial that made calls, for each question, its layers' request keys. Calls are told
    apart by their duration, which the trial's per-call records and the call cache both keep; a record that
    matches no single request is left out (their number is returned too)."""
    import collections

    db = sqlite3.connect(run_dir / "calls.sqlite")
    try:
        reqs = {k: (m, json.loads(r)) for k, m, r in db.execute("SELECT key, model, request FROM requests")}
        rows = db.execute("SELECT key, duration FROM calls").fetchall()
    finally:
        db.close()
    samples = collections.Counter(k for k, _ in rows)
    by_duration = collections.defaultdict(set)
    for k, d in rows:
        by_duration[d].add(k)
    trials: dict[int, list] = {}
    unmatched = 0
    for folder in (run_dir / "trials").iterdir():
        path = folder / "questions.jsonl"
        if not path.exists():
            continue
        questions = []
        for line in path.read_text().splitlines():
            layers = collections.defaultdict(set)
            for c in json.loads(line).get("call_records") or []:
                keys = by_duration.get(c["duration"], set())
                if len(keys) != 1:
                    unmatched += 1
                    continue
                layers[c["layer"]].add(next(iter(keys)))
            if layers:
                questions.append([sorted(layers[i]) for i in sorted(layers)])
        if questions:
            trials[int(folder.name)] = questions
    requests = {k: (reqs[k][0], reqs[k][1], n) for k, n in samples.items() if k in reqs}
    return requests, trials, unmatched


async def replay(config, run_dir: Path, jobs: int) -> tuple[int, float, float]:
    """The search's calls again through itas's pool (its turns included; no cache, sampler, scoring or study):
    each question's layers one after the other, each layer's requests at once, at most ``jobs`` trials at a time
    in the trials' order, a request shared by several trials sent once. (completion tokens, seconds, samples in
    flight on average)."""
    from itas.pool.session import open_pool
    from itas.pool.types import SamplingParams

    requests, trials, _ = search_graph(run_dir)
    names = {m.model: m.name for m in config.models}  # the cache records the served model name
    sent: dict[str, asyncio.Future] = {}
    tokens, spans = 0, []
    async with open_pool(config, cache=None, calibrate=False) as pool:
        async def call(key: str) -> None:
            nonlocal tokens
            model, req, n = requests[key]
            p = req["params"]
            params = SamplingParams(temperature=p["temperature"], max_tokens=p["max_tokens"], top_p=p["top_p"],
                                    stop=tuple(p.get("stop") or ()))
            t = time.perf_counter()
            got = await pool.generate(names[model], req["messages"], params, k=n)
            tokens += sum(c.completion_tokens for c in got)
            spans.append((time.perf_counter() - t) * n)

        def once(key: str) -> asyncio.Future:
            if key not in sent:
                sent[key] = asyncio.ensure_future(call(key))
            return sent[key]

        gate = asyncio.Semaphore(jobs)

        async def trial(questions) -> None:
            async def question(layers) -> None:
                for layer in layers:
                    await asyncio.gather(*(once(k) for k in layer if k in requests))

            async with gate:
                await asyncio.gather(*(question(q) for q in questions))

        t0 = time.perf_counter()
        await asyncio.gather(*(trial(trials[n]) for n in sorted(trials)))
        seconds = time.perf_counter() - t0
    return tokens, seconds, sum(spans) / seconds


def layer_waves(trials: dict[int, list[list[list[str]]]]) -> list[list[str]]:
    """The search's requests in waves: each request in the first wave after every request it depends on (the
    layers before it, in every trial and question that asked for it: the longest chain of layers before it). A
    request asked for again in a later layer of the same question (a fuser given the same candidates twice) was
    answered already, so it is placed by its first layer there."""
    chains = []  # each question's layers, a request kept in its first layer only
    for questions in trials.values():
        for layers in questions:
            seen: set[str] = set()
            chain = []
            for layer in layers:
                fresh = [k for k in layer if k not in seen]
                seen.update(fresh)
                if fresh:
                    chain.append(fresh)
            chains.append(chain)
    depth: dict[str, int] = {}
    for _ in range(len({k for chain in chains for layer in chain for k in layer}) + 1):
        changed = False  # longest paths: each round lengthens them by one layer at least, or nothing changes
        for chain in chains:
            before = -1
            for layer in chain:
                for key in layer:
                    if depth.get(key, -1) < before + 1:
                        depth[key], changed = before + 1, True
                before = max(depth[key] for key in layer)
        if not changed:
            break
    else:
        raise ValueError("the search's requests depend on each other in a cycle")
    waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key, d in depth.items():
        waves[d].append(key)
    return waves


def plain_waves(config, run_dir: Path) -> tuple[int, float, int]:
    """A plain load of the search's requests in its own dependency order, by a harness that knows every call in
    advance and needs no itas: wave after wave (``layer_waves``), each wave's requests one model at a time, each
    model's all at once (httpx, as the plain loads). What the layers' dependencies leave of the plain load apart:
    (completion tokens, seconds, waves)."""
    requests, trials, _ = search_graph(run_dir)
    waves = layer_waves(trials)
    tokens, seconds = 0, 0.0
    reset_prefix_caches(config)
    for wave in waves:
        t, s = _one_model_at_a_time(config, [requests[k] for k in wave if k in requests])
        tokens, seconds = tokens + t, seconds + s
    return tokens, seconds, len(waves)


ENGINE_SUBSET, ENGINE_TOKENS = 20, 48  # the engine-use search: the default subset, outputs cut to fit make bench
ENGINE_TARGET = 0.95  # engine use: the search's tokens/s ÷ the plain load's
DIAGNOSE = ("unmet", "always", "never")  # when make bench measures what holds engine use down (see main)


def engine_space(work: Path, tokens: int = ENGINE_TOKENS) -> Path:
    """The shipped default space with ``tokens``-token outputs (its per-query token limit scaled alike): the same
    architectures, so that a search on the default subset of 20 questions keeps make bench within its time."""
    import yaml

    space = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
    scale = tokens / space["max_tokens"]
    space["name"] = f"default-{tokens}"
    space["max_tokens"] = tokens
    space["constraints"]["max_tokens_per_query"] = round(space["constraints"]["max_tokens_per_query"] * scale)
    path = work / f"default-{tokens}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def _search(out: Path, space: str, subset: int, budget: int, jobs: int, pool: str | None) -> dict:
    """Run one real search; what the bench reads from it."""
    import optuna

    from itas.search.runner import SearchRequest, run_search

    data_dir = os.environ.get("ITAS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    t0 = time.perf_counter()
    request = SearchRequest(benchmark="gsm8k", budget=budget, subset=subset, space=space, jobs=jobs, out=out,
                            data_dir=data_dir, pool=pool)
    outcome = asyncio.run(run_search(request))
    seconds = time.perf_counter() - t0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
    evaluated = [t for t in study.trials if t.user_attrs.get("itas_status") == "evaluated"]
    would = sum(int(t.user_attrs["metrics"]["total_calls"]) for t in evaluated)
    requests, tokens, first, last = sent_requests(out / "calls.sqlite")
    return {"counted": outcome.counted, "evaluated": len(evaluated), "would": would, "requests": requests,
            "sent": sum(n for _, _, n in requests), "tokens": tokens, "first": first, "last": last,
            "seconds": seconds, "in_flight": in_flight(out / "calls.sqlite"),
            "tail": tail_share(out, first, last), "out": out}


def _cpu_seconds() -> float:
    """CPU time of this process so far, all its threads (not its children: the servers)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def split_at_tail(run: dict) -> tuple[float, float, float]:
    """(tokens/s before the search's last trial started, tokens/s after, the time of that start from the first
    call): each call's tokens spread evenly over its span."""
    db = sqlite3.connect(run["out"] / "calls.sqlite")
    try:
        spans = db.execute("SELECT created - duration, created, completion_tokens FROM calls").fetchall()
    finally:
        db.close()
    first, last = run["first"], run["last"]
    cut = first + (1 - run["tail"]) * (last - first)
    before = sum(k * max(0.0, min(b, cut) - a) / max(b - a, 1e-9) for a, b, k in spans)
    after = run["tokens"] - before
    return before / max(cut - first, 1e-9), after / max(last - cut, 1e-9), cut - first


def _reuse_row(r: dict, what: str) -> Row:
    """make bench's sample-reuse row for a search ``r`` (``_search``'s counts), ``what`` saying which search."""
    ratio = r["sent"] / r["would"]
    return f"sample reuse: calls sent ÷ calls without the cache{what}", f"{ratio:.2f}", "<= 0.5", _ok(ratio <= 0.5)


def main(budget: int = 50, subset: int = 4, jobs: int = 16, pool: str | None = None, space: str = "default",
         engine_subset: int = ENGINE_SUBSET, engine_tokens: int = ENGINE_TOKENS, reuse_search: bool = False,
         diagnose: str = "unmet") -> list[Row]:
    """A real 50-trial search on one pool, of the shipped default space's architectures on the default subset of
    20 questions with 48-token outputs: its engine use, against plain loads of its requests, and its sample reuse.
    With ``reuse_search``, sample reuse is measured first on a separate 50-trial search of the shipped default
    space itself (``subset`` questions, 256-token outputs; ``space`` names another). What holds engine use down
    (``diagnose``): with "unmet", the dependency waves (``plain_waves``) only when engine use misses its target,
    so that make bench measures the cause when there is one to show and stays within its time when there is none;
    with "always", the waves and the replay through itas's pool (``replay``) every time; with "never", neither."""
    if diagnose not in DIAGNOSE:
        raise ValueError(f"diagnose must be one of {', '.join(DIAGNOSE)}, not {diagnose!r}")
    from itas.pool.config import load_pool
    from itas.pool.serving import managed

    config = load_pool(pool)
    cold_servers()
    work = Path(tempfile.mkdtemp(prefix="itas-bench-search-"))
    rows: list[Row] = []
    with managed(config, calibrate=False) as running:
        if reuse_search:
            r = _search(work / "reuse", space, subset, budget, jobs, pool)
            searched = "default space" if space == "default" else f"space {space}"
            rows.append(_reuse_row(
                r, f" ({r['counted']}-trial search of the {searched}, GSM8K, {subset} questions, --jobs {jobs}, "
                   f"{r['evaluated']} evaluated trials: {r['sent']:,} sent of {r['would']:,}; search took "
                   f"{r['seconds'] / 60:.1f} min)"))
            reset_prefix_caches(running.config)
        cpu0 = _cpu_seconds()
        e = _search(work / "engine", str(engine_space(work, engine_tokens)), engine_subset, budget, jobs, pool)
        cpu = _cpu_seconds() - cpu0
        if not reuse_search:
            rows.append(_reuse_row(
                e, f", during the engine-use search below (a {e['counted']}-trial search of the default space's "
                   f"architectures, its outputs cut to {engine_tokens} tokens, GSM8K, {engine_subset} questions, "
                   f"--jobs {jobs}, {e['evaluated']} evaluated trials: {e['sent']:,} sent of {e['would']:,}; "
                   f"`--reuse-search` measures it on a search of the shipped space itself)"))
        requests = e["requests"]
        search_rate = e["tokens"] / (e["last"] - e["first"])
        reset_prefix_caches(running.config)
        plain_tokens, plain_s = asyncio.run(plain_load(running.config, requests))
        together = plain_tokens / plain_s
        apart = plain_apart(running.config, requests)
        plain_rate = max(together, apart)
        use = search_rate / plain_rate
        waves = again = None
        if diagnose == "always" or (diagnose == "unmet" and use < ENGINE_TARGET):
            waves_tokens, waves_s, n_waves = plain_waves(running.config, e["out"])
            waves = waves_tokens / waves_s
        if diagnose == "always":
            reset_prefix_caches(running.config)
            again_tokens, again_s, again_in_flight = asyncio.run(replay(running.config, e["out"], jobs))
            again = again_tokens / again_s
    turns = any(m.turns for m in config.models)
    steady, tail_rate, cut = split_at_tail(e)
    cores = os.cpu_count() or 1
    gaps = sorted(harness_gaps(e["out"]))
    p95 = gaps[int(0.95 * (len(gaps) - 1))] if gaps else 0.0
    rows += [
        (f"engine use: tokens/s during a {e['counted']}-trial search of the default space's architectures with "
         f"{engine_tokens}-token outputs on GSM8K's default subset of {engine_subset} questions (--jobs {jobs}; "
         f"{e['seconds'] / 60:.1f} min, {e['sent']:,} calls sent) ÷ the better plain load of its "
         f"{len(requests):,} requests ({search_rate:.0f} tok/s against {together:.0f} with all sent at once to both "
         f"servers and {apart:.0f} with each model's sent at once, one model after the other; on average "
         f"{e['in_flight']:.0f} samples were at the servers at once during the search, those of a paused server "
         f"included)", f"{use:.2f}", f">= {ENGINE_TARGET}", _ok(use >= ENGINE_TARGET)),
        (f"engine use, before and after the search's last trial started ({cut:.0f} s in; after it, only the last "
         f"trials' later layers are left: calls that depend on earlier ones): {steady:.0f} and {tail_rate:.0f} "
         f"tok/s ÷ the plain load's {plain_rate:.0f}; the tail is {e['tail']:.0%} of the search",
         f"{steady / plain_rate:.2f} / {tail_rate / plain_rate:.2f}", "—", "—"),
    ]
    if again is not None:
        rows.append(
            (f"engine use of the same calls replayed through itas's pool, without the search (the same requests, "
             f"trials, questions and layers, {jobs} trials at once, a request shared by trials sent once; no "
             f"sampler, study, cache or scoring): {again:.0f} tok/s ÷ the plain load's {plain_rate:.0f} "
             f"({again_in_flight:.0f} samples in flight on average); the search ÷ its replay: "
             f"{search_rate / again:.2f}", f"{again / plain_rate:.2f}", "—", "—"))
    waves_what = ("what the layers' dependencies leave of the plain load: the same requests in waves, each after "
                  "every request it depends on (a harness that knows every call in advance, no itas; each wave one "
                  "model at a time, each model's requests at once)")
    if waves is not None:
        rows.append((f"{waves_what.replace('in waves', f'in {n_waves} waves')}: {waves:.0f} tok/s ÷ the plain "
                     f"load's {plain_rate:.0f}; the search ÷ this: {search_rate / waves:.2f}",
                     f"{waves / plain_rate:.2f}", "—", "—"))
    else:
        rows.append((f"{waves_what}: not measured, as engine use met its target (measured only to show what holds "
                     f"it below; `python bench/bench_search.py --diagnose always` measures it)",
                     "—", "—", "—"))
    rows += [
        (f"the search process's own CPU during the engine-use search (the sampler and its study, scoring, the "
         f"client): {cpu:.1f} CPU-seconds in {e['seconds']:.0f} s, of the {cores} cores the model servers run on",
         f"{cpu / (e['seconds'] * cores):.0%}", "—", "—"),
        (f"engine use, between layers: each next layer's first call reached its server {p95 * 1000:.0f} ms "
         f"(p95 of {len(gaps):,}; max {max(gaps, default=0) * 1000:.0f} ms) after the layer before it ended"
         + (" (the pool's servers take turns on the cores: a call whose model does not hold the turn waits for it "
            "here while the holder drains, or at its paused server, which this does not count)" if turns else ""),
         f"{p95 * 1000:.0f} ms", "—", "—"),
    ]
    return rows


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
    ap.add_argument("--subset", type=int, default=4, help="with --reuse-search, its questions")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--space", default="default", help="with --reuse-search, its space (default: the shipped "
                                                      "default space)")
    ap.add_argument("--engine-subset", type=int, default=ENGINE_SUBSET, help="the engine-use search's questions")
    ap.add_argument("--engine-tokens", type=int, default=ENGINE_TOKENS, help="the engine-use search's output length")
    ap.add_argument("--reuse-search", action="store_true",
                    help="measure sample reuse on a separate search of the shipped space (--subset questions, its "
                         "256-token outputs) before the engine-use search, instead of on the engine-use search")
    ap.add_argument("--diagnose", choices=DIAGNOSE, default="unmet",
                    help="measure what holds engine use down: the dependency waves when engine use misses its "
                         "target (unmet, the default), the waves and the replay through itas's pool (always), or "
                         "neither (never)")
    a = ap.parse_args()
    if a.causes:
        print("\n".join(causes(a.causes, a.sample or 0.5)))
    elif a.run:
        print(json.dumps(engine_use_of_run(a.run, a.sample or 0.25), indent=1))
    else:
        for r in main(a.budget, a.subset, a.jobs, a.pool, a.space, a.engine_subset, a.engine_tokens,
                      reuse_search=a.reuse_search, diagnose=a.diagnose):
            print(" | ".join(r))
