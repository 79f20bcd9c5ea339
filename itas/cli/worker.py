"""``itas worker``: join a search whose study lives in a shared database (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import run_async


def worker(
    storage: str = typer.Option(..., "--storage", help="The study's storage URL (postgresql://user:pass@host/db)."),
    study: str = typer.Option(..., "--study", help="The study name that itas search printed."),
    out: Path | None = typer.Option(None, "--out", help="This worker's local results directory."),
    pool: Path | None = typer.Option(None, "--pool", help="Pool YAML (default: the search's)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Local benchmark data (or ITAS_DATA_DIR)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Trials this worker evaluates at once."),
) -> None:
    """Evaluate trials of a shared search until its budget is met."""
    from itas.cli.search import _Display, _print_front
    from itas.search.runner import Progress, run_worker

    progress = Progress()
    with _Display(progress) as display:
        outcome = run_async(run_worker(storage, study, out=out, pool=str(pool) if pool else None,
                                       data_dir=str(data_dir) if data_dir else None, jobs=jobs,
                                       report=display.log, progress=progress))
    _print_front(outcome)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
