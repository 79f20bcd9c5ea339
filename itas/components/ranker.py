"""``ranker``: one model ranks all candidates in one prompt (listwise); the ``top_k`` best go on.

Parsing: the bracketed identifiers ``[i]`` in the order they first appear (or, without brackets, a chain like
``2 > 1 > 3``). Fallbacks, counted: no identifier at all -> the incoming order (``ranker.unparsable``);
some candidates not ranked -> they follow the ranked ones in incoming order (``ranker.partial``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

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

_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_CHAIN = re.compile(r"\d+(?:\s*>\s*\d+)+")


def parse_ranking(text: str, n: int) -> tuple[list[int], str]:
    """(0-based order of all n candidates, status: 'ok' | 'partial' | 'unparsable')."""
    found = [int(m) for m in _BRACKETED.findall(text)]
    if not found:
        chain = _CHAIN.search(text)
        found = [int(x) for x in re.findall(r"\d+", chain.group(0))] if chain else []
    order = list(dict.fromkeys(i - 1 for i in found if 1 <= i <= n))
    if not order:
        return list(range(n)), "unparsable"
    if len(order) < n:
        return order + [i for i in range(n) if i not in order], "partial"
    return order, "ok"


@register
@dataclass(frozen=True)
class Ranker(Component):
    type = "ranker"
    summary = "ranks all candidates in one prompt and keeps the top_k (1 call)"
    selects = True
    fallbacks = ("ranker.unparsable", "ranker.partial")
    archon_ignored = ARCHON_IGNORED | {"ranker_batch_size", "samples"}

    model: str = param(help="a model of the pool")
    top_k: int = param(3, min=1, help="candidates kept")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(256, min=1)
    use_critiques: bool = param(False, help="show the candidates' critiques to the ranker")

    async def run(self, state, ctx):
        cands = state.candidates
        critiques = critiques_block(state, cands) if self.use_critiques else ""

        def build(texts: list[str]) -> list[dict]:
            prompt = render("ranker", question=ctx.query, candidates=numbered(texts), critiques=critiques,
                            n=len(texts))
            return ctx.history() + [{"role": "user", "content": prompt}]

        messages = quoted_prompt(ctx, self.model, self.max_tokens, [c.text for c in cands], build)
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        out = (await ctx.generate(self.model, messages, params))[0].text
        order, status = parse_ranking(out, len(cands))
        if status != "ok":
            ctx.fallback(f"ranker.{status}")
        return state.with_candidates([cands[i] for i in order][: self.top_k])

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        prompt = env.prompt_tokens + prompt_overhead("ranker") + flow.candidate_tokens + 8 * flow.c
        if self.use_critiques:
            prompt += flow.critique_tokens
        kept = flow.largest(self.top_k)
        # the count kept is min(top_k, c): exact whenever c is
        out = replace(flow, candidates=kept, critique_tokens=flow.critique_tokens if kept else 0)
        return Step(out=out, usage=(env.usage(self.model, 1, prompt, self.max_tokens),))
