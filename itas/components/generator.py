"""``generator``: samples answers to the question from one model and appends them to the candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace

from itas.arch.state import Candidate, State
from itas.arch.tokens import approx_tokens
from itas.components.base import ARCHON_IGNORED, Component, EstimateEnv, Flow, Step, param
from itas.components.registry import register
from itas.components.templates import render
from itas.pool.types import SamplingParams


@register
@dataclass(frozen=True)
class Generator(Component):
    type = "generator"
    summary = "samples answers to the question from one model (k calls)"
    needs_candidates = False
    archon_ignored = ARCHON_IGNORED | {"top_k"}

    model: str = param(help="a model of the pool")
    samples: int = param(1, min=1, max=4096, help="answers to sample (calls)")
    temperature: float = param(0.7, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)
    top_p: float = param(1.0, min=0.0, max=1.0)
    system: str | None = param(None, help="a system prompt put before the benchmark's prompt")
    use_unit_tests: bool = param(True, help="append unit tests written by an earlier layer to the question")

    def sample_width(self) -> int:
        return self.samples

    def messages(self, state: State, base: list[dict]) -> list[dict]:
        messages = [dict(m) for m in base]
        if self.system:
            system = [m for m in messages if m.get("role") == "system"]
            rest = [m for m in messages if m.get("role") != "system"]
            content = "\n\n".join([self.system] + [str(m.get("content") or "") for m in system])
            messages = [{"role": "system", "content": content}] + rest
        if self.use_unit_tests and state.unit_tests:
            last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
            tests = "\n".join(f"- {t}" for t in state.unit_tests)
            messages[last] = {**messages[last],
                              "content": render("unit_tests_suffix", question=messages[last]["content"], tests=tests)}
        return messages

    async def run(self, state, ctx):
        messages = self.messages(state, ctx.generator_messages())
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens, top_p=self.top_p)
        completions = await ctx.generate(self.model, messages, params, k=self.samples)
        return state.adding_candidates(Candidate(c.text, ctx.origin(self.model, c.sample_index)) for c in completions)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        prompt = env.prompt_tokens + (approx_tokens(self.system) if self.system else 0)
        if self.use_unit_tests and flow.unit_tests:
            prompt += flow.unit_test_tokens + approx_tokens(render("unit_tests_suffix", question="", tests=""))
        new = tuple((i, self.max_tokens) for i in env.new_ids(self.samples))
        return Step(out=replace(flow, candidates=flow.candidates + new),
                    usage=(env.usage(self.model, self.samples, prompt, self.max_tokens),))
