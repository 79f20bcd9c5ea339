"""``itas sample``: repeated sampling of one model on a benchmark, and its scaling curves."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note, run_async


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)


def sample(
    benchmark: str | None = typer.Option(None, "--benchmark", metavar="NAME",
                                         help="Benchmark name (itas benchmarks list) or a .jsonl file."),
    model: str | None = typer.Option(None, "--model", metavar="NAME", help="The pool model to sample."),
    k: int | None = typer.Option(None, "--k", help="Samples per question (may grow on a later run)."),
    subset: int | None = typer.Option(None, "--subset", help="A seeded subset of N questions."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the subset and of the bootstrap (default 0)."),
    out: Path | None = typer.Option(None, "--out", metavar="DIR",
                                    help="Results folder (default: results/sample-<timestamp>); an existing run "
                                         "there is extended."),
    resume: Path | None = typer.Option(None, "--resume", metavar="DIR", help="Continue or extend a run."),
    reward: str | None = typer.Option(None, "--reward", metavar="SPEC",
                                      help="judge:MODEL (a pool model scores each sample) or reward_model:MODEL "
                                           "(a reward model behind vLLM's pooling API)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (0.7)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens per sample (512)."),
    pool: Path | None = typer.Option(None, "--pool", help="Pool YAML (default: the embedded default pool)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Local benchmark data folder."),
) -> None:
    """K samples per question, scored: coverage (pass@k), majority vote@k, Best/Worst-of-N@k with intervals,
    the scaling-law fit log(coverage) = a·k^b, and (with --reward) calibrated Best/Worst-of-N win rates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from itas.sampling.runner import SampleRequest
    from itas.sampling.runner import sample as run_sampling

    request = SampleRequest(benchmark=benchmark, model=model, k=k, subset=subset, seed=seed, out=out,
                            resume=resume, reward=reward, temperature=temperature, max_tokens=max_tokens,
                            pool=pool, data_dir=data_dir)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[calls]} calls sent, {task.fields[hits]} from the cache"),
                        TimeElapsedColumn(), console=console, transient=True)
    state: dict = {}

    def on_start(config, bench, questions, out_dir) -> None:
        r = f", reward {config.reward_spec}" if config.reward_spec else ""
        note(f"{config.model} on {bench.name}: {len(questions)} question(s) x {config.k} samples "
             f"(temperature {config.temperature}, max_tokens {config.max_tokens}{r}) -> {out_dir}")
        state["task"] = progress.add_task("questions", total=len(questions), calls=0, hits=0)
        progress.start()

    def on_question(_qid, stats) -> None:
        if "task" in state:
            progress.update(state["task"], advance=1, calls=stats.calls_sent, hits=stats.cache_hits)

    try:
        outcome = run_async(run_sampling(request, report=note, on_start=on_start, on_question=on_question))
    finally:
        progress.stop()
    _show(outcome)
    if outcome.failed:
        raise typer.Exit(1)


def _pick(values: list[int], last: int) -> list[int]:
    """Powers of two up to ``last``, and ``last``."""
    out, p = [], 1
    while p < last:
        out.append(p)
        p *= 2
    return [v for v in out if v in values] + ([last] if last in values else [])


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _interval(lo, hi) -> str:
    return "-" if lo is None or hi is None else f"{lo:.3f}–{hi:.3f}"


def _show(outcome) -> None:
    from rich.table import Table

    tables = outcome.tables
    console.print(f"samples: {outcome.samples_sent} new, the rest from the cache "
                  f"({outcome.calls_sent} calls sent in all, {outcome.cache_hits} cache hits)")
    if tables is None:
        console.print(f"no question has its samples yet; outputs: {outcome.out_dir}")
        return
    s = tables["summary"]
    level = int(round(s["level"] * 100))
    reward = tables["winrate"] is not None
    t = Table(title=f"{s['model']} on {s['benchmark']}: {s['questions']} questions, k = 1..{s['k']} "
                    f"(means over questions; intervals for every curve in curves.csv)")
    for col in ["k", "coverage", f"{level}% interval", "vote@k"] + (["BoN@k", "WoN@k"] if reward else []) + \
            ["tokens"]:
        t.add_column(col, justify="right")
    by_k = {r["k"]: r for r in tables["curves"]}
    for kk in _pick(list(by_k), s["k"]):
        r = by_k[kk]
        cells = [str(kk), _f(r["coverage"]), _interval(r["coverage_lo"], r["coverage_hi"]), _f(r["vote"])]
        if reward:
            cells += [_f(r["best_of_n"]), _f(r["worst_of_n"])]
        cells.append(f"{r['completion_tokens']:,.0f}" if r.get("completion_tokens") is not None else "-")
        t.add_row(*cells)
    console.print(t)
    fit = tables["fit"]
    if fit["status"] == "ok":
        ext = ", ".join(f"k={e['k']}: {_f(e['coverage'])} ({_interval(e['lo'], e['hi'])})"
                        for e in fit["extrapolation"][:4])
        console.print(f"fit: log(coverage) = a·k^b, a = {fit['a']:.3f} ({_interval(fit['a_lo'], fit['a_hi'])}), "
                      f"b = {fit['b']:.3f} ({_interval(fit['b_lo'], fit['b_hi'])}), "
                      f"rmse {fit['rmse_coverage']:.4f}; predicted coverage {ext}")
    else:
        console.print(f"fit: {fit['status'].replace('_', ' ')}")
    if reward:
        w = Table(title=f"win rate against one base sample, judged by {s['reward']} (ties count half)")
        for col in ("N", "BoN wins", f"{level}% interval", "N/(N+1)", "WoN wins", "1/(N+1)", "BoN correct"):
            w.add_column(col, justify="right")
        by_n = {r["n"]: r for r in tables["winrate"] if r["questions"]}
        for n in _pick(list(by_n), max(by_n, default=0)):
            r = by_n[n]
            w.add_row(str(n), _f(r["best_win_rate"]), _interval(r["best_lo"], r["best_hi"]), _f(r["best_ideal"]),
                      _f(r["worst_win_rate"]), _f(r["worst_ideal"]), _f(r["best_correct"]))
        if by_n:
            console.print(w)
        else:
            console.print("win rates: no question has two samples with a reward")
        cal = tables["calibration"] or {}
        console.print(f"calibrated rewards: tie rate {_f(cal.get('tie_rate'))}, distance from uniform "
                      f"W1 {_f(cal.get('w1_from_uniform'))} / KS {_f(cal.get('ks_from_uniform'))}, "
                      f"{cal.get('missing_rewards', 0)} sample(s) without a reward")
    if s.get("incomplete_questions"):
        console.print(f"{len(s['incomplete_questions'])} question(s) incomplete, left out")
    console.print(f"outputs: {outcome.out_dir}")
