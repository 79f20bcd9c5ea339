"""The state that flows between the layers of an architecture: an immutable value.

A component takes a ``State`` and returns a new one; it never changes its input (every field is a frozen
dataclass or a tuple). Critiques and scores refer to candidates by ``Candidate.id``, so they follow their
candidate through reordering and disappear with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Where a candidate came from: layer and position of the component, its type, model and sample index."""

    layer: int
    component: int
    type: str
    model: str | None
    sample: int

    def to_dict(self) -> dict:
        return {"layer": self.layer, "component": self.component, "type": self.type, "model": self.model,
                "sample": self.sample}


@dataclass(frozen=True)
class Candidate:
    text: str
    origin: Origin

    @property
    def id(self) -> str:
        """Unique within one query: no two components share (layer, position), no sample index repeats."""
        o = self.origin
        return f"L{o.layer}.C{o.component}.S{o.sample}"

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "origin": self.origin.to_dict()}


@dataclass(frozen=True)
class Critique:
    candidate_id: str
    text: str


@dataclass(frozen=True)
class CandidateScore:
    candidate_id: str
    value: float
    source: str  # the component type that gave it ("best_of_n", "unit_test_evaluator", "vote", "verifier")


@dataclass(frozen=True)
class State:
    question: Any  # the benchmark's Question (id, text, reference, meta); never changed
    candidates: tuple[Candidate, ...] = ()
    critiques: tuple[Critique, ...] = ()
    unit_tests: tuple[str, ...] = ()
    scores: tuple[CandidateScore, ...] = field(default=())

    # ---- reading -------------------------------------------------------------------------------------
    def critique_of(self, candidate: Candidate) -> str | None:
        for c in self.critiques:
            if c.candidate_id == candidate.id:
                return c.text
        return None

    def score_of(self, candidate: Candidate, source: str | None = None) -> float | None:
        for s in self.scores:
            if s.candidate_id == candidate.id and (source is None or s.source == source):
                return s.value
        return None

    # ---- new states --------------------------------------------------------------------------------
    def with_candidates(self, candidates: Iterable[Candidate]) -> State:
        """The same state with these candidates; critiques and scores of candidates no longer present go."""
        candidates = tuple(candidates)
        ids = {c.id for c in candidates}
        return replace(self, candidates=candidates,
                       critiques=tuple(c for c in self.critiques if c.candidate_id in ids),
                       scores=tuple(s for s in self.scores if s.candidate_id in ids))

    def adding_candidates(self, new: Iterable[Candidate]) -> State:
        return replace(self, candidates=self.candidates + tuple(new))

    def with_critiques(self, critiques: Iterable[Critique]) -> State:
        """Replaces the critiques of the candidates named in ``critiques``; keeps the others."""
        critiques = tuple(critiques)
        named = {c.candidate_id for c in critiques}
        return replace(self, critiques=tuple(c for c in self.critiques if c.candidate_id not in named) + critiques)

    def with_scores(self, scores: Iterable[CandidateScore]) -> State:
        scores = tuple(scores)
        named = {(s.candidate_id, s.source) for s in scores}
        kept = tuple(s for s in self.scores if (s.candidate_id, s.source) not in named)
        return replace(self, scores=kept + scores)

    def with_unit_tests(self, tests: Iterable[str]) -> State:
        return replace(self, unit_tests=_unique(self.unit_tests + tuple(tests)))

    def to_dict(self) -> dict:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "critiques": {c.candidate_id: c.text for c in self.critiques},
            "unit_tests": list(self.unit_tests),
            "scores": [{"candidate": s.candidate_id, "value": s.value, "source": s.source} for s in self.scores],
        }


def merge_states(before: State, outputs: Sequence[State]) -> State:
    """The state after a layer: its components' outputs merged in spec order.

    Candidates are concatenated, each candidate (by id) kept at its first appearance, so two generators that
    both pass the incoming candidates through give the incoming candidates once, then each one's new samples.
    Critiques and scores are united (first output wins for the same candidate) and kept only for candidates
    still present; unit tests are concatenated without repeats.
    """
    if not outputs:
        return before
    if len(outputs) == 1:
        return outputs[0]
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for out in outputs:
        for c in out.candidates:
            if c.id not in seen:
                seen.add(c.id)
                candidates.append(c)
    critiques: dict[str, Critique] = {}
    scores: dict[tuple[str, str], CandidateScore] = {}
    tests: tuple[str, ...] = ()
    for out in outputs:
        for cr in out.critiques:
            if cr.candidate_id in seen:
                critiques.setdefault(cr.candidate_id, cr)
        for s in out.scores:
            if s.candidate_id in seen:
                scores.setdefault((s.candidate_id, s.source), s)
        tests = tests + out.unit_tests
    return State(question=before.question, candidates=tuple(candidates), critiques=tuple(critiques.values()),
                 unit_tests=_unique(tests), scores=tuple(scores.values()))


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
