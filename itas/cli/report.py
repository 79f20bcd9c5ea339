"""``itas report``: the Pareto front of one or more searches, with intervals, plots, validation and a pick."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note, run_async


def report(
    runs: list[Path] = typer.Argument(None, metavar="DIR", help="Results directories of searches (one or more)."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL of a study (with --study), "
                                          "instead of a results directory."),
    study: str | None = typer.Option(None, "--study", help="Study name in --storage."),
    out: Path | None = typer.Option(None, "--out", help="Folder for plots, the HTML page and pick.yaml "
                                       "(default: <run>/report)."),
    pick: list[str] = typer.Option([], "--pick", metavar="EXPR",
                                   help="A constraint such as 'cost<=0.002' (accuracy, latency, cost, calls; "
                                        "<=, <, >=, >, ==); repeat. Prints the most accurate architecture meeting "
                                        "all of them (ties: cheaper) and writes it as pick.yaml for itas run."),
    validate: int | None = typer.Option(None, "--validate", metavar="K",
                                        help="Evaluate the front and the baselines on K questions the search never "
                                             "saw (starts the search's pool; uses its call cache)."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown (on stdout)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Benchmark data folder for --validate (default: "
                                            "the search's)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG and HTML files."),
) -> None:
    """Report searches: front with 95% intervals, tests against the best single call, plots, pick, validation."""
    from itas.errors import InputError
    from itas.report.make import FORMATS, ReportRequest, make_report
    from itas.report.render import to_csv, to_json, to_markdown

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
    from itas.sampling.report import is_sampling_run

    sampling = [r for r in (runs or []) if is_sampling_run(r)]
    if sampling:  # repeated-sampling runs (itas sample): curves, fit, win rates
        _sampling_reports(sampling, out, fmt, plots=not no_plots)
        runs = [r for r in runs if r not in sampling]
        if not runs:
            return
    request = ReportRequest(runs=list(runs or []), storage=storage, study=study, out=out, picks=list(pick),
                            validate=validate, data_dir=data_dir, plots=not no_plots)
    result = run_async(make_report(request, report=note))
    if fmt == "json":
        print(to_json(result.runs), end="")
    elif fmt == "csv":
        print(to_csv(result.runs), end="")
    elif fmt == "markdown":
        print(to_markdown(result.runs), end="")
    else:
        for rr in result.runs:
            _show(rr)
        _show_files(result.files)
    for label, path in result.picked_files.items():
        note(f"{label}: picked architecture written to {path}")
    missing = [rr for rr in result.runs if rr.constraints and rr.picked is None]
    if missing:
        from itas.report.pick import nearest_miss

        rr = missing[0]
        raise InputError(f"{rr.run.label}: no evaluated architecture meets "
                         f"{' and '.join(str(c) for c in rr.constraints)} "
                         f"({nearest_miss(rr.run.evaluated(), rr.constraints)})")


def _sampling_reports(dirs, out, fmt, plots) -> None:
    import json

    from rich.table import Table

    from itas.sampling.report import render

    for d in dirs:
        target = (out / d.name if len(dirs) > 1 else out) if out else None
        tables = render(d, target, plots=plots)
        if fmt == "json":
            print(json.dumps(tables, default=str))
            continue
        curves = tables["curves"]
        table = Table(title=f"repeated sampling: {d}", title_justify="left")
        cols = [c for c in ("coverage", "vote", "best_of_n", "worst_of_n") if curves and curves[0].get(c) is not None]
        for c in ["k", *cols]:
            table.add_column(c, justify="right")
        ks = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, len(curves)} & set(range(1, len(curves) + 1)))
        for k in ks:
            row = curves[k - 1]
            table.add_row(str(k), *(f"{row[c]:.3f} [{row[c + '_lo']:.3f}, {row[c + '_hi']:.3f}]" for c in cols))
        console.print(table)
        fit = tables.get("fit") or {}
        if fit.get("a") is not None:
            console.print(f"fit log(coverage) = a*k^b: a = {fit['a']:.3g}, b = {fit['b']:.3g} ({fit.get('status')})")
        for f in tables.get("files", []):
            console.print(f"written: {f}", highlight=False)


def _show_files(files) -> None:
    by_folder: dict = {}
    for f in files:
        by_folder.setdefault(f.parent, []).append(f.name)
    for folder, names in by_folder.items():
        console.print(f"written to {folder}: {', '.join(names)}", highlight=False, soft_wrap=True)


def _show(rr) -> None:
    from rich.table import Table

    from itas.report.render import best_lines, headline, pick_line, rows_of, table_cells, ttt_section

    rows = rows_of(rr)
    table = Table(title=headline(rr), title_justify="left", show_lines=False)
    header = list(table_cells(rr, rows[0]))
    for h in header:
        table.add_column(h, justify="left" if h == "architecture" else "right",
                         overflow="fold" if h == "architecture" else "ellipsis",
                         no_wrap=h not in ("architecture",))
    for r in rows:
        cells = table_cells(rr, r)
        style = None if r.on_front else "dim"
        table.add_row(*(cells[h] for h in header), style=style)
    console.print(table)
    console.print("[dim]rows: the Pareto front (accuracy up, latency and cost down), then the single-call baselines "
                  "not on it (dim); Δ and p: paired bootstrap and sign-flip test against the best single call on "
                  "the same questions[/dim]", highlight=False)
    for line in best_lines(rr):
        console.print(line, highlight=False)
    p = pick_line(rr)
    if p:
        console.print(f"[bold]{p}[/bold]", highlight=False)
    ttt = ttt_section(rr)
    if ttt:
        console.print("[bold]test-time training[/bold] (training's share of cost and latency per query; each ttt "
                      "architecture against the same one without ttt, when evaluated):", highlight=False)
        for line in ttt:
            console.print(f"  {line}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
