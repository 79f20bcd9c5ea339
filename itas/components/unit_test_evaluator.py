"""``unit_test_evaluator``: orders the candidates by the unit tests (from an earlier layer) they pass.

``evaluate: auto`` (the default) executes the tests in the benchmark's sandbox on code benchmarks (0 calls;
``bench.run_tests`` extracts the program from the candidate's text) and has ``model`` judge them otherwise, one call per
candidate with all tests in one prompt. The order is stable (ties keep the incoming order); ``top_k`` keeps
the best k. With ``first_k`` (Archon's), when at least ``first_k`` candidates pass every test, the first
``first_k`` of them (incoming order) go on instead.

Parsing a judgement: per test, the text after the last "Unit Test #i" up to the next test's; ``[Passed]`` or
the word "passed" passes, ``[Failed]``/"failed" fails. Fallbacks, counted: a test with no verdict counts as
failed (``unit_test_evaluator.unparsable``, once per candidate); no unit tests in the state -> the incoming
order (``unit_test_evaluator.no_tests``).
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
    Step,
    param,
    prompt_overhead,
    quoted_prompt,
)
from itas.components.registry import register
from itas.components.templates import render
from itas.errors import ConfigError
from itas.pool.types import SamplingParams

_PASS = re.compile(r"\[\s*passed\s*\]|\bpass(?:ed|es)?\b", re.IGNORECASE)
_FAIL = re.compile(r"\[\s*failed\s*\]|\bfail(?:ed|s)?\b", re.IGNORECASE)


def parse_test_verdicts(text: str, n: int) -> list[bool | None]:
    """Per test: True (passed), False (failed), None (no verdict found)."""
    out: list[bool | None] = []
    for i in range(1, n + 1):
        heads = list(re.finditer(rf"unit test\s*#?\s*{i}\b", text, re.IGNORECASE))
        if not heads:
            out.append(None)
            continue
        start = heads[-1].end()
        nxt = re.search(rf"unit test\s*#?\s*{i + 1}\b", text[start:], re.IGNORECASE)
        segment = text[start: start + nxt.start()] if nxt else text[start:]
        passed, failed = _PASS.search(segment), _FAIL.search(segment)
        if passed and failed:
            out.append(passed.start() < failed.start())  # the first verdict given
        else:
            out.append(True if passed else False if failed else None)
    return out


@register
@dataclass(frozen=True)
class UnitTestEvaluator(Component):
    type = "unit_test_evaluator"
    summary = "orders candidates by unit tests passed (c judge calls, or 0 when executed)"
    selects = True
    fallbacks = ("unit_test_evaluator.unparsable", "unit_test_evaluator.no_tests")
    archon_ignored = ARCHON_IGNORED | {"samples", "remove_unit_tests_from_prompt", "unit_test_cap"}

    model: str | None = param(None, help="the judge (needed unless the tests are executed)")
    evaluate: str = param("auto", choices=("auto", "execute", "judge"),
                          help="execute the tests (code benchmarks), have the model judge them, or auto")
    top_k: int | None = param(None, min=1, help="keep the best k (default: all, reordered)")
    first_k: int | None = param(None, min=1, help="pass on the first k candidates passing every test")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(256, min=1)

    def validate(self, node) -> None:
        if self.evaluate == "judge" and self.model is None:
            raise node.error("a unit_test_evaluator that judges (evaluate: judge) needs 'model'")

    def executes(self, kind: str) -> bool:
        return self.evaluate == "execute" or (self.evaluate == "auto" and kind == "code")

    async def run(self, state, ctx):
        cands, tests = state.candidates, list(state.unit_tests)
        if not tests:
            ctx.fallback("unit_test_evaluator.no_tests")
            return state.with_candidates(cands[: self.top_k] if self.top_k else cands)
        if self.executes(ctx.kind):
            if ctx.kind != "code":
                raise ConfigError(f"unit_test_evaluator with 'evaluate: execute' needs a code benchmark; "
                                  f"{getattr(ctx.bench, 'name', 'this benchmark')} is a {ctx.kind} benchmark")
            results = await gather_or_cancel(ctx.run_tests(c.text, tests) for c in cands)
            passed = [sum(r) for r in results]
        else:
            if self.model is None:
                raise ConfigError("unit_test_evaluator needs 'model' to judge the unit tests of a "
                                  f"{ctx.kind} benchmark (only code benchmarks execute them)")
            passed = await gather_or_cancel(self._judge(ctx, i, c.text, tests) for i, c in enumerate(cands))
        scores = [CandidateScore(c.id, p / len(tests), self.type) for c, p in zip(cands, passed, strict=True)]
        ranked = [c for _, _, c in sorted(zip([-p for p in passed], range(len(cands)), cands, strict=True))]
        keep = ranked[: self.top_k] if self.top_k else ranked
        if self.first_k is not None:
            all_pass = [c for c, p in zip(cands, passed, strict=True) if p == len(tests)]
            if len(all_pass) >= self.first_k:
                keep = all_pass[: self.first_k]
        return state.with_scores(scores).with_candidates(keep)

    async def _judge(self, ctx, i: int, text: str, tests: list[str]) -> int:
        listed = "\n".join(f"Unit Test #{k}: {t}" for k, t in enumerate(tests, 1))

        def build(texts: list[str]) -> list[dict]:
            prompt = render("unit_test_evaluator", question=ctx.query, candidate=texts[0], tests=listed,
                            n=len(tests))
            return ctx.history() + [{"role": "user", "content": prompt}]

        messages = quoted_prompt(ctx, self.model, self.max_tokens, [text], build)
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        out = (await ctx.generate(self.model, messages, params, chain=i))[0].text
        verdicts = parse_test_verdicts(out, len(tests))
        if any(v is None for v in verdicts):
            ctx.fallback("unit_test_evaluator.unparsable")
        return sum(1 for v in verdicts if v)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        keep = min(self.top_k, flow.c) if self.top_k else flow.c
        exact = flow.exact
        if self.first_k is not None:
            keep, exact = min(flow.c, max(keep, self.first_k)), flow.exact and flow.c <= 1
        out = replace(flow, candidates=flow.largest(keep), exact=exact)
        if self.executes(env.kind) or not flow.unit_tests:
            return Step(out=out)
        prompt = (env.prompt_tokens + prompt_overhead("unit_test_evaluator") + flow.unit_test_tokens
                  + flow.candidate_tokens // max(1, flow.c))
        return Step(out=out, usage=(env.usage(self.model or "?", flow.c, prompt, self.max_tokens),),
                    calls_exact=flow.exact)
