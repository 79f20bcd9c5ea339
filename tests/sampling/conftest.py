"""Fakes for the sampling tests: the benchmark loader and the pool opener replaced by scripted fakes (no
servers); one fake pool is shared by every ``open_pool`` of a test, so its cache persists across runs the way
``calls.sqlite`` does."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import pytest

from itas.pool import session as pool_session
from itas.pool.client import PoolStats
from tests.fakes import FakeBenchmark, FakePool

JUDGE_MARK = 'of the form "Score: N"'


class SamplingBenchmark(FakeBenchmark):
    """FakeBenchmark with ``by_ids`` (what a resumed run uses), as the real Benchmark has."""

    def by_ids(self, ids):
        by_id = {q.id: q for q in self._questions}
        return [by_id[i] for i in ids]


class SamplingPool(FakePool):
    """FakePool with the real pool's counters (``stats``), which the sampling run reports."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.stats = PoolStats()

    async def generate(self, model, messages, params, k=1, start=0):
        out = await super().generate(model, messages, params, k=k, start=start)
        self.stats.calls_sent += sum(not c.cached for c in out)
        self.stats.cache_hits += sum(c.cached for c in out)
        return out


def script(model, messages, params, index):
    """Generator: sample s answers the question right when s % 3 == 0, else one of two wrong answers; sample 5
    gives no answer. Judge: 'Score: N' with N from the candidate's sample number, unparsable for sample 7."""
    content = str(messages[-1]["content"])
    if JUDGE_MARK in content:
        s = int(re.search(r"sample (\d+)", content).group(1))
        return "Hmm, not sure." if s == 7 else f"Looks fine. Score: {1 + (s * 3) % 10}"
    nums = [int(x) for x in re.findall(r"\d+", content)[:2]]
    right = sum(nums)
    if index == 5:
        return f"sample {index}: I do not know."
    answer = right if index % 3 == 0 else right + 1 + index % 2
    return f"sample {index}: the answer. #### {answer}"


@dataclass
class FakeEnv:
    pool: SamplingPool
    bench: SamplingBenchmark
    opened: list = field(default_factory=list)  # (pool config, cache path) per open_pool


@pytest.fixture
def fake_env(monkeypatch) -> FakeEnv:
    env = FakeEnv(pool=SamplingPool(script, reward=lambda model, messages, response: float(len(response) % 5)),
                  bench=SamplingBenchmark(n=8))

    def load_benchmark(name, data_dir=None):
        env.bench.name = name
        return env.bench

    @contextlib.asynccontextmanager
    async def open_pool(pool=None, *, cache=None, report=None, **kw):
        env.opened.append((pool, cache))
        yield env.pool

    monkeypatch.setattr("itas.benchmarks.load_benchmark", load_benchmark)
    monkeypatch.setattr(pool_session, "open_pool", open_pool)
    return env
