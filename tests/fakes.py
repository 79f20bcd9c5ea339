"""Scripted fakes for unit tests: a pool that answers every component's prompt from a script, and a small
benchmark. No network, no servers. Tests pass them explicitly; production code never detects them."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from itas.errors import CallError, CallRefusedError
from itas.pool.config import Endpoint, ModelSpec, PoolConfig
from itas.pool.types import Completion, SamplingParams


# ---- benchmark -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    id: str
    text: str
    reference: Any
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    value: float
    status: str
    extracted: Any = None
    detail: Any = None


_ANSWER = re.compile(r"####\s*(-?\d+)")
_CODE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


class FakeBenchmark:
    """Arithmetic questions ("what is a + b?", reference a + b); answers after '####'. With kind='code',
    the answer is a fenced code block and ``run_tests`` passes a test unless the code contains 'BUG'."""

    def __init__(self, n: int = 6, kind: str = "math", name: str = "fake"):
        self.name = name
        self.kind = kind
        self._questions = [Question(f"fake/{i}", f"What is {i} + {i + 1}?", str(2 * i + 1), {"row": i})
                           for i in range(n)]
        self.scored: list[tuple[str, str]] = []
        self.tests_run: list[tuple[str, str, tuple[str, ...]]] = []

    def questions(self) -> list[Question]:
        return list(self._questions)

    def subset(self, k: int, seed: int, exclude: frozenset = frozenset()) -> list[Question]:
        pool = [q for q in self._questions if q.id not in exclude]
        return random.Random(seed).sample(pool, min(k, len(pool)))

    def messages(self, q: Question) -> list[dict]:
        return [{"role": "system", "content": "Give the final answer after '####'."},
                {"role": "user", "content": q.text}]

    def extract(self, output: str) -> str | None:
        if self.kind == "code":
            m = _CODE.search(output)
            return m.group(1) if m else None
        found = _ANSWER.findall(output)
        return found[-1] if found else None

    def score(self, q: Question, output: str) -> Score:
        self.scored.append((q.id, output))
        got = self.extract(output)
        if got is None:
            return Score(0.0, "no_answer")
        ok = got == q.reference
        return Score(1.0 if ok else 0.0, "correct" if ok else "wrong", extracted=got)

    def run_tests(self, q: Question, code: str, tests: list[str]) -> list[bool]:
        self.tests_run.append((q.id, code, tuple(tests)))
        return ["BUG" not in code and "fail" not in t for t in tests]


# ---- pool ----------------------------------------------------------------------------------------------------
def prompt_kind(messages: list[dict]) -> str:
    """Which component's prompt this is, from the templates' closing lines."""
    text = str(messages[-1]["content"]).rstrip()
    for kind, marker in [("ranker", "Ranking:"), ("critic", "Your evaluation:"), ("verdict", "Verdict:"),
                         ("unit_test_evaluator", "Verdicts:"), ("unit_test_generator", "Unit tests:"),
                         ("fuser", "Your answer:")]:
        if text.endswith(marker):
            return kind
    if "Check the response step by step" in text:
        return "reasoning"
    if 'of the form "Score: N"' in text:
        return "judge"
    return "generator"


def n_candidates(messages: list[dict]) -> int:
    return len(re.findall(r"^\[(\d+)\] Response", str(messages[-1]["content"]), re.MULTILINE))


def n_tests(messages: list[dict]) -> int:
    return len(re.findall(r"^Unit Test #\d+:", str(messages[-1]["content"]), re.MULTILINE))


def well_formed(model: str, messages: list[dict], params: SamplingParams, index: int) -> str:
    """A plausible, parsable answer to every component's prompt."""
    kind = prompt_kind(messages)
    if kind == "ranker":
        n = n_candidates(messages)
        return " > ".join(f"[{i}]" for i in range(n, 0, -1))  # reverse order: visible in tests
    if kind == "critic":
        n = n_candidates(messages)
        return "\n".join(f"[{i}]\nStrengths: clear.\nWeaknesses: none for {i}." for i in range(1, n + 1))
    if kind == "reasoning":
        return "Step by step, the arithmetic checks out."
    if kind == "verdict":
        return "[Correct]"
    if kind == "unit_test_generator":
        if "assert statements" in str(messages[-1]["content"]):
            return "assert f(1) == 2\nassert f(2) == 3"
        return "- the answer is a number\n- the answer is after ####"
    if kind == "unit_test_evaluator":
        return "\n".join(f"Unit Test #{i}: [Passed]" for i in range(1, n_tests(messages) + 1))
    if kind == "judge":
        return f"Reasonable. Score: {1 + index % 10}"
    if kind == "fuser":
        return f"Fused by {model}. #### 3"
    question = next((m["content"] for m in messages if m["role"] == "user"), "")
    nums = [int(x) for x in re.findall(r"\d+", str(question))[:2]] or [0]
    return f"{model} sample {index}: {' + '.join(map(str, nums))} = {sum(nums)}. #### {sum(nums)}\n```python\nok\n```"


