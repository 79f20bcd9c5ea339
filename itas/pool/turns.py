"""Turns: the requests of models whose servers share compute are answered one model at a time.

Two vLLM servers on the same CPU cores that both have work slow each other down far more than they gain: on
2 cores the default pool's two servers, sent the same requests, finish them in 1.4x less time one model after
the other than both at once, and a single request always in flight at one server cut the other's throughput
3.5 to 6 times (``bench/results/engine-use.md``). Models given the same ``turns`` group in the pool YAML
therefore take turns, in one of two ways.

**Pausing the servers** (servers that have vLLM's development endpoints, ``VLLM_SERVER_DEV_MODE=1``, as the
default pool's do). Every request goes to its server at once; only the model holding the turn has its server
running, the others' servers are paused with their requests kept (``POST /sleep?level=0&mode=keep``) and carry
on where they stopped when their turn comes (``POST /wake_up?tags=scheduling``). The turn passes when the
holder has nothing left; after ``min_turn`` seconds (3) when another model has at least twice the holder's
requests; and after ``max_turn`` seconds (30) in any case. So no batch drains to its last long requests while the
other model waits, the holder's new requests join its running batch, and a call that depends on another model's
answer waits seconds for its turn instead of a whole batch. (A switch costs a fraction of a second; a switch
whenever the other model merely had more requests, with 2 s and 10 s, made the bench search slower than draining:
``bench/results/engine-use.md``, section 6.)

**Draining** (any other server). The model holding the turn gets every request it asks for; once another model
of the group is waiting, the holder's new requests wait too, and when the holder's requests in flight have all
come back, the turn passes to the model that has waited longest, whose waiting requests all go at once.

Either way a request never holds the turn while it waits for anything but its own answer, so dependent calls
cannot deadlock. A paused server is resumed when its model gets the turn, when the pool closes, and the first
time a pool uses it (it may have been left paused by a process that was killed).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol


class Servers(Protocol):
    """Pauses and resumes the servers of a turns group's models."""

    async def can_pause(self) -> bool: ...  # every member's servers can be paused with their requests kept
    async def pause(self, member: str) -> None: ...
    async def resume(self, member: str) -> None: ...
    def members(self) -> list[str]: ...


class Turns:
    """The turn of one group of models (one per group and event loop)."""

    def __init__(self, servers: Servers | None = None, *, min_turn: float = 3.0, max_turn: float = 30.0) -> None:
        self.servers = servers
        self.min_turn, self.max_turn = min_turn, max_turn
        self.pausing: bool | None = None if servers is not None else False  # None: not asked yet
        self.holder: str | None = None
        self.active = 0  # draining: the holder's requests at its server
        self._waiting: dict[str, deque[asyncio.Future]] = {}
        self._since: dict[str, float] = {}  # member -> when its oldest waiting request began to wait
        self.switches = 0
        self.waited = 0.0  # seconds requests spent waiting in acquire, summed
        # pausing
        self.pending: dict[str, int] = {}  # member -> its requests at its server (running or paused)
        self.paused: set[str] = set()
        self._turn_start = 0.0
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._probe: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- public -------------------------------------------------------------------------------------
    async def acquire(self, member: str) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: nothing of the old one's is valid here
            self._loop = loop
            self.pausing = None if self.servers is not None else False
            self._probe = self._task = None
            self.holder, self.active, self._waiting, self._since = None, 0, {}, {}
            self.pending, self.paused = {}, set()
        if self.pausing is None:
            await self._ask_servers()
        if self.pausing:
            await self._acquire_paused(member)
        else:
            await self._acquire_draining(member)

    def release(self, member: str) -> None:
        if self.pausing:
            self.pending[member] -= 1
            self._changed.set()
            return
        self.active -= 1
        if self.active == 0:
            self._pass()

    async def aclose(self) -> None:
        """Stop switching and resume every server this group paused."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._lock is not None:
            async with self._lock:
                for member in sorted(self.paused):
                    await self.servers.resume(member)
                self.paused.clear()
        self.holder = None

    # ---- pausing ------------------------------------------------------------------------------------
    async def _ask_servers(self) -> None:
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._first_use())
        await asyncio.shield(self._probe)

    async def _first_use(self) -> None:
        pausing = await self.servers.can_pause()
        if pausing:
            self._lock, self._changed = asyncio.Lock(), asyncio.Event()
            for member in self.servers.members():
                await self.servers.resume(member)  # a killed process may have left it paused
        self.pausing = pausing

    async def _locked(self, change) -> None:
        """Runs ``change`` (a coroutine function that pauses or resumes servers) under the lock, to the end even
        if the caller is cancelled: what ``paused`` says is always what the servers are."""
        async def run():
            async with self._lock:
                await change()
        await asyncio.shield(asyncio.ensure_future(run()))

    async def _acquire_paused(self, member: str) -> None:
        self.pending[member] = self.pending.get(member, 0) + 1
        try:
            if self.holder is None and member not in self.paused:
                self.holder, self._turn_start = member, time.monotonic()  # nobody else has requests
            elif member != self.holder and member not in self.paused:
                async def pause():  # its server must not run beside the holder's: pause it first
                    if member != self.holder and member not in self.paused:
                        await self.servers.pause(member)
                        self.paused.add(member)
                t0 = time.monotonic()
                await self._locked(pause)
                self.waited += time.monotonic() - t0
        except BaseException:
            self.pending[member] -= 1
            raise
        finally:
            self._changed.set()
            if self._task is None or self._task.done():
                self._task = asyncio.ensure_future(self._switcher())

    def _next(self) -> tuple[str | None, float]:
        """The member that should hold the turn now (None: the holder keeps it), and how long to wait before
        asking again when nothing changes."""
        others = {m: n for m, n in self.pending.items() if n > 0 and m != self.holder}
        if not others:
            return None, float("inf")
        best = max(others, key=lambda m: others[m])
        held = self.pending.get(self.holder, 0) if self.holder is not None else 0
        if held == 0:
            return best, 0.0
        age = time.monotonic() - self._turn_start
        if age >= self.max_turn or (age >= self.min_turn and others[best] >= 2 * held):
            return best, 0.0
        return None, (self.min_turn if age < self.min_turn else self.max_turn) - age

    async def _switcher(self) -> None:
        while True:
            self._changed.clear()
            nxt, wait = self._next()
            if nxt is not None:
                async def switch(nxt=nxt):
                    # the holder changes first: from here on a new request of the old holder pauses its server
                    # itself (after this switch, under the lock) unless the switch pauses it below
                    old, self.holder = self.holder, nxt
                    self.switches += 1
                    if old is not None and self.pending.get(old, 0) > 0 and old not in self.paused:
                        await self.servers.pause(old)
                        self.paused.add(old)
                    if nxt in self.paused:
                        await self.servers.resume(nxt)
                        self.paused.discard(nxt)
                    self._turn_start = time.monotonic()
                await self._locked(switch)
                continue
            if not any(self.pending.values()):
                self.holder = None  # nothing left anywhere: the turn is free (the last holder's server runs)
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=None if wait == float("inf") else wait)
            except TimeoutError:
                pass

    # ---- draining -----------------------------------------------------------------------------------
    def _others_waiting(self, member: str) -> bool:
        return any(q for m, q in self._waiting.items() if m != member)

    async def _acquire_draining(self, member: str) -> None:
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
