"""Benchmark of grading speed: 500 MATH-500 answers with math-verify, 164 HumanEval solutions in the sandbox.

Run as ``python bench/bench_scoring.py`` (data from ``$ITAS_DATA_DIR``, else ``../shared/data`` next to the
repository). Prints a small table and returns (from :func:`main`) a dict of the measurements.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("ITAS_DATA_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def main() -> dict:
    sys.path.insert(0, str(REPO))
    from rich.console import Console
    from rich.table import Table

    from itas.benchmarks import load_benchmark
    from itas.sandbox import default_sandbox
    from itas.scoring.mathverify import math_pool

    data_dir = _data_dir()
    results: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        math = load_benchmark("math", data_dir, cache_dir=cache)
        items = [(q, math.reference_output(q)) for q in math.questions()]
        start = time.perf_counter()
        scores = math.score_many(items)
        results["math500_grade_s"] = time.perf_counter() - start
        results["math500_correct"] = sum(s.value for s in scores)
        start = time.perf_counter()
        math.score_many(items)
        results["math500_grade_warm_s"] = time.perf_counter() - start

        he = load_benchmark("humaneval", data_dir, cache_dir=cache)
        questions = he.questions()
        start = time.perf_counter()
        he.prepare(questions)  # runs every canonical solution once to measure its time limits
        results["humaneval_measure_refs_s"] = time.perf_counter() - start
        items = [(q, he.reference_output(q)) for q in questions]
        start = time.perf_counter()
        scores = he.score_many(items)
        results["humaneval_exec_s"] = time.perf_counter() - start
        results["humaneval_correct"] = sum(s.value for s in scores)

    results["sandbox_mode"] = default_sandbox().mode
    results["sandbox_workers"] = default_sandbox().workers
    results["math_workers"] = math_pool().size

    table = Table("measurement", "value", title="itas scoring benchmark")
    rows = [
        ("grade 500 MATH-500 answers (math-verify, cold: workers start)", f"{results['math500_grade_s']:.1f} s"),
        ("grade 500 MATH-500 answers again (warm workers)", f"{results['math500_grade_warm_s']:.1f} s"),
        ("  correct", f"{results['math500_correct']:g}/500"),
        ("measure 164 HumanEval reference solutions (once; cached)", f"{results['humaneval_measure_refs_s']:.1f} s"),
        ("execute 164 HumanEval solutions in the sandbox", f"{results['humaneval_exec_s']:.1f} s"),
        ("  correct", f"{results['humaneval_correct']:g}/164"),
        ("sandbox", f"{results['sandbox_mode']} mode, {results['sandbox_workers']} workers"),
        ("math-verify workers", str(results["math_workers"])),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return results


if __name__ == "__main__":
    main()
