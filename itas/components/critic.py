"""``critic``: strengths and weaknesses of every candidate, in one prompt; candidates pass on unchanged.

Parsing: the answer is cut into sections at lines that start with a candidate's identifier ``[i]``; section i
is candidate i's critique. Fallbacks, counted: no identifier found -> no critiques (``critic.unparsable``),
except with a single candidate, whose critique is then the whole answer; some candidates without a section
-> those have no critique (``critic.partial``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from itas.arch.state import Critique
from itas.components.base import (
    ARCHON_IGNORED,
    Component,
    EstimateEnv,
    Flow,
    Step,
    numbered,
    param,
    prompt_overhead,
    quoted_prompt,
)
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams

_MARKER = re.compile(r"^[ \t>*#_-]*\[\s*(\d+)\s*\][*_]*", re.MULTILINE)


def parse_critiques(text: str, n: int) -> tuple[dict[int, str], str]:
    """({0-based candidate: critique}, status: 'ok' | 'partial' | 'unparsable')."""
    marks = [(m.start(), m.end(), int(m.group(1)) - 1) for m in _MARKER.finditer(text)]
    marks = [m for m in marks if 0 <= m[2] < n]
    sections: dict[int, str] = {}
    for k, (_, end, idx) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(text)
        body = text[end:stop].strip(" \t:\n")
        if body and idx not in sections:
            sections[idx] = body
    if not sections:
        if n == 1 and text.strip():
            return {0: text.strip()}, "ok"
        return {}, "unparsable"
    return sections, "ok" if len(sections) == n else "partial"


@register
@dataclass(frozen=True)
class Critic(Component):
    type = "critic"
    summary = "writes strengths and weaknesses of every candidate in one prompt (1 call)"
    fallbacks = ("critic.unparsable", "critic.partial")
    archon_ignored = ARCHON_IGNORED | {"samples"}

    model: str = param(help="a model of the pool")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)

    async def run(self, state, ctx):
        cands = state.candidates

        def build(texts: list[str]) -> list[dict]:
            prompt = render("critic", question=ctx.query, candidates=numbered(texts), n=len(texts))
            return ctx.history() + [{"role": "user", "content": prompt}]

        messages = quoted_prompt(ctx, self.model, self.max_tokens, [c.text for c in cands], build)
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        out = (await ctx.generate(self.model, messages, params))[0].text
        sections, status = parse_critiques(out, len(cands))
        if status != "ok":
            ctx.fallback(f"critic.{status}")
        return state.with_critiques(Critique(cands[i].id, text) for i, text in sorted(sections.items()))

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        prompt = env.prompt_tokens + prompt_overhead("critic") + flow.candidate_tokens + 8 * flow.c
        return Step(out=replace(flow, critique_tokens=self.max_tokens),
                    usage=(env.usage(self.model, 1, prompt, self.max_tokens),))
