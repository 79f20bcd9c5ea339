"""Search efficiency, replayed on the recorded table (bench/tables/word-problems.jsonl), without any model.

- evaluations until an architecture with the table's highest accuracy is evaluated (the budget when none is):
  multivariate TPE against random search, median over 20 seeds, budget 100 (target: random needs >= 3x more);
- hypervolume of the found front relative to the table's true front, at budgets 25, 50 and 100, both samplers;
- staged evaluation (``itas search --staged``) against full evaluation, TPE at budget 100: the calls it saves and
  the front it loses, with the all-correct accuracy bound (what the search uses), the Wilson bound, and the rate
  seen so far (``itas.search.staged``).

``rows(table_path)`` gives the rows of ``make bench``'s table; ``python bench/bench_replay.py`` prints them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

TABLE = HERE / "tables" / "word-problems.jsonl"
SEEDS = 20
BUDGET = 100
BUDGETS = (25, 50, 100)
TARGET_SPEEDUP = 3.0

Row = tuple[str, str, str, str]  # what, measured, target, verdict


def rows(table_path: str | Path = TABLE, seeds: int = SEEDS, budget: int = BUDGET,
         budgets: tuple[int, ...] = BUDGETS, progress=None) -> list[Row]:
    from itas.search.replay import TableIndex, compare
    from itas.search.table import load_table

    index = TableIndex(load_table(table_path))
    c = compare(index, seeds=seeds, budget=budget, budgets=budgets, progress=progress)
    n = len(index.rows)
    where = (f"{c.n_architectures} architectures" + (f" ({n} recorded)" if n != c.n_architectures else "")
             + f", {index.n_questions} questions")
    etb, found = c.evaluations_to_best, c.found_best
    out: list[Row] = [
        (f"evaluations to a best architecture (accuracy {c.best_accuracy:.3f}: {c.n_best} of {where}), budget "
         f"{budget}, median of {seeds} seeds: TPE / random",
         f"{etb['tpe']:g} / {etb['random']:g} (found in {found['tpe']} / {found['random']} seeds)", "—", "—"),
        ("random ÷ TPE evaluations to a best architecture", f"{c.speedup:.2f}x", f">= {TARGET_SPEEDUP:g}x",
         _ok(c.speedup >= TARGET_SPEEDUP)),
    ]
    for b in budgets:
        out.append((f"hypervolume of the found front ÷ the true front's ({c.true_front_size} architectures), budget "
                    f"{b}, median: TPE / random", f"{c.hypervolume['tpe'][b]:.3f} / {c.hypervolume['random'][b]:.3f}",
                    "—", "—"))
    for s in c.staged:
        label = f"staged evaluation, {s.staging.bound} accuracy bound, against full (TPE, budget {budget})"
        out.append((f"{label}: calls saved, median", f"{s.calls_saved:.1%}", "—", "—"))
        out.append((f"{label}: hypervolume lost (median {s.hypervolume + s.hypervolume_lost:.3f} → "
                    f"{s.hypervolume:.3f}); true-front architectures stopped / evaluated, all seeds",
                    f"{s.hypervolume_lost:+.3f}; {s.true_front_stopped} / {s.true_front_sampled}", "—", "—"))
    return out


def _ok(good: bool) -> str:
    return "met" if good else "NOT MET"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--budget", type=int, default=BUDGET)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t0 = time.perf_counter()
    budgets = tuple(b for b in BUDGETS if b <= args.budget) or (args.budget,)
    found = rows(args.table, args.seeds, args.budget, budgets,
                 progress=lambda m: console.print(f"[dim]replaying: {m}[/dim]"))
    table = Table(title=f"search efficiency, replayed ({time.perf_counter() - t0:.0f} s)")
    for col in ("what", "measured", "target", "verdict"):
        table.add_column(col)
    for r in found:
        table.add_row(*r)
    console.print(table)


if __name__ == "__main__":
    main()
