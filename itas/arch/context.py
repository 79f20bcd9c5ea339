"""What a component sees while it runs for one question: the pool, the benchmark, its position, and a
recorder of every call it makes, every fallback it takes and every text it truncates."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from itas.arch.state import Origin
from itas.arch.tokens import approx_tokens, fit_texts, room_chars
from itas.pool.types import Completion, SamplingParams


@dataclass(frozen=True)
class CallRecord:
    """One call (one sampled completion, or one reward score)."""

    question: str
    layer: int
    component: int
    type: str
    model: str
    sample_index: int
    prompt_tokens: int
    completion_tokens: int
    duration: float  # measured seconds of the request (as recorded, for a cached call)
    latency: float  # modelled seconds (the pool's latency model; the measured time if uncalibrated)
    cost: float
    cached: bool
    chain: int  # calls with the same chain in one component ran one after another
    started: float  # measured seconds since the question started
    kind: str = "chat"  # "chat" or "reward"
    finish_reason: str | None = None

    def to_dict(self) -> dict:
        # every field is a scalar: a plain copy of them, not dataclasses.asdict's recursive deep copy (a search
        # writes every call of every question to its trial folder; asdict was 9% of its event loop's CPU)
        return {name: getattr(self, name) for name in _CALL_FIELDS}


_CALL_FIELDS = tuple(f.name for f in fields(CallRecord))


@dataclass
class QueryRecorder:
    """Everything one question's run records; the executor turns it into a ``QuestionRecord``."""

    question: str
    t0: float = field(default_factory=time.perf_counter)
    calls: list[CallRecord] = field(default_factory=list)
    fallbacks: Counter = field(default_factory=Counter)
    truncations: int = 0
    on_call: Callable[[CallRecord], None] | None = None

    def add(self, record: CallRecord) -> None:
        self.calls.append(record)
        if self.on_call is not None:
            self.on_call(record)


def split_prompt(messages: list[dict]) -> tuple[str, list[dict]]:
    """(the question as the other components quote it, the conversation before it).

    The question is the last user message, preceded by any system message (it often says how to format the
    final answer, which a fused answer must follow too). Earlier user/assistant turns (few-shot examples)
    are kept, in order, before the component's own prompt.
    """
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return system, []
    query = str(messages[last_user].get("content") or "")
    if system:
        query = f"{system}\n\n{query}"
    history = [dict(m) for m in messages[:last_user] if m.get("role") != "system"]
    return query, history


