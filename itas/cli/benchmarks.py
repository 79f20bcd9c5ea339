"""``itas benchmarks list | show NAME | score NAME --predictions FILE``."""

from __future__ import annotations

from pathlib import Path

import typer

benchmarks_app = typer.Typer(help="List, inspect and grade with the benchmarks.", no_args_is_help=True)

DATA_DIR_HELP = "Folder with the benchmark data files (default: $ITAS_DATA_DIR)."


@benchmarks_app.command("list")
def list_command() -> None:
    """The built-in benchmarks."""
    from rich.console import Console
    from rich.table import Table

    from itas.benchmarks import builtin_definitions

    table = Table("name", "kind", "scorer", "description", box=None)
    for name, d in sorted(builtin_definitions().items()):
        aliases = f" ({', '.join(d.aliases)})" if d.aliases else ""
        table.add_row(name + aliases, d.kind, d.scorer, d.description)
    Console().print(table)


@benchmarks_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="A benchmark name, a definition .yaml or a .jsonl file."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
) -> None:
    """A benchmark's definition; with its data found, the number of questions and the first prompt."""
    from rich.console import Console
    from rich.table import Table

    from itas.benchmarks import load_benchmark, resolve_definition
    from itas.errors import DataError

    d = resolve_definition(name)
    console = Console()
    table = Table(show_header=False, box=None)
    src = d.data
    sources = [s for s in (
        f"file {src.file}" if src.file else None,
        f"package {src.package.module}:{src.package.path}" if src.package else None,
        (f"hub {src.hub.path}" + (f" ({src.hub.name})" if src.hub.name else "") + f" split {src.hub.split}")
        if src.hub else None,
        (f"loader {src.loader.name}(" + ", ".join(f"{k}={v}" for k, v in dict(src.loader.options).items()) + ")")
        if getattr(src, "loader", None) else None) if s]
    ref = d.fields.reference if isinstance(d.fields.reference, str) else \
        ", ".join(f"{k}={v}" for k, v in d.fields.reference)
    options = ", ".join(f"{k}={v}" for k, v in d.scorer_options.items())
    for key, value in [
        ("name", d.name + (f" (aliases: {', '.join(d.aliases)})" if d.aliases else "")),
        ("description", d.description), ("kind", d.kind), ("definition", d.source),
        ("data", "; then ".join(sources)), ("question", d.fields.question), ("reference", ref),
        ("extractor", d.extractor), ("scorer", d.scorer + (f" ({options})" if options else "")),
        ("stratify", ", ".join(d.stratify) or "-"),
    ]:
        table.add_row(f"[bold]{key}[/bold]", value, )
    try:
        bench = load_benchmark(name, data_dir)
    except DataError as exc:
        table.add_row("[bold]questions[/bold]", f"[yellow]data not found: {exc}[/yellow]")
        console.print(table)
        return
    table.add_row("[bold]questions[/bold]", f"{len(bench.questions())} from {bench.origin}")
    console.print(table)
    q = bench.questions()[0]
    console.rule(f"prompt of {q.id}")
    console.print(bench.messages(q)[0]["content"], markup=False, highlight=False)


@benchmarks_app.command("score")
def score_command(
    name: str = typer.Argument(..., help="A benchmark name, a definition .yaml or a .jsonl file."),
    predictions: Path = typer.Option(..., "--predictions", help='JSONL file of {"id": ..., "output": ...} lines.'),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    workers: int = typer.Option(None, "--workers", min=1, help="Outputs graded at once (default: per scorer)."),
    show: int = typer.Option(50, "--show", min=0, help="Per-question rows to print (0: none; wrong ones first)."),
) -> None:
    """Grade outputs made elsewhere with the benchmark's extractor and scorer."""
    from rich.console import Console
    from rich.table import Table

    from itas.benchmarks import load_benchmark
    from itas.benchmarks.predictions import score_predictions

    bench = load_benchmark(name, data_dir)
    report = score_predictions(bench, predictions, workers=workers)
    console = Console()
    if show:
        table = Table("id", "status", "score", "extracted", "detail", box=None)
        rows = sorted(report.graded, key=lambda g: g.score.value)[:show]
        for g in rows:
            style = "green" if g.score.status == "correct" else "red"
            extracted = (g.score.extracted or "").strip().replace("\n", " ")
            table.add_row(g.id, f"[{style}]{g.score.status}[/{style}]", f"{g.score.value:g}",
                          extracted[:40] + ("…" if len(extracted) > 40 else ""), g.score.detail[:60])
        console.print(table)
        if len(report.graded) > show:
            console.print(f"({len(report.graded) - show} more rows not shown; --show N)")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    console.print(f"[bold]{bench.name}[/bold]: accuracy {report.accuracy:.1%} "
                  f"({sum(g.score.value for g in report.graded):g}/{len(report.graded)} predictions; "
                  f"{len(report.graded)} of {report.questions} questions) · {counts}")


def register(app: typer.Typer) -> None:
    app.add_typer(benchmarks_app, name="benchmarks")
