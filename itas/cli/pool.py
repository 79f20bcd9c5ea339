"""``itas pool up|down|status``."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note

pool_app = typer.Typer(help="Start, stop and inspect the model servers of a pool.", no_args_is_help=True)

PoolOption = typer.Option(None, "--pool", help="Pool YAML (default: the embedded default pool).")


@pool_app.command("up")
def up(pool: Path | None = PoolOption,
       lora: bool = typer.Option(False, "--lora", help="Serve with LoRA adapters enabled (test-time training), "
                                 "for every model with serve.lora; slows base generation by 30-40% on the CPU.")
       ) -> None:
    """Start the servers itas manages (they run until `itas pool down`)."""
    from itas.pool.config import load_pool
    from itas.pool.serving import start_pool

    config = load_pool(pool)
    if not any(m.managed for m in config.models):
        note("this pool has no managed models (no 'serve' section); nothing to start")
    with_lora: list[str] = []
    if lora:
        with_lora = [m.name for m in config.models if m.managed and m.serve.lora_available is not None]
        without = [m.name for m in config.models if m.managed and m.name not in with_lora]
        if without:
            note(f"--lora: {', '.join(without)} {'has' if len(without) == 1 else 'have'} no serve.lora in "
                 f"{config.source}, so {'it starts' if len(without) == 1 else 'they start'} without LoRA")
    running = start_pool(config, detached=True, report=note, lora=with_lora)
    _show(running.config)


@pool_app.command("down")
def down(pool: Path | None = PoolOption,
         all_: bool = typer.Option(False, "--all", help="Stop every server itas started, of any pool.")) -> None:
    """Stop the servers of the pool that itas started."""
    from itas.pool.config import load_pool
    from itas.pool.serving import reap_orphans, stop_detached

    reap_orphans(report=note)
    n = stop_detached(None if all_ else load_pool(pool), report=note)
    console.print(f"stopped {n} server(s)")


@pool_app.command("status")
def status(pool: Path | None = PoolOption) -> None:
    """Show each endpoint of the pool and whether it answers."""
    from itas.pool.config import load_pool
    from itas.pool.serving import reap_orphans

    config = load_pool(pool)
    for rec in reap_orphans(report=note):
        console.print(f"stopped orphaned server {rec['model']} (port {rec['port']}, owner pid {rec['owner']['pid']})")
    _show(config)


@pool_app.command("ask")
def ask(
    prompt: str = typer.Argument(..., help="What to ask every model of the pool."),
    pool: Path | None = PoolOption,
    max_tokens: int = typer.Option(128, "--max-tokens", min=1),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0),
) -> None:
    """Ask every model of the pool one question (starting managed servers, and stopping them after)."""
    import asyncio

    from rich.table import Table

    from itas.cli._common import run_async
    from itas.pool.session import open_pool
    from itas.pool.types import SamplingParams

    async def go():
        async with open_pool(pool, report=note) as p:
            msgs = [{"role": "user", "content": prompt}]
            params = SamplingParams(temperature=temperature, max_tokens=max_tokens)
            outs = await asyncio.gather(*(p.generate(n, msgs, params) for n in p.config.names))
            return p.config.names, [o[0] for o in outs]

    names, outs = run_async(go())
    table = Table(title=prompt, show_lines=True)
    for col in ("model", "answer", "tokens (prompt+output)", "seconds"):
        table.add_column(col)
    for name, c in zip(names, outs, strict=True):
        table.add_row(name, c.text.strip(), f"{c.prompt_tokens}+{c.completion_tokens}", f"{c.duration:.1f}")
    console.print(table)


def _show(config) -> None:
    from rich.table import Table

    from itas.pool.serving import pool_status

    table = Table(title=f"pool: {config.source}")
    for col in ("model", "endpoint", "managed", "answers", "detail"):
        table.add_column(col)
    for s in pool_status(config):
        table.add_row(s.model, s.url, "yes" if s.managed else "no",
                      "[green]yes[/green]" if s.answers else "[red]no[/red]", s.detail)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(pool_app, name="pool")
