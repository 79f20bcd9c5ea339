"""``fuser``: synthesises all candidates (and their critiques, when present) into one answer.

Its output replaces the incoming candidates; n fusers in one layer give n fused candidates. ``samples`` > 1
(Archon's fuser has it) gives that many fused answers from one prompt, one call each.
"""

from __future__ import annotations

from dataclasses import dataclass

from itas.arch.state import Candidate
from itas.components.base import (
    ARCHON_IGNORED,
    Component,
    EstimateEnv,
    Flow,
    Step,
    critiques_block,
    numbered,
    param,
    prompt_overhead,
    quoted_prompt,
)
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams


@register
@dataclass(frozen=True)
class Fuser(Component):
    type = "fuser"
    summary = "synthesises the candidates (and critiques) into one answer (1 call)"
    archon_ignored = ARCHON_IGNORED | {"top_k", "top_k_generations", "fuse_generations_count", "ranker_config",
                                       "length_control"}

    model: str = param(help="a model of the pool")
    samples: int = param(1, min=1, max=64, help="fused answers to sample from the one prompt (calls)")
    temperature: float = param(0.7, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)

    def sample_width(self) -> int:
        return self.samples

    async def run(self, state, ctx):
        cands = state.candidates
        critiques = critiques_block(state, cands)

        def build(texts: list[str]) -> list[dict]:
            prompt = render("fuser", question=ctx.query, candidates=numbered(texts), critiques=critiques)
            return ctx.history() + [{"role": "user", "content": prompt}]

        messages = quoted_prompt(ctx, self.model, self.max_tokens, [c.text for c in cands], build)
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        completions = await ctx.generate(self.model, messages, params, k=self.samples)
        return state.with_candidates(Candidate(c.text, ctx.origin(self.model, c.sample_index)) for c in completions)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        prompt = (env.prompt_tokens + prompt_overhead("fuser") + flow.candidate_tokens + flow.critique_tokens
                  + 8 * flow.c)
        new = tuple((i, self.max_tokens) for i in env.new_ids(self.samples))
        out = Flow(candidates=new, exact=True, unit_tests=flow.unit_tests, unit_test_tokens=flow.unit_test_tokens)
        return Step(out=out, usage=(env.usage(self.model, self.samples, prompt, self.max_tokens),))
