"""The command line: parses, calls one library function, renders with rich.

Each command group lives in its own module with a ``register(app)`` function. Heavy libraries (optuna, pandas,
datasets, openai) are imported inside commands, so ``itas --help`` answers at once. Errors raised by the
library become one line on stderr here, in one place, with exit code 2 for bad input and 1 for failures.
"""

from __future__ import annotations

import importlib
import sys

import typer

from itas import __version__

app = typer.Typer(
    name="itas",
    help="Inference-time architecture search: find the best way to spend inference compute on a task.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMAND_MODULES = ["pool", "models", "benchmarks", "run", "search", "report", "sample", "worker"]

# commands that manage servers themselves (they adopt orphaned servers they can use, and reap the rest)
_POOL_USERS = {"pool", "run", "search", "sample", "worker", "report"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"itas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    if ctx.invoked_subcommand and ctx.invoked_subcommand not in _POOL_USERS and "--help" not in sys.argv:
        from itas.pool.serving import reap_orphans

        reap_orphans()


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"itas.cli.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"itas.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    from itas.errors import ItasError

    try:
        rc = app(standalone_mode=False)
    except ItasError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # usage errors from click, or from the copy of click that typer bundles
        kinds = {c.__name__ for c in type(exc).__mro__}
        if "ClickException" in kinds:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            print(f"error: {' '.join(message.split())}", file=sys.stderr)
            sys.exit(2 if "UsageError" in kinds else getattr(exc, "exit_code", 1))
        if "Abort" in kinds:
            print("aborted", file=sys.stderr)
            sys.exit(130)
        if "Exit" in kinds:
            sys.exit(getattr(exc, "exit_code", 0))
        raise
    sys.exit(rc if isinstance(rc, int) else 0)
