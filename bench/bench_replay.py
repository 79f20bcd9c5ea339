"""Search efficiency, replayed on the recorded table (bench/tables/word-problems.jsonl), without any model.

- evaluations until an architecture with the table's highest accuracy is evaluated (the budget when none is):
  multivariate TPE against random search, median over 20 seeds, budget 100 (target: random needs >= 3x more);
- hypervolume of the found front relative to the table's true front, at budgets 25, 50 and 100, both samplers;
- staged evaluation (``itas search --staged``) against full evaluation, TPE at budget 100: the calls it saves and
  the front it loses, with the all-correct accuracy bound (what the search uses), the Wilson bound, and the rate
  seen so far (``itas.search.staged``).

- what holds TPE's ratio down on this table: which of the best architecture's parameter values the table's
  marginal accuracies point at, and the evaluations an oracle needs: random search told those values up front;
- whether the best is where the parameters point: its rank under an additive fit of accuracy over the parameters'
  values, and TPE against random search on the fitted table, whose best is where they point by construction;
  and whether it is its questions' luck: how often it is a best one again when the questions are resampled;
- whether the best is its samples' luck: the same space recorded again, each time with samples of its own
  (``replicate_rows``): how the recordings agree, and TPE against random search on each and on all averaged.

``rows(table_path)``, ``bound_rows(table_path)``, ``fit_rows(table_path)`` and ``replicate_rows(first, others)``
give the rows of ``make bench``'s table; ``python bench/bench_replay.py`` prints them (``--again`` names further
recordings of the table).
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
         budgets: tuple[int, ...] = BUDGETS, progress=None, full: bool = True, within: int = 0) -> list[Row]:
    """The rows of ``make bench``'s table for one recorded table; without ``full``, only evaluations to a best
    architecture (no hypervolume at smaller budgets, no staged evaluation). With ``within``, an architecture up to
    that many questions below the highest accuracy counts as a best one: a measure beside the target, not it."""
    from itas.search.replay import TableIndex, compare
    from itas.search.runner import tpe_startup
    from itas.search.table import load_table

    index = TableIndex(load_table(table_path), within)
    if not full:
        budgets = (budget,)
    c = compare(index, seeds=seeds, budget=budget, budgets=budgets, progress=progress,
                **({} if full else {"stagings": ()}))
    n = len(index.rows)
    where = (f"{c.n_architectures} architectures" + (f" ({n} recorded)" if n != c.n_architectures else "")
             + f", {index.n_questions} questions")
    etb, found = c.evaluations_to_best, c.found_best
    floor = len(index.baselines) + tpe_startup(budget)
    if within:
        right = round(c.best_accuracy * index.n_questions)
        near = (f"an architecture within {within} question{'s' if within > 1 else ''} of the best "
                f"({right - within} or more of {index.n_questions} right: {c.n_best} of {where}; the best: {right})")
        return [(f"evaluations to {near}, budget {budget}, median of {seeds} seeds: TPE / random (random ÷ TPE)",
                 _found(c), "—", "—")]
    out: list[Row] = [
        (f"evaluations to a best architecture (accuracy {c.best_accuracy:.3f}: {c.n_best} of {where}), budget "
         f"{budget}, median of {seeds} seeds: TPE / random",
         f"{etb['tpe']:g} / {etb['random']:g} (found in {found['tpe']} / {found['random']} seeds)", "—", "—"),
        (f"random ÷ TPE evaluations to a best architecture ({index.n_questions} questions; {TARGET_SPEEDUP:g}x needs "
         f"TPE within {etb['random'] / TARGET_SPEEDUP:.1f} evaluations, and its baselines and random start-up take "
         f"{floor})", f"{c.speedup:.2f}x", f">= {TARGET_SPEEDUP:g}x", _ok(c.speedup >= TARGET_SPEEDUP)),
    ]
    if not full:
        return out
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


def signals(index) -> dict[str, tuple[object, float, float, bool]]:
    """For every parameter of the table's architectures: (the best architecture's value, the mean accuracy of the
    architectures with that value, the mean of those with any other value, whether its value is the better one).
    What a sampler can learn from the table about where the best architecture is."""
    import statistics

    best = min(index.best)  # any best architecture (the table has one in make bench's)
    out = {}
    params = {k for fp in index.full for k in index.rows[fp]["params"]}
    for k in sorted(params):
        value = index.rows[best]["params"].get(k)
        if value is None:
            continue
        same = [index.full[fp][0] for fp in index.full if index.rows[fp]["params"].get(k) == value]
        other = [index.full[fp][0] for fp in index.full if index.rows[fp]["params"].get(k, value) != value]
        if other:
            m_same, m_other = statistics.mean(same), statistics.mean(other)
            out[k] = (value, m_same, m_other, m_same > m_other)
    return out


def oracle_evaluations(index, known: list[str], seed: int, budget: int) -> int:
    """Evaluations to a best architecture for random search told the best architecture's values of the ``known``
    parameters up front: the table's baselines first (they count, as in every search), then random architectures
    of the space with those values, each counted once (duplicates do not count). The budget if none is found."""
    import optuna

    from itas.arch.spec import parse_architecture

    best = min(index.best)
    want = {k: index.rows[best]["params"][k] for k in known}
    counted = len(index.baselines)
    if set(index.baselines) & index.best:
        return 1 + min(i for i, fp in enumerate(index.baselines) if fp in index.best)
    seen: set[str] = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(200 * budget):
        trial = study.ask()
        arch = index.space.suggest(trial)
        if any(trial.params.get(k) != v for k, v in want.items()):
            continue
        fp = parse_architecture(arch, index.space.source).fingerprint()
        if fp in seen or fp in index.baselines or fp not in index.full:
            continue
        seen.add(fp)
        counted += 1
        if fp in index.best:
            return counted
        if counted >= budget:
            break
    return budget


def bound_rows(table_path: str | Path = TABLE, seeds: int = 200, budget: int = BUDGET) -> list[Row]:
    """What holds TPE's ratio down on this table, measured: which parameters point at the best architecture, and
    what random search told the best's values of those parameters up front (an oracle that learns them at no cost)
    needs."""
    import statistics

    import optuna

    from itas.search.replay import TableIndex
    from itas.search.table import load_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    index = TableIndex(load_table(table_path))
    sig = signals(index)
    mean_acc = statistics.mean(p[0] for p in index.full.values())
    strong = [k for k, (_, a, b, better) in sig.items() if better and a - b >= 0.5 * mean_acc]
    weak = [k for k, (_, a, b, better) in sig.items() if better and k not in strong]
    against = [k for k, (_, a, b, better) in sig.items() if not better]

    def fmt(ks: list[str]) -> str:
        return ", ".join(f"{k}={sig[k][0]} ({sig[k][1]:.3f} vs {sig[k][2]:.3f})" for k in ks) or "none"

    n = f"{index.n_questions} questions"
    best = index.rows[min(index.best)]["description"]
    out: list[Row] = [(f"what the table ({n}) tells a sampler about a best architecture ({best}): mean accuracy with "
                       f"its value vs with the others (table mean {mean_acc:.3f}). Strong: {fmt(strong)}. Weak: {fmt(weak)}. "
                       f"None or pointing away: {fmt(against)}", "—", "—", "—")]
    for known, label in ((strong, "the strong parameters"), (strong + weak, "the strong and the weak parameters")):
        e = [oracle_evaluations(index, known, s, budget) for s in range(seeds)]
        out.append((f"evaluations to a best architecture ({n}), an oracle: random search told the best's values of "
                    f"{label} up front (what a sampler that learned them at no cost would still need; baselines "
                    f"first), median of {seeds} seeds", f"{statistics.median(e):g}", "—", "—"))
    return out


def fitted_table(index):
    """The table with every architecture's accuracy replaced by what its parameters predict: a least-squares fit
    of accuracy on one indicator per (parameter, value) and a constant (main effects, no interactions). Returns
    (the fitted table, R² of the fit, the fitted accuracy of each architecture by fingerprint)."""
    import copy

    import numpy as np

    from itas.search.table import Table

    fps = sorted(index.full)
    keys = sorted({f"{k}={v}" for fp in fps for k, v in index.rows[fp]["params"].items()})
    col = {k: i for i, k in enumerate(keys)}
    x = np.zeros((len(fps), len(keys) + 1))
    x[:, -1] = 1.0
    for r, fp in enumerate(fps):
        for k, v in index.rows[fp]["params"].items():
            x[r, col[f"{k}={v}"]] = 1.0
    y = np.array([index.full[fp][0] for fp in fps])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    fit = x @ coef
    spread = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - fit) ** 2).sum()) / spread if spread else 1.0
    rows = copy.deepcopy(index.rows)
    predicted = {fp: float(f) for fp, f in zip(fps, fit, strict=True)}
    for fp, value in predicted.items():
        for q in rows[fp]["questions"]:
            q[0] = value
    return Table(header=index.table.header, rows=rows), r2, predicted


def best_stability(index, resamples: int = 1000, seed: int = 0) -> tuple[float, dict[str, float]]:
    """How much of the table's best is its questions' luck: its questions resampled with replacement
    ``resamples`` times, the share of resamples in which a best architecture of the table is (one of) the best
    again, and for every architecture that is ever (one of) the best, the share of resamples in which it is."""
    import numpy as np

    fps = sorted(index.full)
    scores = np.array([[q[0] for q in index.rows[fp]["questions"]] for fp in fps], dtype=float)
    rng = np.random.default_rng(seed)
    n = scores.shape[1]
    ours = np.array([fp in index.best for fp in fps])
    again = 0
    ever = np.zeros(len(fps))
    for _ in range(resamples):
        acc = scores[:, rng.integers(0, n, n)].sum(axis=1)
        top = acc >= acc.max() - 1e-9
        again += bool((top & ours).any())
        ever += top
    return again / resamples, {fps[i]: ever[i] / resamples for i in np.flatnonzero(ever)}


def fit_rows(table_path: str | Path = TABLE, seeds: int = SEEDS, budget: int = BUDGET) -> list[Row]:
    """Whether the table's best architecture is where its parameters point: its rank under an additive fit of
    accuracy over the parameters' values (``fitted_table``), and TPE against random search on the fitted table,
    whose best is by construction where the parameters point (the same searches, budget and seeds as the
    target's)."""
    from itas.search.replay import TableIndex, compare
    from itas.search.table import load_table

    index = TableIndex(load_table(table_path))
    fitted, r2, predicted = fitted_table(index)
    order = sorted(predicted, key=lambda fp: -predicted[fp])
    rank = min(order.index(fp) for fp in index.best) + 1
    n = index.n_questions
    best = index.rows[min(index.best)]["description"]
    top = order[0]
    gap = predicted[top] - predicted[order[3]] if len(order) > 3 else 0.0
    c = compare(TableIndex(fitted), seeds=seeds, budget=budget, budgets=(budget,), stagings=())
    again, shares = best_stability(index)
    often = sorted(shares.values(), reverse=True)
    return [
        (f"how much of the best is its questions' luck ({n} questions): the table's questions resampled with "
         f"replacement 1,000 times, the share of resamples in which its best ({best}) is a best architecture "
         f"again; {len(shares)} architectures are a best one in some resample, {sum(x >= 0.05 for x in often)} "
         f"in 5% or more of them, the most often {often[0]:.0%}",
         f"{again:.0%}", "—", "—"),
        (f"where the parameters point ({n} questions): an additive fit of accuracy over the parameters' values "
         f"(R² {r2:.2f}) ranks the table's best ({best}) this far down of {len(order)}; the fit's own top is "
         f"{index.rows[top]['description']} ({predicted[top] * n:.1f} right predicted, "
         f"{round(index.full[top][0] * n)} measured), the fit's next three within {gap * n:.2f} questions of it",
         f"{rank}", "—", "—"),
        (f"the same search on the fitted table ({n} questions; each architecture's accuracy replaced by the fit's, so "
         f"the best is where the parameters point): evaluations to its best, budget {budget}, median of {seeds} "
         f"seeds: TPE / random (random ÷ TPE)",
         _found(c), "—", "—"),
    ]


def mean_table(tables: list):
    """Recordings of the same space on the same questions, each with samples of its own, as one table: every
    architecture's score on each question is the mean of its scores in the recordings (its calls, tokens, latency
    and cost are the first's). The architectures evaluated in every recording."""
    import copy

    from itas.search.table import Table

    first = tables[0]
    if any(t.header.get("question_ids") != first.header.get("question_ids") for t in tables[1:]):
        raise ValueError("the tables were not recorded on the same questions")
    every = set.intersection(*(set(t.evaluated()) for t in tables))
    rows = {fp: copy.deepcopy(first.rows[fp]) for fp in first.rows if fp in every}
    for fp, row in rows.items():
        for i, q in enumerate(row["questions"]):
            q[0] = sum(t.rows[fp]["questions"][i][0] for t in tables) / len(tables)
    return Table(header=first.header, rows=rows)


def replicate_rows(first_path: str | Path, others: list[str | Path], seeds: int = SEEDS,
                   budget: int = BUDGET) -> list[Row]:
    """What of a table's best is its samples' luck: the same space recorded again on the same questions, each
    time with samples of its own (``record_table.py --server-seed N`` with a cache of its own). How the
    recordings' accuracies agree, where each one's best is placed in the others, and TPE against random search
    on each further recording and on all of them averaged (``mean_table``)."""
    import itertools
    import statistics

    import numpy as np

    from itas.search.replay import TableIndex, compare
    from itas.search.table import load_table

    tables = [load_table(first_path), *(load_table(p) for p in others)]
    indexes = [TableIndex(t) for t in tables]
    fps = sorted(set.intersection(*(set(ix.full) for ix in indexes)))
    n = indexes[0].n_questions
    acc = [np.array([ix.full[fp][0] for fp in fps]) * n for ix in indexes]
    r = [float(np.corrcoef(acc[i], acc[j])[0, 1]) for i, j in itertools.combinations(range(len(acc)), 2)]

    def place(index, fp):  # 1 + the architectures strictly better than fp there
        return 1 + sum(1 for p in index.full.values() if p[0] > index.full[fp][0] + 1e-9)

    bests = []
    for i, ix in enumerate(indexes):
        described = sorted({ix.rows[fp]["description"] for fp in ix.best})
        names = " / ".join(described) if len(described) <= 2 else (
            f"{len(described)} architectures tied, {described[0]} among them")
        places = ", ".join(str(min(place(other, fp) for fp in ix.best))
                           for j, other in enumerate(indexes) if j != i)
        bests.append(f"{names} ({round(ix.best_accuracy * n)} right; placed {places})")
    out: list[Row] = [
        (f"the same space recorded {len(tables)} times ({n} questions, each time with samples of its own): "
         f"correlation of the {len(fps)} architectures' accuracies between two recordings, median of "
         f"{len(r)} pair{'s' if len(r) > 1 else ''} (range {min(r):.2f}-{max(r):.2f}); each recording's best, "
         f"and its place in the others (of tied ones, the highest): " + "; ".join(bests), f"{statistics.median(r):.2f}", "—", "—")]
    labelled = [(f"recording {i + 1}", ix) for i, ix in enumerate(indexes[1:], start=1)]
    labelled.append((f"the {len(tables)} recordings averaged", TableIndex(mean_table(tables))))
    for label, index in labelled:
        c = compare(index, seeds=seeds, budget=budget, budgets=(budget,), stagings=())
        out.append((f"evaluations to a best architecture of {label} ({n} questions; accuracy {c.best_accuracy:.3f}: "
                    f"{c.n_best} of {c.n_architectures}), budget {budget}, median of {seeds} seeds: TPE / random "
                    f"(random ÷ TPE)",
                    _found(c), "—", "—"))
    return out


def _found(c) -> str:
    """A comparison's evaluations to a best architecture, the searches that found one, and the ratio."""
    etb, found = c.evaluations_to_best, c.found_best
    return (f"{etb['tpe']:g} / {etb['random']:g} (found in {found['tpe']} / {found['random']} seeds; "
            f"{c.speedup:.2f}x)")


def _ok(good: bool) -> str:
    return "met" if good else "NOT MET"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--budget", type=int, default=BUDGET)
    ap.add_argument("--again", type=Path, nargs="*", default=[],
                    help="further recordings of the table's space and questions, each with samples of its own")
    ap.add_argument("--within", type=int, default=0,
                    help="also replay counting an architecture this many questions below the best as a best one")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t0 = time.perf_counter()
    budgets = tuple(b for b in BUDGETS if b <= args.budget) or (args.budget,)
    found = rows(args.table, args.seeds, args.budget, budgets,
                 progress=lambda m: console.print(f"[dim]replaying: {m}[/dim]"))
    found += bound_rows(args.table, budget=args.budget)
    found += fit_rows(args.table, args.seeds, args.budget)
    if args.again:
        found += replicate_rows(args.table, args.again, args.seeds, args.budget)
    for d in range(1, args.within + 1):
        found += rows(args.table, args.seeds, args.budget, full=False, within=d)
    table = Table(title=f"search efficiency, replayed ({time.perf_counter() - t0:.0f} s)")
    for col in ("what", "measured", "target", "verdict"):
        table.add_column(col)
    for r in found:
        table.add_row(*r)
    console.print(table)


if __name__ == "__main__":
    main()
