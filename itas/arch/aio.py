"""Concurrency helper: run awaitables together; on the first error cancel the others and raise it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Like ``asyncio.gather``, but a failure cancels the siblings (no orphaned calls keep running) and the
    error raised is the first one in argument order among those that failed."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # we were cancelled: take the children with us
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pending:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]  # retrieves every one
    for exc in errors:
        if exc is not None:
            raise exc
    return [t.result() for t in tasks]
