"""One contract suite, run over every registered component type (enumerated from the registry)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses

import pytest

from itas.arch.executor import run_component
from itas.arch.state import Candidate, CandidateScore, Critique, Origin, State
from itas.arch.tokens import TRUNCATION_MARK, messages_tokens
from itas.components import component_types
from itas.components.base import EstimateEnv, Flow
from itas.components.registry import component_class
from itas.components.templates import purpose, template_names
from itas.config import Node
from tests.fakes import FakeBenchmark, FakePool, make_pool_config, malformed

TYPES = component_types()
QUOTES_CANDIDATES = {"fuser", "ranker", "critic", "verifier", "best_of_n", "unit_test_evaluator"}


def make(type_name: str, **params):
    cls = component_class(type_name)
    fields = {f.name for f in dataclasses.fields(cls)}
    spec = {"type": type_name, **({"model": "smollm2"} if "model" in fields else {}), **params}
    return cls.parse(Node(spec, "test.yaml", "layers[0][0]"))


def input_state(bench: FakeBenchmark, texts=None, *, tests=("the answer is a number", "it uses ####")) -> State:
    q = bench.questions()[1]  # "What is 1 + 2?" -> 3
    texts = texts or ["smollm2: 1 + 2 = 3. #### 3", "gemma3: it is 4. #### 4", "smollm2 again: #### 3"]
    cands = tuple(Candidate(t, Origin(0, i % 2, "generator", "smollm2" if i % 2 == 0 else "gemma3", i))
                  for i, t in enumerate(texts))
    return State(question=q, candidates=cands, critiques=(Critique(cands[0].id, "solid"),),
                 unit_tests=tuple(tests), scores=(CandidateScore(cands[1].id, 0.5, "vote"),))


def flow_of(state: State, token_bound: int = 512) -> Flow:
    return Flow(candidates=tuple((c.id, token_bound) for c in state.candidates),
                critique_tokens=100 if state.critiques else 0, unit_tests=len(state.unit_tests),
                unit_test_tokens=50 if state.unit_tests else 0)


def run(component, state, pool, bench, **kw):
    return asyncio.run(run_component(component, state, pool, bench, layer=1, index=0, **kw))


@pytest.fixture(params=TYPES)
def type_name(request) -> str:
    return request.param


def test_registry_has_the_design_table():
    assert {"generator", "fuser", "ranker", "critic", "verifier", "unit_test_generator", "unit_test_evaluator",
            "vote", "best_of_n"} <= set(TYPES)
    # the calls table of DESIGN.md, for c incoming candidates and k samples
    c = 5
    assert make("generator", samples=4).calls(c) == 4
    assert make("fuser").calls(c) == 1
    assert make("ranker").calls(c) == 1
    assert make("critic").calls(c) == 1
    assert make("verifier").calls(c) == 2 * c
    assert make("unit_test_generator").calls(c) == 1
    assert make("unit_test_evaluator").calls(c) == c
    assert make("unit_test_evaluator").calls(c, kind="code") == 0
    assert make("vote").calls(c) == 0
    assert make("best_of_n").calls(c) == c


def test_output_shape_and_calls_match_the_declared_count(type_name):
    bench, pool = FakeBenchmark(), FakePool()
    comp = make(type_name)
    state = input_state(bench)
    out, rec = run(comp, state, pool, bench)
    assert isinstance(out, State)
    assert out.question is state.question
    assert out.candidates, "a component never leaves a question without candidates"
    ids = [c.id for c in out.candidates]
    assert len(ids) == len(set(ids))
    assert all(isinstance(c, Candidate) and isinstance(c.text, str) for c in out.candidates)
    assert {c.candidate_id for c in out.critiques} <= set(ids)
    assert {s.candidate_id for s in out.scores} <= set(ids)
    if comp.selects:
        assert set(ids) <= {c.id for c in state.candidates}
    step = comp.step(flow_of(state), EstimateEnv(kind=bench.kind, layer=1))
    assert len(rec.calls) == step.calls == comp.calls(3), "calls made must equal the calls it declares"
    assert all(c.layer == 1 and c.component == 0 and c.type == type_name for c in rec.calls)
    assert sum(rec.fallbacks.values()) == 0, f"well-formed output took fallbacks: {dict(rec.fallbacks)}"
    if not step.out.exact:
        assert len(out.candidates) <= step.out.c
    else:
        assert len(out.candidates) == step.out.c


def test_input_is_not_mutated(type_name):
    bench, pool = FakeBenchmark(), FakePool()
    state = input_state(bench)
    before = copy.deepcopy(state)
    run(make(type_name), state, pool, bench)
    assert state == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.candidates = ()  # type: ignore[misc]


def test_malformed_output_is_handled_and_counted(type_name):
    bench, pool = FakeBenchmark(), FakePool(malformed)
    comp = make(type_name)
    state = input_state(bench, texts=["no answer here", "nor here", "I do not know"])
    out, rec = run(comp, state, pool, bench)
    assert out.candidates
    assert set(rec.fallbacks) <= set(comp.fallbacks), "fallback counters must be the documented ones"
    if comp.fallbacks:
        assert sum(rec.fallbacks.values()) > 0, f"{type_name} parses model output; malformed must be counted"


def test_prompts_fit_the_context_and_truncation_is_counted(type_name):
    bench = FakeBenchmark()
    pool = FakePool(config=make_pool_config(context_length=700))
    comp = make(type_name, **({"max_tokens": 100} if "max_tokens" in {f.name for f in dataclasses.fields(
        component_class(type_name))} else {}))
    long = "word " * 1000 + "#### 3"
    state = input_state(bench, texts=[long, "short #### 3", long])
    out, rec = run(comp, state, pool, bench)
    for req in pool.requests:
        assert messages_tokens(req["messages"]) + req["params"].max_tokens <= 700
    marked = any(TRUNCATION_MARK in str(m["content"]) for req in pool.requests for m in req["messages"])
    assert marked == (rec.truncations > 0)
    if type_name in QUOTES_CANDIDATES:
        assert rec.truncations > 0
    assert all(len(c.text) >= len(long) for c in out.candidates if c.text.startswith("word")), \
        "truncation applies to prompts only, never to the candidates passed on"


@pytest.mark.parametrize("type_name", sorted(QUOTES_CANDIDATES))
def test_a_prompt_the_server_refuses_as_too_long_is_cut_again_until_accepted(type_name):
    # the server's tokenizer spends more tokens than the rule assumes: it refuses prompts over 1,500 characters,
    # where the rule would allow about 3 x (700 - 100) characters of prompt
    bench = FakeBenchmark()
    pool = FakePool(config=make_pool_config(context_length=700), refuse_chars=1500)
    comp = make(type_name, max_tokens=100)
    long = "word " * 1000 + "#### 3"
    out, rec = run(comp, input_state(bench, texts=[long, "short #### 3", long]), pool, bench)
    assert pool.refused > 0 and out.candidates
    accepted = [r for r in pool.requests if sum(len(str(m["content"])) for m in r["messages"]) <= 1500]
    assert accepted, "the prompt was cut again until the server took it"
    assert rec.truncations > 0
    assert all(len(c.text) >= len(long) for c in out.candidates if c.text.startswith("word"))


def test_a_refusal_for_another_reason_is_not_retried():
    import json

    from itas.errors import CallError

    bench = FakeBenchmark()
    pool = FakePool(fail_on=lambda model, messages: "Response" in json.dumps(messages))
    comp = make("fuser")
    with pytest.raises(CallError):
        run(comp, input_state(bench), pool, bench)
    assert len(pool.requests) == 1


def test_parameters_are_validated_with_key_paths(type_name):
    from itas.errors import ConfigError

    cls = component_class(type_name)
    with pytest.raises(ConfigError) as err:
        cls.parse(Node({"type": type_name, "modle": "x"}, "a.yaml", "layers[2][1]"))
    assert "a.yaml" in str(err.value) and "layers[2][1]" in str(err.value)


def test_round_trips_through_its_dict(type_name):
    comp = make(type_name)
    again = component_class(type_name).parse(Node(comp.to_dict(), "x", "p"))
    assert again == comp


def test_every_prompt_template_says_what_it_asks():
    names = template_names()
    assert len(names) >= 10
    for name in names:
        assert purpose(name).startswith("Asks") or purpose(name).startswith("Quotes")
