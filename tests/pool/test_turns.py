"""Turns: models that share compute send their requests one model at a time (itas.pool.turns)."""

from __future__ import annotations

import asyncio
import random

import pytest

from itas.pool.turns import Turns
from tests.fake_openai import FakeOpenAI


class Server:
    """Stands for the shared compute: records, for each model, how many requests it is answering."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.overlaps = 0
        self.log: list[str] = []

    async def call(self, turns: Turns, model: str, seconds: float) -> None:
        await turns.acquire(model)
        try:
            self.active[model] = self.active.get(model, 0) + 1
            if any(n for m, n in self.active.items() if m != model):
                self.overlaps += 1
            self.log.append(model)
            await asyncio.sleep(seconds)
        finally:
            self.active[model] -= 1
            turns.release(model)


def test_one_model_alone_never_waits():
    async def go():
        turns, server = Turns(), Server()
        await asyncio.gather(*(server.call(turns, "a", 0.01) for _ in range(50)))
        return turns, server

    turns, server = asyncio.run(go())
    assert turns.waited < 0.05 and turns.switches == 0 and turns.holder is None and turns.active == 0


def test_a_waiting_model_gets_the_turn_when_the_holder_drains_and_the_holder_queues_behind_it():
    async def go():
        turns, server = Turns(), Server()
        first = [asyncio.ensure_future(server.call(turns, "a", 0.05)) for _ in range(3)]
        await asyncio.sleep(0.01)
        b = [asyncio.ensure_future(server.call(turns, "b", 0.02)) for _ in range(2)]
        await asyncio.sleep(0.01)
        late_a = asyncio.ensure_future(server.call(turns, "a", 0.01))  # b waits: a's new request waits too
        await asyncio.gather(*first, *b, late_a)
        return turns, server

    turns, server = asyncio.run(go())
    assert server.log == ["a", "a", "a", "b", "b", "a"]
    assert server.overlaps == 0 and turns.switches == 2


def test_many_models_at_random_never_overlap_and_all_finish():
    rng = random.Random(7)

    async def go():
        turns, server = Turns(), Server()

        async def client(model: str, n: int):
            for _ in range(n):
                await asyncio.sleep(rng.random() * 0.01)
                await server.call(turns, model, rng.random() * 0.01)

        await asyncio.wait_for(asyncio.gather(*(client(m, 20) for m in "abc" for _ in range(8))), timeout=30)
        return turns, server

    turns, server = asyncio.run(go())
    assert len(server.log) == 3 * 8 * 20 and server.overlaps == 0
    assert turns.active == 0 and turns.holder is None and turns.switches > 3


def test_a_cancelled_waiter_does_not_block_the_others():
    async def go():
        turns, server = Turns(), Server()
        holder = asyncio.ensure_future(server.call(turns, "a", 0.05))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(server.call(turns, "b", 0.01))
        stays = asyncio.ensure_future(server.call(turns, "c", 0.01))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.wait_for(asyncio.gather(holder, stays), timeout=5)
        with pytest.raises(asyncio.CancelledError):
            await gone
        after = asyncio.ensure_future(server.call(turns, "b", 0.01))
        await asyncio.wait_for(after, timeout=5)
        return turns, server

    turns, server = asyncio.run(go())
    assert server.log == ["a", "c", "b"] and turns.active == 0


def test_the_pool_sends_a_turns_groups_requests_one_model_at_a_time():
    """Two models in one turns group, each behind its own (fake) server: at no moment do both servers answer."""
    from itas.pool.client import Pool
    from itas.pool.config import parse_pool
    from itas.pool.types import SamplingParams

    one, two = FakeOpenAI(model="m1").start(), FakeOpenAI(model="m2").start()
    one.default = two.default = ("sleep", 0.05)
    peaks = {"both": 0}
    try:
        config = parse_pool({"models": {
            "one": {"model": "m1", "endpoints": [one.url], "turns": "cpu"},
            "two": {"model": "m2", "endpoints": [two.url], "turns": "cpu"}}}, "pool.yaml")

        async def go():
            async with Pool(config, None, timeout=5.0) as pool:
                async def watch():
                    while True:
                        if one.active and two.active:
                            peaks["both"] += 1
                        await asyncio.sleep(0.002)

                w = asyncio.ensure_future(watch())
                params = SamplingParams(temperature=1.0, max_tokens=8)
                calls = [pool.generate(name, [{"role": "user", "content": f"{name} {i}"}], params)
                         for i in range(12) for name in ("one", "two")]
                out = await asyncio.gather(*calls)
                w.cancel()
                return out, pool.turns["cpu"]

        out, turns = asyncio.run(go())
        assert len(out) == 24 and one.count == 12 and two.count == 12
        assert peaks["both"] == 0 and turns.switches >= 1
    finally:
        one.stop()
        two.stop()


def test_turns_must_name_a_group():
    from itas.errors import ConfigError
    from itas.pool.config import parse_pool

    with pytest.raises(ConfigError, match="turns"):
        parse_pool({"models": {"m": {"model": "x", "endpoints": ["http://127.0.0.1:1/v1"], "turns": "a b"}}}, "p.yaml")


class PausingServers:
    """Stands for servers that can be paused with their requests kept: a request's work advances only while its
    model's server runs. Records whether two models' requests ever advanced at the same moment."""

    def __init__(self, members: str = "ab", *, can: bool = True, paused: str = "") -> None:
        self.running = {m: m not in paused for m in members}
        self.busy: dict[str, int] = {m: 0 for m in members}
        self.overlaps = 0
        self.can = can
        self.calls: list[tuple[str, str]] = []

    async def can_pause(self) -> bool:
        return self.can

    def members(self) -> list[str]:
        return list(self.running)

    async def pause(self, member: str) -> None:
        await asyncio.sleep(0.001)
        self.running[member] = False
        self.calls.append(("pause", member))

    async def resume(self, member: str) -> None:
        await asyncio.sleep(0.001)
        self.running[member] = True
        self.calls.append(("resume", member))

    async def call(self, turns: Turns, model: str, seconds: float, done: dict | None = None) -> None:
        await turns.acquire(model)
        self.busy[model] += 1
        try:
            left = seconds
            while left > 0:
                await asyncio.sleep(0.002)
                if self.running[model]:
                    if any(self.busy[m] and self.running[m] for m in self.busy if m != model):
                        self.overlaps += 1
                    left -= 0.002
        finally:
            self.busy[model] -= 1
            turns.release(model)
        if done is not None:
            done.setdefault(model, []).append(asyncio.get_running_loop().time())


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_paused_servers_never_run_together_and_every_request_finishes(seed):
    rng = random.Random(seed)

    async def go():
        servers = PausingServers("abc")
        turns = Turns(servers, min_turn=0.02, max_turn=0.06)

        async def client(model: str, n: int):
            for _ in range(n):
                await asyncio.sleep(rng.random() * 0.01)
                await servers.call(turns, model, rng.random() * 0.01)

        await asyncio.wait_for(asyncio.gather(*(client(m, 10) for m in "abc" for _ in range(6))), timeout=60)
        await turns.aclose()
        return turns, servers

    turns, servers = asyncio.run(go())
    assert turns.pausing is True and servers.overlaps == 0 and turns.switches > 3
    assert all(servers.running.values()) and not turns.paused and not any(turns.pending.values())


def test_a_waiting_model_with_more_requests_takes_the_turn_without_waiting_for_the_holder_to_drain():
    """a holds the turn with 2 long requests; b arrives with 6 short ones. b's server runs after min_turn, long
    before a's requests end, and a's requests carry on where they stopped when the turn comes back."""
    async def go():
        servers = PausingServers()
        turns = Turns(servers, min_turn=0.05, max_turn=10.0)
        loop = asyncio.get_running_loop()
        done: dict = {}
        t0 = loop.time()
        a = [asyncio.ensure_future(servers.call(turns, "a", 0.6, done)) for _ in range(2)]
        await asyncio.sleep(0.01)
        b = [asyncio.ensure_future(servers.call(turns, "b", 0.05, done)) for _ in range(6)]
        await asyncio.wait_for(asyncio.gather(*a, *b), timeout=30)
        await turns.aclose()
        return t0, done, turns, servers

    t0, done, turns, servers = asyncio.run(go())
    assert servers.overlaps == 0
    assert max(done["b"]) - t0 < 0.4  # draining would have made b wait for a's 0.6 s
    assert min(done["a"]) > max(done["b"]) and len(done["a"]) == 2
    assert ("pause", "a") in servers.calls and turns.switches >= 2


def test_a_model_with_fewer_requests_gets_the_turn_after_max_turn():
    async def go():
        servers = PausingServers()
        turns = Turns(servers, min_turn=0.02, max_turn=0.1)
        loop = asyncio.get_running_loop()
        done: dict = {}
        t0 = loop.time()
        a = [asyncio.ensure_future(servers.call(turns, "a", 0.5, done)) for _ in range(4)]
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(servers.call(turns, "b", 0.02, done))
        await asyncio.wait_for(asyncio.gather(*a, b), timeout=30)
        await turns.aclose()
        return t0, done, servers

    t0, done, servers = asyncio.run(go())
    assert servers.overlaps == 0
    assert done["b"][0] - t0 < 0.3 < min(done["a"]) - t0


def test_servers_that_cannot_pause_take_turns_by_draining():
    async def go():
        servers = PausingServers(can=False)
        turns = Turns(servers)
        first = [asyncio.ensure_future(servers.call(turns, "a", 0.05)) for _ in range(3)]
        await asyncio.sleep(0.01)
        b = [asyncio.ensure_future(servers.call(turns, "b", 0.02)) for _ in range(2)]
        await asyncio.gather(*first, *b)
        return turns, servers

    turns, servers = asyncio.run(go())
    assert turns.pausing is False and servers.calls == [] and servers.overlaps == 0 and turns.switches == 1


def test_first_use_resumes_a_server_left_paused_and_a_cancelled_request_frees_its_place():
    async def go():
        servers = PausingServers(paused="b")  # as a killed process may leave it
        turns = Turns(servers, min_turn=0.01, max_turn=0.05)
        await servers.call(turns, "b", 0.01)
        assert servers.running["b"]
        holder = asyncio.ensure_future(servers.call(turns, "a", 0.3))
        await asyncio.sleep(0.02)
        gone = asyncio.ensure_future(servers.call(turns, "b", 0.3))
        await asyncio.sleep(0.0005)  # b's server is being paused for it
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        stays = asyncio.ensure_future(servers.call(turns, "b", 0.01))
        await asyncio.wait_for(asyncio.gather(holder, stays), timeout=10)
        await turns.aclose()
        return turns, servers

    turns, servers = asyncio.run(go())
    assert servers.calls[:2] == [("resume", "a"), ("resume", "b")]
    assert not any(turns.pending.values()) and servers.overlaps == 0 and all(servers.running.values())