class ComponentContext:
    """Handed to ``Component.run``: the only way a component reaches models, the benchmark and counters."""

    def __init__(self, *, pool: Any, bench: Any, question: Any, messages: list[dict], layer: int, index: int,
                 type: str, start: int, recorder: QueryRecorder):
        self.pool = pool
        self.bench = bench
        self.question = question
        self.kind: str = getattr(bench, "kind", "text")
        self.layer = layer
        self.index = index
        self.type = type
        self.start = start
        self.recorder = recorder
        self._messages = messages
        self.query, self._history = split_prompt(messages)
        self._implicit_chain = itertools.count(-1, -1)

    # ---- the question ----------------------------------------------------------------------------------
    def generator_messages(self) -> list[dict]:
        """The benchmark's prompt for the question (a fresh copy: change it freely)."""
        return copy.deepcopy(self._messages)

    def history(self) -> list[dict]:
        """Turns before the question (few-shot examples), for prompts that replace the question's own."""
        return copy.deepcopy(self._history)

    def origin(self, model: str | None, sample: int) -> Origin:
        return Origin(self.layer, self.index, self.type, model, sample)

    # ---- calls -------------------------------------------------------------------------------------------
    async def generate(self, model: str, messages: list[dict], params: SamplingParams, *, k: int = 1,
                       chain: int | None = None) -> list[Completion]:
        """Samples ``start .. start+k-1`` of the prompt; each is recorded as one call. With ``chain``, calls
        of one chain are on one path of the critical path (they ran one after another)."""
        completions = await self._generate_fitted(model, messages, params, k)
        for c in completions:
            self._record(model, c.sample_index, c.prompt_tokens, c.completion_tokens, c.duration, c.cached,
                         chain, c.finish_reason, "chat")
        return completions

    async def _generate_fitted(self, model: str, messages: list[dict], params: SamplingParams,
                               k: int) -> list[Completion]:
        """The call; when the server refuses a prompt that quotes candidates (``QuotedMessages``) as longer than
        the model's context (the characters-per-token rule is an estimate: digits and LaTeX take more tokens),
        the quoted texts are cut again to ``REFIT_SCALES`` of their room, in turn, until it is accepted."""
        from itas.arch.tokens import REFIT_SCALES, is_context_overflow
        from itas.errors import CallRefusedError

        refit = getattr(messages, "refit", None)
        attempts = iter(REFIT_SCALES if refit is not None else ())
        while True:
            try:
                completions = await self.pool.generate(model, messages, params, k=k, start=self.start)
                break
            except CallRefusedError as exc:
                scale = next(attempts, None)
                if scale is None or not is_context_overflow(str(exc)):
                    raise
                messages = refit(scale)
        self.count_truncations(getattr(messages, "cut", 0))
        return completions

    async def reward(self, model: str, messages: list[dict], response: str, *, chain: int | None = None) -> float:
        """A reward model's score of ``response``; recorded as one call whose prompt tokens are estimated
        by the characters-per-token rule (the pooling API reports none)."""
        t = time.perf_counter()
        value = await self.pool.reward(model, messages, response)
        duration = time.perf_counter() - t
        tokens = sum(approx_tokens(str(m.get("content") or "")) for m in messages) + approx_tokens(response)
        self._record(model, 0, tokens, 0, duration, False, chain, None, "reward")
        return float(value)

    def _record(self, model: str, sample: int, prompt_tokens: int, completion_tokens: int, duration: float,
                cached: bool, chain: int | None, finish_reason: str | None, kind: str) -> None:
        rec = CallRecord(
            question=self.recorder.question, layer=self.layer, component=self.index, type=self.type,
            model=model, sample_index=sample, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            duration=duration, latency=self.pool.call_latency(model, prompt_tokens, completion_tokens, duration),
            cost=self.pool.cost(model, prompt_tokens, completion_tokens), cached=cached,
            chain=next(self._implicit_chain) if chain is None else chain,
            started=max(0.0, time.perf_counter() - self.recorder.t0 - duration), kind=kind,
            finish_reason=finish_reason)
        self.recorder.add(rec)

    # ---- counters and limits -----------------------------------------------------------------------------
    def fallback(self, name: str, n: int = 1) -> None:
        """Count a documented fallback taken on malformed model output (name: '<type>.<what>')."""
        self.recorder.fallbacks[name] += n

    def fit(self, model: str, max_tokens: int, fixed_tokens: int, texts: list[str], *,
            scale: float = 1.0) -> tuple[list[str], int]:
        """``texts`` cut by the truncation rule to fit ``model``'s context next to ``fixed_tokens`` of other
        prompt text and ``max_tokens`` of answer (``scale``: the share of that room they may take); and how many
        were cut. The caller counts the cuts of the prompt it sends (``count_truncations``)."""
        budget = int(room_chars(self.pool.context_length(model), max_tokens, fixed_tokens) * scale)
        return fit_texts(texts, budget)

    def count_truncations(self, n: int) -> None:
        self.recorder.truncations += n

    # ---- the benchmark -------------------------------------------------------------------------------------
    def extract(self, text: str) -> str | None:
        return self.bench.extract(text)

    async def run_tests(self, output: str, tests: list[str]) -> list[bool]:
        """The benchmark's sandbox runs the tests against the program in a model output (no model call)."""
        results = await asyncio.to_thread(self.bench.run_tests, self.question, output, list(tests))
        return [bool(r) for r in results]
