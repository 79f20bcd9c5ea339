"""``itas run``: evaluate one architecture on a benchmark subset; or, with ``--from DIR --trial N``, re-run a
search trial's architecture on the search's subset from its call cache."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note, run_async

PoolOption = typer.Option(None, "--pool", help="Pool YAML (default: the embedded default pool; with --from, the "
                                               "search's pool).")
ModelMapOption = typer.Option([], "--model-map", metavar="NAME=MODEL",
                              help="Map a model name of the architecture (e.g. Archon's) to a pool model; repeat.")
DataDirOption = typer.Option(None, "--data-dir", help="Local benchmark data folder.")
OutOption = typer.Option(None, "--out", help="Output folder (default: results/run-<timestamp>).")
CacheOption = typer.Option(None, "--cache", help="Call cache file (default: in the output folder).")


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    arch: str | None = typer.Option(None, "--arch", metavar="FILE|NAME",
                             help="Architecture YAML, Archon JSON config (.json), or a shipped example name "
                                  "(single, vote5, archon-rank-critic-fuse, moa, code-unit-tests, vote-then-judge)."),
    benchmark: str | None = typer.Option(None, "--benchmark", metavar="NAME",
                                         help="Benchmark name (itas benchmarks list)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Run on a seeded subset of N questions."),
    pool: Path | None = PoolOption,
    model_map: list[str] = ModelMapOption,
    data_dir: Path | None = DataDirOption,
    out: Path | None = OutOption,
    cache: Path | None = CacheOption,
    seed: int = typer.Option(0, "--seed", help="Seed of the question subset."),
    from_run: Path | None = typer.Option(None, "--from", metavar="DIR",
                                         help="A search's results directory: re-run its trial --trial N on the "
                                              "search's questions, with its pool and call cache."),
    trial: int | None = typer.Option(None, "--trial", metavar="N", help="The trial to re-run (with --from)."),
) -> None:
    """Evaluate one architecture: accuracy, latency (critical path, p50/p95), cost and calls per query.

    With --from results/<run> --trial N: re-run that trial's architecture on the search's questions, from its call
    cache, and say whether the reported accuracy is reproduced and how many new calls it took."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from itas.arch.evaluate import RunRequest, TrialRunRequest, evaluate, evaluate_trial, parse_model_map
    from itas.errors import InputError

    if from_run is not None or trial is not None:
        if from_run is None or trial is None:
            raise InputError("--from DIR and --trial N go together: give both")
        given = [name for name, value in (("--arch", arch), ("--benchmark", benchmark), ("--limit", limit),
                                          ("--cache", cache), ("--model-map", model_map)) if value]
        if given:
            raise InputError(f"--from re-runs a trial as the search ran it, so {', '.join(given)} cannot be given "
                             f"with it (allowed: --pool, --data-dir, --out)")
        job = evaluate_trial
        request = TrialRunRequest(run_dir=from_run, trial=trial, pool=pool, data_dir=data_dir, out=out)
    else:
        if arch is None or benchmark is None:
            raise InputError("give --arch FILE and --benchmark NAME, or --from results/<run> --trial N")
        job = evaluate
        request = RunRequest(arch=arch, benchmark=benchmark, limit=limit, pool=pool,
                             model_map=parse_model_map(model_map), data_dir=data_dir, out=out, cache=cache,
                             seed=seed)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[calls]} calls"), TimeElapsedColumn(), console=console,
                        transient=True)
    state: dict = {}

    def on_start(architecture, bench, questions, est) -> None:
        bound = "" if est.exact else "at most "
        note(f"{architecture.name} on {bench.name}: {len(questions)} question(s), {bound}{est.calls} call(s) "
             f"and at most {est.tokens} tokens per query")
        state["task"] = progress.add_task("questions", total=len(questions), calls=0)
        progress.start()

    def on_call(_record) -> None:
        if "task" in state:
            state["calls"] = state.get("calls", 0) + 1
            progress.update(state["task"], calls=state["calls"])

    def on_question(_record) -> None:
        if "task" in state:
            progress.advance(state["task"])

    try:
        outcome = run_async(job(request, report=note, on_call=on_call, on_question=on_question,
                                on_start=on_start))
    finally:
        progress.stop()
    _show(outcome)
    failed = [q for q in outcome.result.questions if q.failed]
    if failed:  # the figures above leave those questions out (accuracy counts them wrong): not a success
        from itas.errors import ItasError

        raise ItasError(f"{len(failed)} of {len(outcome.result.questions)} question(s) failed (their outputs "
                        f"record why); first: {failed[0].error}")


def _show(outcome) -> None:
    from rich.table import Table

    m = outcome.result.metrics()
    unit = m.cost_unit
    cost = f"{m.cost_per_query:.6f} {unit}" if unit != "tokens" else f"{m.cost_per_query:,.0f} tokens"
    table = Table(title=f"{outcome.arch.name} on {outcome.result.benchmark}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("questions", f"{m.n_questions}" + (f" ({m.n_failed} failed)" if m.n_failed else ""))
    table.add_row("accuracy", f"{m.accuracy:.3f}")
    table.add_row("latency p50 / p95 (modelled)", f"{m.latency_p50:.2f} s / {m.latency_p95:.2f} s")
    table.add_row("wall time p50 / p95 (measured)", f"{m.wall_p50:.2f} s / {m.wall_p95:.2f} s")
    table.add_row("cost per query", cost)
    est = outcome.estimate
    table.add_row("calls per query", f"{m.calls_per_query:.2f} (estimate: {'' if est.exact else '≤ '}{est.calls})")
    table.add_row("tokens per query", f"{m.tokens_per_query:,.0f}")
    if m.fallbacks:
        kinds = ", ".join(f"{k} {v}" for k, v in m.fallbacks_by_kind.items())
        table.add_row("fallbacks on malformed output", f"{m.fallbacks} ({kinds})")
    if m.truncations:
        table.add_row("candidate texts truncated", str(m.truncations))
    console.print(table)
    if outcome.reported is not None:
        _show_reproduction(outcome, m)
    console.print(f"outputs: {outcome.out_dir}")


def _show_reproduction(outcome, m) -> None:
    rep = outcome.reported
    reported = float(rep["metrics"].get("accuracy", float("nan")))
    scores = {q.id: q.score for q in outcome.result.questions}
    differing = [qid for qid, s in rep["scores"].items() if scores.get(qid) != s]
    new_calls = m.total_calls - m.cached_calls
    same = m.accuracy == reported and not differing
    verdict = "[green]reproduced[/green]" if same else "[red]NOT reproduced[/red]"
    console.print(f"trial {rep['trial']}: reported accuracy {reported:.3f}, now {m.accuracy:.3f}: {verdict}"
                  + (f" ({len(differing)} question(s) scored differently: {', '.join(differing[:5])})"
                     if differing else "")
                  + f"; {new_calls} new call(s), {m.cached_calls} from the cache", highlight=False)
