"""``itas models prepare``: make the serving environment and the default models, once."""

from __future__ import annotations

import typer

from itas.cli._common import console, note

models_app = typer.Typer(help="Prepare the default models for serving.", no_args_is_help=True)


@models_app.command("prepare")
def prepare() -> None:
    """Create the vLLM serving environment and convert the default models (skipped when already done)."""
    from itas.models.prepare import prepare as do_prepare
    from itas.paths import serving_env

    folders = do_prepare(report=note)
    console.print(f"serving environment: {serving_env()}")
    for name, path in folders.items():
        console.print(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
