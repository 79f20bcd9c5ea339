import asyncio

from itas.arch.executor import run_component
from itas.arch.state import Candidate, Origin, State
from itas.components.critic import Critic, parse_critiques
from tests.fakes import FakeBenchmark, FakePool


def test_parse_sections():
    text = "[1]\nStrengths: a\nWeaknesses: b\n\n**[2]** Strengths: c\n[3]: fine"
    sections, status = parse_critiques(text, 3)
    assert status == "ok"
    assert sections[0].startswith("Strengths: a") and "Weaknesses: b" in sections[0]
    assert sections[1].startswith("Strengths: c")
    assert sections[2] == "fine"


def test_partial_and_unparsable():
    assert parse_critiques("[2] only two", 3) == ({1: "only two"}, "partial")
    assert parse_critiques("no sections", 3) == ({}, "unparsable")
    assert parse_critiques("whole text", 1) == ({0: "whole text"}, "ok")


def test_critiques_attach_to_candidates_which_pass_unchanged():
    bench, pool = FakeBenchmark(), FakePool()
    cands = tuple(Candidate(f"answer {i}", Origin(0, 0, "generator", "smollm2", i)) for i in range(2))
    state = State(question=bench.questions()[0], candidates=cands)
    out, rec = asyncio.run(run_component(Critic(model="smollm2"), state, pool, bench))
    assert out.candidates == cands
    assert out.critique_of(cands[1]).endswith("none for 2.")
    assert len(rec.calls) == 1
