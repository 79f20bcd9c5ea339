"""``make bench-table``: record the outcome table that ``make bench`` replays searches against.

Every architecture of bench/table_space.yaml (432) is evaluated on the first 32 one-step word problems of
bench/data/word-problems.jsonl (``bench/word_problems.py``) on the default pool, with the output length fixed by
the space (32 tokens). Calls go through a cache in ITAS_HOME, so architectures share their generator samples, and
a killed recording resumes where it stopped (rerun the same command).

``make bench`` also replays a second table of the same space on all 96 problems (33 minutes to record, the first
32 problems' calls coming from the cache):

    python bench/record_table.py --questions 96 --table bench/tables/word-problems-96.jsonl

and a table of a second space, repeated sampling and voting (bench/table_space_sampling.yaml, 360 architectures;
33 minutes, 18,432 calls sent: its calls are all generator samples, which its architectures share):

    python bench/record_table.py --space bench/table_space_sampling.yaml --questions 96 \
        --table bench/tables/sampling-96.jsonl

and the first table again, three times, each with samples of its own (about 20 minutes each; without a seed of
their own, vLLM draws every request's samples from a generator seeded with its --seed, 0 by default, so the same
recording again with a new cache would repeat most of the first's samples):

    python bench/record_table.py --server-seed 1 --cache /tmp/seed1.sqlite \
        --table bench/tables/word-problems-seed1.jsonl       # and so on for 2 and 3

(An earlier table was recorded the same way on 16 one-step GSM8K questions with 128-token answers: 378 of its 432
architectures scored 0 and the best score, 1 of 16, was reached by 54, so a search had nothing to find there and
random search found a best architecture as fast as TPE. It was replaced by this one.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

TABLE = HERE / "tables" / "word-problems.jsonl"
SPACE = HERE / "table_space.yaml"
BENCHMARK = HERE / "data" / "word-problems.jsonl"


def seeded_pool(seed: int):
    """The default pool with every server started with vLLM's ``--seed`` (0 unless given): a request without a
    seed of its own draws from a generator seeded with it, so a second recording with the default seed repeats
    much of the first's samples (33 of the first 60 architectures scored alike on every question)."""
    import dataclasses

    from itas.pool.config import load_pool

    pool = load_pool(None)
    models = tuple(dataclasses.replace(m, serve=dataclasses.replace(m.serve, args=(*m.serve.args, "--seed", str(seed))))
                   for m in pool.models)
    return dataclasses.replace(pool, models=models, source=f"{pool.source}, vLLM --seed {seed}")


async def main(table: Path, concurrency: int, n_questions: int = 32, space_file: Path = SPACE,
               server_seed: int | None = None, cache: Path | None = None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from itas.benchmarks import load_benchmark
    from itas.paths import itas_home
    from itas.pool.session import open_pool
    from itas.search.space import load_space
    from itas.search.table import record_table

    bench = load_benchmark(str(BENCHMARK))
    questions = bench.questions()
    if not 1 <= n_questions <= len(questions):
        raise SystemExit(f"error: --questions {n_questions}: {BENCHMARK.name} has {len(questions)} problems; "
                         f"allowed: 1 to {len(questions)}")
    questions = questions[:n_questions]
    space = load_space(space_file)
    cache = cache or itas_home() / "bench" / "table-calls.sqlite"
    cache.parent.mkdir(parents=True, exist_ok=True)
    async with open_pool(None if server_seed is None else seeded_pool(server_seed), cache=cache,
                         report=print) as pool:
        with Progress(TextColumn("recording"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[calls]}")) as bar:
            task = bar.add_task("table", total=None, calls="")

            def progress(done: int, total: int) -> None:
                st = pool.stats
                bar.update(task, completed=done, total=total,
                           calls=f"{st.calls_sent:,} calls sent, {st.cache_hits:,} cached, {st.in_flight} in flight, "
                                 f"{st.completion_tokens:,} tokens")

            t = await record_table(space, bench, questions, pool, table, concurrency=concurrency,
                                   header_extra={"questions": f"the first {len(questions)} word problems of bench/data/word-problems.jsonl",
                                                 **({} if server_seed is None else {"server_seed": server_seed})},
                                   report=print, progress=progress)
    ev = t.evaluated()
    accs = sorted((t.metrics(fp)[0] for fp in ev), reverse=True)
    print(f"{len(t.rows)} architectures recorded ({len(ev)} evaluated) in {table}; best accuracy {accs[0]:.3f}, "
          f"{sum(a == accs[0] for a in accs)} architectures reach it")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--concurrency", type=int, default=64, help="architectures evaluated at once")
    ap.add_argument("--questions", type=int, default=32, help="the first N problems (default 32: make bench's table)")
    ap.add_argument("--space", type=Path, default=SPACE, help="the space to record (default bench/table_space.yaml)")
    ap.add_argument("--server-seed", type=int, default=None,
                    help="start the default pool's servers with vLLM's --seed N (with --cache, samples of its own)")
    ap.add_argument("--cache", type=Path, default=None, help="the calls cache (default: ITAS_HOME/bench/"
                    "table-calls.sqlite)")
    args = ap.parse_args()
    asyncio.run(main(args.table, args.concurrency, args.questions, args.space, args.server_seed, args.cache))
