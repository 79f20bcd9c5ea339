"""``verifier``: for every candidate, a reasoning about its correctness, then a verdict (2 calls, one after
the other; candidates in parallel). Keeps the candidates judged ``[Correct]``, in incoming order (the first
``first_k`` of them, if given).

Parsing: the last ``[Correct]`` or ``[Incorrect]`` in the verdict (case-insensitive); without brackets, the
last word "correct" or "incorrect". Fallbacks, counted: no verdict -> the candidate counts as not verified
(``verifier.no_verdict``); no candidate verified -> all candidates go on, unchanged (``verifier.none_correct``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from itas.arch.aio import gather_or_cancel
from itas.arch.state import CandidateScore
from itas.components.base import (
    ARCHON_IGNORED,
    Component,
    EstimateEnv,
    Flow,
    ModelUsage,
    Step,
    param,
    prompt_overhead,
    quoted_prompt,
)
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams

_BRACKETED = re.compile(r"\[\s*(in)?correct\s*\]", re.IGNORECASE)
_BARE = re.compile(r"\b(in)?correct\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    found = _BRACKETED.findall(text) or _BARE.findall(text)
    if not found:
        return None
    return not found[-1]  # group 1 is "in" for an incorrect verdict


@register
@dataclass(frozen=True)
class Verifier(Component):
    type = "verifier"
    summary = "reasons about each candidate, then gives a verdict; keeps the correct ones (2c calls)"
    selects = True
    fallbacks = ("verifier.no_verdict", "verifier.none_correct")
    archon_ignored = ARCHON_IGNORED | {"samples", "batch_num"}

    model: str = param(help="a model of the pool")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(256, min=1, help="for the reasoning and for the verdict")
    first_k: int | None = param(None, min=1, help="keep at most the first k verified candidates")

    async def run(self, state, ctx):
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)

        async def check(i: int, text: str) -> bool | None:
            def reasoning_prompt(texts: list[str]) -> list[dict]:
                prompt = render("verifier_reasoning", question=ctx.query, candidate=texts[0])
                return ctx.history() + [{"role": "user", "content": prompt}]

            messages = quoted_prompt(ctx, self.model, self.max_tokens, [text], reasoning_prompt)
            reasoning = (await ctx.generate(self.model, messages, params, chain=i))[0].text

            def verdict_prompt(texts: list[str]) -> list[dict]:
                prompt = render("verifier_verdict", question=ctx.query, candidate=texts[0], reasoning=reasoning)
                return ctx.history() + [{"role": "user", "content": prompt}]

            messages = quoted_prompt(ctx, self.model, self.max_tokens, [text], verdict_prompt)
            verdict = (await ctx.generate(self.model, messages, params, chain=i))[0].text
            return parse_verdict(verdict)

        cands = state.candidates
        verdicts = await gather_or_cancel(check(i, c.text) for i, c in enumerate(cands))
        missing = sum(v is None for v in verdicts)
        if missing:
            ctx.fallback("verifier.no_verdict", missing)
        scores = [CandidateScore(c.id, 1.0 if v else 0.0, self.type) for c, v in zip(cands, verdicts, strict=True)
                  if v is not None]
        keep = [c for c, v in zip(cands, verdicts, strict=True) if v]
        if self.first_k is not None:
            keep = keep[: self.first_k]
        if not keep:
            ctx.fallback("verifier.none_correct")
            keep = list(cands)
        return state.with_scores(scores).with_candidates(keep)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        base = env.prompt_tokens + flow.candidate_tokens // max(1, flow.c)
        reasoning = env.usage(self.model, flow.c, base + prompt_overhead("verifier_reasoning"), self.max_tokens)
        verdict = env.usage(self.model, flow.c, base + prompt_overhead("verifier_verdict") + self.max_tokens,
                            self.max_tokens)
        usage = ModelUsage(self.model, reasoning.calls + verdict.calls,
                           reasoning.prompt_tokens + verdict.prompt_tokens,
                           reasoning.completion_tokens + verdict.completion_tokens)
        keep = flow.c if self.first_k is None else min(self.first_k, flow.c)
        # how many are verified is unknown: an upper bound unless at most one candidate comes in
        out = replace(flow, candidates=flow.largest(keep), exact=flow.exact and flow.c <= 1)
        return Step(out=out, usage=(usage,), calls_exact=flow.exact)
