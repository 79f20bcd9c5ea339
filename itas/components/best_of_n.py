"""``best_of_n``: rewards every candidate and keeps the best one (``mode: worst`` keeps the worst:
Worst-of-N, for red-teaming). c calls.

The reward is either a judge model of the pool asked for a score from 1 to 10 (``reward: judge``), or a
reward model served behind vLLM's pooling API (``reward: reward_model``; the model must be such a server in
the pool). Ties go to the earliest candidate. Parsing a judge: the number after the last "Score" (``Score: 7``,
``score = 7.5``), else an answer that is only a number. Fallbacks, counted: a judgement without a score ->
that candidate is ranked after every scored one, in either mode (``best_of_n.unparsable``); no candidate scored
-> the first candidate is kept (``best_of_n.no_score``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from itas.arch.aio import gather_or_cancel
from itas.arch.state import CandidateScore
from itas.arch.tokens import MESSAGE_OVERHEAD_TOKENS
from itas.components.base import Component, EstimateEnv, Flow, Step, param, prompt_overhead, quoted_prompt
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams

_SCORE = re.compile(r"score\s*(?:is|of|:|=)?\s*[*_]*\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_ONLY_NUMBER = re.compile(r"^\s*[*_]*(-?\d+(?:\.\d+)?)[*_.]*\s*$")


def parse_score(text: str) -> float | None:
    found = _SCORE.findall(text)
    if found:
        return float(found[-1])
    only = _ONLY_NUMBER.match(text)
    return float(only.group(1)) if only else None


@register
@dataclass(frozen=True)
class BestOfN(Component):
    type = "best_of_n"
    summary = "rewards each candidate (judge or reward model) and keeps the best, or the worst (c calls)"
    selects = True
    fallbacks = ("best_of_n.unparsable", "best_of_n.no_score")

    model: str = param(help="the judge model, or the reward model (reward: reward_model)")
    reward: str = param("judge", choices=("judge", "reward_model"))
    mode: str = param("best", choices=("best", "worst"))
    temperature: float = param(0.0, min=0.0, max=5.0, help="of the judge")
    max_tokens: int = param(256, min=1, help="of the judge")

    async def run(self, state, ctx):
        cands = state.candidates
        values = await gather_or_cancel(self._score(ctx, i, c.text) for i, c in enumerate(cands))
        missing = sum(v is None for v in values)
        if missing and self.reward == "judge":
            ctx.fallback("best_of_n.unparsable", missing)
        scored = [(v, i) for i, v in enumerate(values) if v is not None]
        if not scored:
            ctx.fallback("best_of_n.no_score")
            chosen = 0
        elif self.mode == "best":
            chosen = min(scored, key=lambda t: (-t[0], t[1]))[1]
        else:
            chosen = min(scored, key=lambda t: (t[0], t[1]))[1]
        scores = [CandidateScore(c.id, v, self.type) for c, v in zip(cands, values, strict=True) if v is not None]
        return state.with_scores(scores).with_candidates([cands[chosen]])

    async def _score(self, ctx, i: int, text: str) -> float | None:
        if self.reward == "reward_model":
            return await ctx.reward(self.model, ctx.generator_messages(), text, chain=i)

        def build(texts: list[str]) -> list[dict]:
            prompt = render("judge", question=ctx.query, candidate=texts[0])
            return ctx.history() + [{"role": "user", "content": prompt}]

        messages = quoted_prompt(ctx, self.model, self.max_tokens, [text], build)
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        out = (await ctx.generate(self.model, messages, params, chain=i))[0].text
        return parse_score(out)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        per = flow.candidate_tokens // max(1, flow.c)
        if self.reward == "reward_model":
            usage = env.usage(self.model, flow.c, env.prompt_tokens + per + MESSAGE_OVERHEAD_TOKENS, 0)
        else:
            usage = env.usage(self.model, flow.c, env.prompt_tokens + prompt_overhead("judge") + per,
                              self.max_tokens)
        # exactly one candidate goes on
        out = Flow(candidates=flow.largest(1), exact=True, critique_tokens=flow.critique_tokens,
                   unit_tests=flow.unit_tests, unit_test_tokens=flow.unit_test_tokens)
        return Step(out=out, usage=(usage,), calls_exact=flow.exact)
