"""Turns: the requests of models whose servers share compute are sent one model at a time.

Two vLLM servers on the same CPU cores that both have work slow each other down far more than they gain: on
2 cores the default pool's two servers, sent the same requests, finish them in 1.4x less time one model after
the other than both at once, and a single request always in flight at one server cut the other's throughput
3.5 to 6 times (``bench/results/engine-use.md``). Models given the same ``turns`` group in the pool YAML
therefore take turns: the model holding the turn gets every request it asks for; once another model of the
group is waiting, the holder's new requests wait too, and when the holder's requests in flight have all come
back, the turn passes to the model that has waited longest, whose waiting requests all go at once (one full
batch rather than a trickle).

No request waits for more than the holder's requests already at its server; a request never holds the turn
while it waits for anything but its own answer, so dependent calls cannot deadlock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Turns:
    """The turn of one group of models (one per group and event loop)."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.active = 0  # the holder's requests at its server
        self._waiting: dict[str, deque[asyncio.Future]] = {}
        self._since: dict[str, float] = {}  # member -> when its oldest waiting request began to wait
        self.switches = 0
        self.waited = 0.0  # seconds requests spent waiting for the turn, summed

    def _others_waiting(self, member: str) -> bool:
        return any(q for m, q in self._waiting.items() if m != member)

    async def acquire(self, member: str) -> None:
        if (self.holder is None or self.holder == member) and not self._others_waiting(member):
            self.holder = member
            self.active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(member, deque())
        if not queue:
            self._since[member] = time.monotonic()
        queue.append(fut)
        t0 = time.monotonic()
        try:
            await fut  # granted: ``active`` already counts this request
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(member)  # granted just as it was cancelled: give the place back
            else:
                queue.remove(fut)
                if not queue:
                    self._since.pop(member, None)
                if self.active == 0:
                    self._pass()
            raise
        finally:
            self.waited += time.monotonic() - t0

    def release(self, member: str) -> None:
        self.active -= 1
        if self.active == 0:
            self._pass()

    def _pass(self) -> None:
        """The holder has nothing in flight: the turn goes to the model waiting longest, with all its requests."""
        waiting = [m for m, q in self._waiting.items() if q]
        if not waiting:
            self.holder = None
            return
        nxt = min(waiting, key=lambda m: self._since[m])
        if nxt != self.holder:
            self.switches += 1
        self.holder = nxt
        queue = self._waiting[nxt]
        self._since.pop(nxt, None)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)
        if self.active == 0:  # every waiter had been cancelled
            self._pass()
