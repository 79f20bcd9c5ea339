"""End to end on the shared real vLLM test pool: a three-layer, two-model architecture over a few GSM8K
questions. The components of a layer must run concurrently: a layer of 4 calls takes at most 0.6 times the
sum of its calls' durations (one after another it would take all of it)."""

from __future__ import annotations

import asyncio

import pytest

from itas.arch.estimate import estimate
from itas.arch.executor import run_architecture
from itas.arch.spec import parse_architecture

pytestmark = pytest.mark.vllm

# four single-sample generators (four separate requests, two per model), two fusers, one final fuser
ARCH = {
    "name": "e2e-three-layers",
    "layers": [
        [{"type": "generator", "model": "smollm2", "temperature": 0.7, "max_tokens": 48},
         {"type": "generator", "model": "smollm2", "temperature": 0.9, "max_tokens": 48},
         {"type": "generator", "model": "gemma3", "temperature": 0.7, "max_tokens": 48},
         {"type": "generator", "model": "gemma3", "temperature": 0.9, "max_tokens": 48}],
        [{"type": "fuser", "model": "smollm2", "max_tokens": 48},
         {"type": "fuser", "model": "gemma3", "max_tokens": 48}],
        [{"type": "fuser", "model": "smollm2", "temperature": 0.0, "max_tokens": 48}],
    ],
}


def test_three_layers_two_models_run_concurrently(real_pool_file, data_dir, tmp_path):
    from itas.benchmarks import load_benchmark
    from itas.pool.session import open_pool

    arch = parse_architecture(ARCH, "e2e.yaml")
    bench = load_benchmark("gsm8k", data_dir=data_dir)
    questions = bench.subset(3, 0)

    async def go():
        # a fresh cache: every call goes to a server, so durations are real
        async with open_pool(real_pool_file, cache=tmp_path / "calls.sqlite") as pool:
            return await run_architecture(arch, bench, questions, pool)

    result = asyncio.run(go())
    expected = estimate(arch, kind=bench.kind)
    assert expected.exact and expected.calls == 4 + 2 + 1
    for q in result.questions:
        assert not q.failed, q.error
        assert q.n_calls == expected.calls
        assert isinstance(q.output, str) and q.status
        assert all(not c.cached and c.duration > 0 and c.completion_tokens <= 48 for c in q.calls)
        layer0 = q.layer_calls(0)
        assert len(layer0) == 4 and {c.model for c in layer0} == {"smollm2", "gemma3"}
        assert q.layer_wall_times[0] <= 0.6 * sum(c.duration for c in layer0), (q.layer_wall_times, layer0)
        assert q.latency > 0 and q.wall_time >= sum(q.layer_wall_times) * 0.99
    m = result.metrics()
    assert m.n_failed == 0 and m.calls_per_query == 7 and m.latency_p50 > 0 and m.cost_per_query > 0
