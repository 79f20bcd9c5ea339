"""``unit_test_generator``: one model writes unit tests for the question (1 call); candidates pass on.

For code benchmarks the tests are Python ``assert`` statements (executed later by ``unit_test_evaluator``);
otherwise short checkable statements, which a model judges. Parsing: for code, the lines that are assert
statements; otherwise the lines that start with "- ", "* ", "1." or "1)" (or, if none does, every non-empty
line); at most ``n_tests``. Fallback, counted: no test found -> no unit tests (``unit_test_generator.no_tests``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from itas.components.base import ARCHON_IGNORED, Component, EstimateEnv, Flow, Step, param, prompt_overhead
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)]|unit test\s*#?\d+\s*:)\s*", re.IGNORECASE)


def parse_tests(text: str, code: bool) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("```")]
    if code:
        tests = []
        for ln in lines:
            ln = _BULLET.sub("", ln).strip().strip("`").strip()
            if ln.startswith("assert ") or ln.startswith("assert("):
                tests.append(ln)
        return list(dict.fromkeys(tests))
    bulleted = [_BULLET.sub("", ln).strip() for ln in lines if _BULLET.match(ln)]
    tests = bulleted if any(bulleted) else [ln.strip() for ln in lines]
    return list(dict.fromkeys(t for t in tests if t))


@register
@dataclass(frozen=True)
class UnitTestGenerator(Component):
    type = "unit_test_generator"
    summary = "writes unit tests for the question (1 call)"
    needs_candidates = False
    fallbacks = ("unit_test_generator.no_tests",)
    archon_ignored = ARCHON_IGNORED | {"samples"}
    archon_renamed = {"unit_test_cap": "n_tests"}

    model: str = param(help="a model of the pool")
    n_tests: int = param(5, min=1, max=100, help="tests to write (at most)")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)

    def _template(self, kind: str) -> str:
        return "unit_test_generator_code" if kind == "code" else "unit_test_generator"

    async def run(self, state, ctx):
        prompt = render(self._template(ctx.kind), question=ctx.query, n=self.n_tests)
        messages = ctx.history() + [{"role": "user", "content": prompt}]
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        out = (await ctx.generate(self.model, messages, params))[0].text
        tests = parse_tests(out, ctx.kind == "code")[: self.n_tests]
        if not tests:
            ctx.fallback("unit_test_generator.no_tests")
        return state.with_unit_tests(tests)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        prompt = env.prompt_tokens + prompt_overhead(self._template(env.kind))
        out = replace(flow, unit_tests=flow.unit_tests + self.n_tests,
                      unit_test_tokens=flow.unit_test_tokens + self.max_tokens)
        return Step(out=out, usage=(env.usage(self.model, 1, prompt, self.max_tokens),))
