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


async def main(table: Path, concurrency: int, n_questions: int = 32, space_file: Path = SPACE) -> None:
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
    cache = itas_home() / "bench" / "table-calls.sqlite"
    cache.parent.mkdir(parents=True, exist_ok=True)
    async with open_pool(None, cache=cache, report=print) as pool:
        with Progress(TextColumn("recording"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[calls]}")) as bar:
            task = bar.add_task("table", total=None, calls="")

            def progress(done: int, total: int) -> None:
                st = pool.stats
                bar.update(task, completed=done, total=total,
                           calls=f"{st.calls_sent:,} calls sent, {st.cache_hits:,} cached, {st.in_flight} in flight, "
                                 f"{st.completion_tokens:,} tokens")

            t = await record_table(space, bench, questions, pool, table, concurrency=concurrency,
                                   header_extra={"questions": f"the first {len(questions)} word problems of bench/data/word-problems.jsonl"},
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
    args = ap.parse_args()
    asyncio.run(main(args.table, args.concurrency, args.questions, args.space))
