"""The per-query estimate against the calls actually made, for every shipped example architecture."""

import asyncio

import pytest

from itas.arch.estimate import context_lengths_of, estimate, question_prompt_tokens
from itas.arch.executor import run_architecture
from itas.arch.spec import load_architecture, parse_architecture, shipped_architectures
from tests.fakes import FakeBenchmark, FakePool, make_pool_config, prompt_kind, well_formed

SHIPPED = sorted(shipped_architectures())


def run(arch, bench, pool):
    return asyncio.run(run_architecture(arch, bench, bench.questions(), pool))


@pytest.mark.parametrize("kind", ["math", "code"])
@pytest.mark.parametrize("name", SHIPPED)
def test_estimate_equals_calls_when_exact_and_bounds_them_otherwise(name, kind):
    arch = load_architecture(name)
    bench, pool = FakeBenchmark(n=4, kind=kind), FakePool()
    est = estimate(arch, kind=kind, prompt_tokens=question_prompt_tokens(bench, bench.questions()),
                   context_lengths=context_lengths_of(pool.config))
    result = run(arch, bench, pool)
    for q in result.questions:
        assert not q.failed and not q.fallbacks
        if est.exact:
            assert q.n_calls == est.calls, (name, q.id)
        else:
            assert q.n_calls <= est.calls, (name, q.id)
        for li, layer in enumerate(est.layers):
            assert len(q.layer_calls(li)) <= layer.calls
        assert q.prompt_tokens + q.completion_tokens <= est.tokens
    if name in ("single", "vote5", "archon-rank-critic-fuse", "moa", "code-unit-tests"):
        assert est.exact, f"{name} drops no candidate that later calls depend on"


def test_known_counts():
    def calls(name, kind="math"):
        e = estimate(load_architecture(name), kind=kind)
        return e.calls, e.exact

    assert calls("single") == (1, True)
    assert calls("vote5") == (5, True)
    assert calls("archon-rank-critic-fuse") == (6 + 1 + 1 + 1, True)
    assert calls("moa") == (3 + 2 + 1, True)
    assert calls("code-unit-tests", "code") == (4 + 1, True)  # tests executed: no calls
    assert calls("code-unit-tests", "math") == (4 + 1 + 4, True)  # tests judged: one call per candidate
    assert calls("vote-then-judge") == (6 + 6, False)


def test_the_bound_is_strict_when_a_vote_drops_candidates():
    def script(model, messages, params, index):  # answers 0, 1, 0, 1, ... : the vote keeps half
        if prompt_kind(messages) == "generator":
            return f"#### {index % 2}"
        return well_formed(model, messages, params, index)

    arch = load_architecture("vote-then-judge")
    bench = FakeBenchmark(n=2)
    result = run(arch, bench, FakePool(script))
    assert [q.n_calls for q in result.questions] == [6 + 3, 6 + 3]
    assert estimate(arch).calls == 12


def test_exactness_rules():
    def arch(layers):
        return parse_architecture({"layers": layers}, "t.yaml")

    gen = [{"type": "generator", "model": "a", "samples": 4}]
    # a verifier drops an unknown number; a fuser after it still makes exactly one call
    assert estimate(arch([gen, [{"type": "verifier", "model": "a"}], [{"type": "fuser", "model": "a"}]])).exact
    # ... but a best_of_n after it makes one call per surviving candidate
    e = estimate(arch([gen, [{"type": "verifier", "model": "a"}], [{"type": "best_of_n", "model": "a"}]]))
    assert not e.exact and e.calls == 4 + 8 + 4
    # a ranker keeps exactly min(top_k, c)
    e = estimate(arch([gen, [{"type": "ranker", "model": "a", "top_k": 2}], [{"type": "verifier", "model": "a"}]]))
    assert e.exact and e.calls == 4 + 1 + 4


def test_tokens_are_capped_by_the_context_window():
    arch = parse_architecture({"layers": [[{"type": "generator", "model": "smollm2", "samples": 8,
                                            "max_tokens": 512}],
                                          [{"type": "fuser", "model": "smollm2", "max_tokens": 256}]]}, "t.yaml")
    free = estimate(arch)
    capped = estimate(arch, context_lengths=context_lengths_of(make_pool_config(context_length=2048)))
    assert free.layers[1].prompt_tokens > 8 * 512
    assert capped.layers[1].prompt_tokens == 2048 - 256
    assert capped.by_model[0].model == "smollm2" and capped.tokens < free.tokens
    assert capped.cost(make_pool_config()) == capped.tokens  # unpriced pool: cost is tokens
