"""``itas run``: evaluate one architecture on a benchmark subset."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note, run_async

PoolOption = typer.Option(None, "--pool", help="Pool YAML (default: the embedded default pool).")
ModelMapOption = typer.Option([], "--model-map", metavar="NAME=MODEL",
                              help="Map a model name of the architecture (e.g. Archon's) to a pool model; repeat.")
DataDirOption = typer.Option(None, "--data-dir", help="Local benchmark data folder.")
OutOption = typer.Option(None, "--out", help="Output folder (default: results/run-<timestamp>).")
CacheOption = typer.Option(None, "--cache", help="Call cache file (default: in the output folder).")


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    arch: str = typer.Option(..., "--arch", metavar="FILE|NAME",
                             help="Architecture YAML, Archon JSON config (.json), or a shipped example name "
                                  "(single, vote5, archon-rank-critic-fuse, moa, code-unit-tests, vote-then-judge)."),
    benchmark: str = typer.Option(..., "--benchmark", metavar="NAME", help="Benchmark name (itas benchmarks list)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Run on a seeded subset of N questions."),
    pool: Path | None = PoolOption,
    model_map: list[str] = ModelMapOption,
    data_dir: Path | None = DataDirOption,
    out: Path | None = OutOption,
    cache: Path | None = CacheOption,
    seed: int = typer.Option(0, "--seed", help="Seed of the question subset."),
) -> None:
    """Evaluate one architecture: accuracy, latency (critical path, p50/p95), cost and calls per query."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from itas.arch.evaluate import RunRequest, evaluate, parse_model_map

    request = RunRequest(arch=arch, benchmark=benchmark, limit=limit, pool=pool,
                         model_map=parse_model_map(model_map), data_dir=data_dir, out=out, cache=cache, seed=seed)
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
        outcome = run_async(evaluate(request, report=note, on_call=on_call, on_question=on_question,
                                     on_start=on_start))
    finally:
        progress.stop()
    _show(outcome)


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
    console.print(f"outputs: {outcome.out_dir}")
