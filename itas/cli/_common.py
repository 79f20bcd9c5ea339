"""Small helpers shared by the command modules."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def note(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]", highlight=False)


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; Ctrl-C and SIGTERM cancel it, so its ``finally`` blocks (stopping servers) run."""
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        task = loop.create_task(coro)
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            return runner.run(_await(task))
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None


async def _await(task: asyncio.Task) -> Any:
    return await task
