"""``make bench-table``: record the outcome table that ``make bench`` replays searches against.

Every architecture of bench/table_space.yaml (432) is evaluated on 16 one-step GSM8K questions (fixed: seeded
among the test questions whose reference solution has one calculation) on the default pool, with the output
length fixed by the space (128 tokens). Calls go through a cache in ITAS_HOME, so architectures share their
generator samples, and a killed recording resumes where it stopped (rerun the same command).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

TABLE = HERE / "tables" / "gsm8k-1step.jsonl"
SPACE = HERE / "table_space.yaml"
N_QUESTIONS = 16
SEED = 0


def one_step_question_ids(data_dir: Path, n: int = N_QUESTIONS, seed: int = SEED) -> list[str]:
    rows = [json.loads(line) for line in (data_dir / "gsm8k_test.jsonl").read_text().splitlines() if line.strip()]
    easy = [i for i, r in enumerate(rows) if r["answer"].count("<<") == 1]
    return [f"gsm8k/test/{i}" for i in sorted(random.Random(seed).sample(easy, n))]


async def main(table: Path, concurrency: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from itas.benchmarks import load_benchmark
    from itas.paths import itas_home
    from itas.pool.session import open_pool
    from itas.search.space import load_space
    from itas.search.table import record_table

    data_dir = Path(os.environ.get("ITAS_DATA_DIR", REPO.parent / "shared" / "data"))
    bench = load_benchmark("gsm8k", data_dir=data_dir)
    ids = one_step_question_ids(data_dir)
    by_id = {q.id: q for q in bench.questions()}
    questions = [by_id[i] for i in ids]
    space = load_space(SPACE)
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
                                   header_extra={"questions": "16 one-step GSM8K test questions, seed 0"},
                                   report=print, progress=progress)
    ev = t.evaluated()
    accs = sorted((t.metrics(fp)[0] for fp in ev), reverse=True)
    print(f"{len(t.rows)} architectures recorded ({len(ev)} evaluated) in {table}; best accuracy {accs[0]:.3f}, "
          f"{sum(a == accs[0] for a in accs)} architectures reach it")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--concurrency", type=int, default=24, help="architectures evaluated at once")
    args = ap.parse_args()
    asyncio.run(main(args.table, args.concurrency))
