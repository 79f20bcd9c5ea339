"""``vote``: self-consistency. Extracts every candidate's final answer with the benchmark's extractor and keeps
the candidates of the majority answer, in incoming order (0 calls).

Ties go to the answer that appears first. Candidates with no extractable answer do not vote (and are dropped
unless no candidate has an answer). Fallback, counted: no candidate has an answer -> all go on unchanged
(``vote.no_answer``). Each voting candidate's score is its answer's share of the votes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from itas.arch.state import CandidateScore
from itas.components.base import Component, EstimateEnv, Flow, Step
from itas.components.registry import register


def majority(answers: list[str | None]) -> str | None:
    """The most frequent answer (ties: the one that appears first); None if no answer."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    return next(a for a in answers if a is not None and votes[a] == top)


@register
@dataclass(frozen=True)
class Vote(Component):
    type = "vote"
    summary = "keeps the candidates of the majority final answer (0 calls)"
    selects = True
    fallbacks = ("vote.no_answer",)

    async def run(self, state, ctx):
        cands = state.candidates
        answers = [ctx.extract(c.text) for c in cands]
        winner = majority(answers)
        if winner is None:
            ctx.fallback("vote.no_answer")
            return state
        votes = Counter(a for a in answers if a is not None)
        total = sum(votes.values())
        scores = [CandidateScore(c.id, votes[a] / total, self.type)
                  for c, a in zip(cands, answers, strict=True) if a is not None]
        return state.with_scores(scores).with_candidates(c for c, a in zip(cands, answers, strict=True)
                                                         if a == winner)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        # how many share the majority answer is unknown: an upper bound unless at most one comes in
        return Step(out=replace(flow, exact=flow.exact and flow.c <= 1))
