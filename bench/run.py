"""``make bench``: itas's performance targets, as ratios measured in one run, printed as one table and written
to bench/results/bench.md (the README links to it).

- harness overhead: itas's own CPU time per model call against an instant local endpoint (target < 1 ms): the
  client alone, and a whole 100-trial search of the default space (the sampler, its study, the cache, the
  executor, scoring and trial folders too; bench/bench_harness.py);
- engine use and sample reuse during a real 50-trial search on the default pool of the default space's
  architectures with 48-token outputs on 20 questions (bench/bench_search.py; targets >= 0.95 and <= 0.5;
  ``--reuse-search`` there measures sample reuse on a separate search of the shipped space itself);
- search efficiency (TPE against random, hypervolume at budgets 25/50/100) and staged evaluation, replayed
  on the recorded table bench/tables/word-problems.jsonl (bench/bench_replay.py; record it with
  `make bench-table`), with what the table tells a sampler and what an oracle told it would need; the same,
  without hypervolume and staging, on bench/tables/word-problems-96.jsonl (the same space, 96 questions) and on
  bench/tables/sampling-96.jsonl (bench/table_space_sampling.yaml: repeated sampling and voting, 96 questions),
  there also counting an architecture one question below the best as a best one; and on each table, whether its
  best is where its parameters point (its rank under an additive fit of accuracy over the parameters' values),
  TPE against random search on the fitted table, and how often its best is a best one again when its questions
  are resampled (bench/bench_replay.py ``fit_rows``); and the first table's space and questions recorded three
  more times, each with samples of its own: how the recordings agree, and TPE against random search on each and
  on all four averaged (``replicate_rows``);
- scoring speed (from bench/bench_scoring.py when present).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))  # bench_replay, importable by the processes the replays run in

Row = tuple[str, str, str, str]  # what, measured, target, verdict


def client_overhead(calls: int = 3000, concurrency: int = 64) -> Row:
    runs = _module("bench_client").measure(calls, concurrency, runs=3)
    ms = runs[1] * 1000  # the median of three runs
    spread = f"{runs[0] * 1000:.2f}-{runs[2] * 1000:.2f}"
    return (f"itas client CPU time per call (instant endpoint; median of 3 runs of {calls}, range {spread} ms)",
            f"{ms:.3f} ms", "< 1 ms", _ok(ms < 1.0))


def search_overhead() -> Row:
    """itas's own CPU per call during whole searches against instant endpoints (bench/bench_harness.py)."""
    return _module("bench_harness").row()


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def search_rows() -> list[Row]:
    """Sample reuse and engine use, measured during a real 50-trial search on the default pool."""
    return _module("bench_search").main()


def replay_rows(workers: int | None = None) -> list[Row]:
    """Search efficiency (TPE vs random) and staged evaluation, replayed on the recorded tables. The parts are
    independent and use one core each, and nothing else runs by now (the model servers have stopped): they run
    in a process per core, the longest first (about 6.5 minutes on one core, 3.2 on two; the rows are the same)."""
    import concurrent.futures
    import multiprocessing

    import bench_replay as mod

    table = HERE / "tables" / "word-problems.jsonl"
    wider = HERE / "tables" / "word-problems-96.jsonl"  # the same space on three times the questions
    sampling = HERE / "tables" / "sampling-96.jsonl"  # repeated sampling and voting (table_space_sampling.yaml)
    # the first table's space and questions recorded again, each time with samples of its own (vLLM --seed N)
    again = [HERE / "tables" / f"word-problems-seed{n}.jsonl" for n in (1, 2, 3)]
    parts = [(mod.rows, table, {}), (mod.bound_rows, table, {}), (mod.rows, wider, {"full": False}),
             (mod.bound_rows, wider, {}), (mod.rows, sampling, {"full": False}), (mod.bound_rows, sampling, {}),
             (mod.rows, sampling, {"full": False, "within": 1}),
             (mod.fit_rows, table, {}), (mod.fit_rows, wider, {}), (mod.fit_rows, sampling, {}),
             (mod.replicate_rows, table, {"others": again})]
    longest_first = [0, 10, 5, 3, 2, 1, 7, 8, 6, 4, 9]  # measured: 134, 90, 85, 38, 37, 22, 18, 17, 16, 14, 10 s
    workers = workers or os.cpu_count() or 1
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        futures = {i: ex.submit(parts[i][0], parts[i][1], **parts[i][2]) for i in longest_first}
        return [row for i in range(len(parts)) for row in futures[i].result()]


def scoring() -> list[Row]:
    path = HERE / "bench_scoring.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("bench_scoring", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.main()
    return [
        ("grade 500 MATH-500 answers (math-verify, workers starting)", f"{r['math500_grade_s']:.1f} s",
         "well under 60 s", _ok(r["math500_grade_s"] < 30 and r["math500_correct"] == 500)),
        ("execute 164 HumanEval solutions in the sandbox", f"{r['humaneval_exec_s']:.1f} s", "well under 60 s",
         _ok(r["humaneval_exec_s"] < 30 and r["humaneval_correct"] == 164)),
    ]


def _ok(good: bool) -> str:
    return "met" if good else "NOT MET"


def main() -> None:
    os.environ.setdefault("ITAS_ORPHAN_GRACE", "30")
    rows: list[Row] = []
    took: list[tuple[str, float]] = []  # each part's wall clock, to see where make bench's time goes
    for label, part in (("client", lambda: [client_overhead()]), ("whole searches", lambda: [search_overhead()]),
                        ("real search and its plain loads", search_rows), ("table replays", replay_rows),
                        ("scoring", scoring)):
        t0 = time.perf_counter()
        rows += part()
        took.append((label, time.perf_counter() - t0))
    spent = ", ".join(f"{label} {seconds / 60:.1f}" for label, seconds in took)
    spent = f"Wall clock, in minutes: {spent}; {sum(s for _, s in took) / 60:.1f} in all (installing not included)."
    from rich.console import Console
    from rich.table import Table

    table = Table(title="itas benchmarks")
    for col in ("what", "measured", "target", "verdict"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    Console().print(table)
    print(spent)
    lines = ["# itas benchmarks", "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench` "
             f"on {os.cpu_count()} cores. What holds engine use down, measured: [engine-use.md](engine-use.md); what holds "
             "TPE's ratio down on the recorded table: [search-efficiency.md](search-efficiency.md); a whole search's CPU per "
             "call, before and after what its profile called for: [harness-overhead.md](harness-overhead.md).", "",
             spent, "", "| what | measured | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    out = HERE / "results" / "bench.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