def malformed(model: str, messages: list[dict], params: SamplingParams, index: int) -> str:
    """Unparsable output for every auxiliary prompt (generators still answer)."""
    kind = prompt_kind(messages)
    if kind == "generator":
        return well_formed(model, messages, params, index)
    if kind == "unit_test_generator":
        return ""
    return "I am not sure what you mean."


def make_pool_config(names: tuple[str, ...] = ("smollm2", "gemma3"), context_length: int = 2048,
                     priced: bool = False) -> PoolConfig:
    from itas.pool.config import Price

    models = tuple(ModelSpec(name=n, model=f"{n}-served", context_length=context_length, max_concurrency=64,
                             endpoints=(Endpoint(url=f"http://127.0.0.1:1/{n}", max_concurrency=64),),
                             price=Price(1.0, 2.0) if priced else None) for n in names)
    return PoolConfig(models=models, source="fake pool")


class FakePool:
    """Implements the parts of ``itas.pool.client.Pool`` components use, from a script.

    ``script(model, messages, params, sample_index) -> str`` gives each sample's text. Samples are cached under
    (model, messages, params, index) like the real pool, so identical requests get identical samples.
    ``delay`` seconds of real sleep per request (for concurrency tests); ``fail_on(model, messages)`` True ->
    that request raises ``CallError``; a prompt of more than ``refuse_chars`` characters is refused with vLLM's
    context-length message (a tokenizer that spends more tokens than the characters-per-token rule assumes).
    """

    def __init__(self, script: Callable[..., str] = well_formed, *, config: PoolConfig | None = None,
                 delay: float = 0.0, reward: Callable[[str, list[dict], str], float] | None = None,
                 fail_on: Callable[[str, list[dict]], bool] | None = None, refuse_chars: int | None = None):
        self.script = script
        self.refuse_chars = refuse_chars
        self.refused = 0
        self.config = config or make_pool_config()
        self.delay = delay
        self._reward = reward or (lambda model, messages, response: float(len(response) % 7))
        self.fail_on = fail_on
        self.requests: list[dict] = []  # every generate() call
        self.rewards: list[tuple[str, str]] = []
        self.samples_made = 0
        self._cache: dict[tuple, Completion] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def context_length(self, model: str) -> int:
        return self.config[model].context_length

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return self.config.cost(model, prompt_tokens, completion_tokens)

    def call_latency(self, model: str, prompt_tokens: int, completion_tokens: int, measured: float) -> float:
        return 0.5 + 0.001 * prompt_tokens + 0.01 * completion_tokens

    async def generate(self, model: str, messages: list[dict], params: SamplingParams, k: int = 1,
                       start: int = 0) -> list[Completion]:
        self.config[model]  # unknown model -> ConfigError, as the real pool
        snapshot = json.loads(json.dumps(messages))
        self.requests.append({"model": model, "messages": snapshot, "params": params, "k": k, "start": start})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            else:
                await asyncio.sleep(0)
            if self.fail_on is not None and self.fail_on(model, snapshot):
                raise CallError("scripted failure", endpoint=f"fake://{model}")
            if self.refuse_chars is not None and sum(len(str(m["content"])) for m in messages) > self.refuse_chars:
                self.refused += 1
                limit = self.context_length(model)
                raise CallRefusedError(f"request refused (HTTP 400): This model's maximum context length is {limit} "
                                       f"tokens. However, your prompt contains at least {limit + 1} input tokens, "
                                       f"which exceeds this limit even without any output tokens.",
                                       endpoint=f"fake://{model}")
            prompt_tokens = sum(len(str(m["content"])) for m in messages) // 4 + 1
            out = []
            key = (model, json.dumps(snapshot, sort_keys=True), json.dumps(params.key()))
            for i in range(start, start + k):
                if (key, i) in self._cache:
                    c = self._cache[(key, i)]
                    out.append(Completion(**{**c.__dict__, "cached": True}))
                    continue
                text = self.script(model, snapshot, params, i)
                c = Completion(text=text, model=model, sample_index=i, prompt_tokens=prompt_tokens,
                               completion_tokens=max(1, len(text) // 4), duration=self.delay or 0.01,
                               finish_reason="stop")
                self._cache[(key, i)] = c
                self.samples_made += 1
                out.append(c)
            return out
        finally:
            self.in_flight -= 1

    async def reward(self, model: str, messages: list[dict], response: str) -> float:
        self.config[model]
        self.rewards.append((model, response))
        await asyncio.sleep(self.delay or 0)
        return self._reward(model, messages, response)


# ---- fixtures (import them into a test module to use them) --------------------------------------------------------
@pytest.fixture
def fake_pool() -> FakePool:
    return FakePool()


@pytest.fixture
def fake_bench() -> FakeBenchmark:
    return FakeBenchmark()
