"""Calls and tokens per query of an architecture, before running it (the search's compute budget).

Walks the layers with a symbolic state (``Flow``: candidate ids with token upper bounds, and whether their
number is known exactly). Each component declares its calls for c incoming candidates (the table in
``itas.components``) and what it passes on. The call count is **exact** when every component's call count is
determined, which holds whenever no component whose own calls depend on c (verifier, unit_test_evaluator when
judging, best_of_n) follows one that drops an unknown number of candidates (verifier, vote, a
unit_test_evaluator with first_k); otherwise it is an **upper bound** (every such drop taken as keeping all).
Two caveats, both counted in the run's fallbacks: an unit_test_generator that writes no parsable test makes
the unit_test_evaluator after it call nothing; a failed call ends the question early.

Tokens are an upper bound: prompts from text length by the rule of ``itas.arch.tokens`` (question prompt,
counted digit by digit for grid tasks (``prompt_tokens_of``); template text, quoted candidates at their
producers' max_tokens, critiques, unit tests), capped at the model's context window less max_tokens (longer
candidate texts are truncated); completions at max_tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from itas.arch.tokens import messages_tokens
from itas.components.base import Component, EstimateEnv, Flow, ModelUsage, Step

DEFAULT_PROMPT_TOKENS = 200  # a question's prompt when no benchmark is at hand (a GSM8K prompt is ~100-250)


@dataclass(frozen=True)
class LayerEstimate:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    candidates: int  # passed on (an upper bound unless exact)
    exact: bool


@dataclass(frozen=True)
class Estimate:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    exact: bool  # calls are exact (else an upper bound); tokens are always an upper bound
    layers: tuple[LayerEstimate, ...]
    by_model: tuple[ModelUsage, ...]

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def cost(self, pool_config: Any) -> float:
        """Upper bound of the cost per query: money for a priced pool, else tokens."""
        return sum(pool_config.cost(u.model, u.prompt_tokens, u.completion_tokens) for u in self.by_model)

    def to_dict(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "tokens": self.tokens, "exact": self.exact,
                "layers": [vars(x) for x in self.layers], "by_model": [vars(u) for u in self.by_model]}


def merge_flows(before: Flow, outs: Sequence[Flow]) -> Flow:
    """The symbolic twin of ``merge_states``."""
    if len(outs) == 1:
        return outs[0]
    seen: dict[str, int] = {}
    for out in outs:
        for cid, tokens in out.candidates:
            seen.setdefault(cid, tokens)
    return Flow(candidates=tuple(seen.items()), exact=all(o.exact for o in outs),
                critique_tokens=max((o.critique_tokens for o in outs), default=0),
                unit_tests=before.unit_tests + sum(o.unit_tests - before.unit_tests for o in outs),
                unit_test_tokens=before.unit_test_tokens + sum(o.unit_test_tokens - before.unit_test_tokens
                                                                for o in outs))


def walk(arch: Any, *, kind: str = "text", prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
         context_lengths: Mapping[str, int] | None = None) -> Iterator[tuple[int, int, Component, Flow, Step]]:
    """(layer, index, component, incoming flow, its step) for every component, in order."""
    flow = Flow()
    for li, layer in enumerate(arch.layers):
        outs = []
        for ci, comp in enumerate(layer):
            env = EstimateEnv(kind=kind, prompt_tokens=prompt_tokens, context_lengths=context_lengths,
                              layer=li, index=ci)
            step = comp.step(flow, env)
            outs.append(step.out)
            yield li, ci, comp, flow, step
        flow = merge_flows(flow, outs)


def final_flow(arch: Any, *, kind: str = "text", prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
               context_lengths: Mapping[str, int] | None = None) -> Flow:
    """The symbolic state after the last layer."""
    flow = Flow()
    for li, layer in enumerate(arch.layers):
        outs = [comp.step(flow, EstimateEnv(kind=kind, prompt_tokens=prompt_tokens, context_lengths=context_lengths,
                                            layer=li, index=ci)).out for ci, comp in enumerate(layer)]
        flow = merge_flows(flow, outs)
    return flow


def estimate(arch: Any, *, kind: str = "text", prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
             context_lengths: Mapping[str, int] | None = None) -> Estimate:
    """Calls and tokens per query. ``kind``: the benchmark's ("code" executes unit tests: no calls);
    ``prompt_tokens``: the question's prompt (see ``question_prompt_tokens``); ``context_lengths``: per model,
    to cap prompts as truncation does (``context_lengths_of(pool)``)."""
    layers: dict[int, list[tuple[Step, Flow]]] = {}
    by_model: dict[str, list[int]] = {}
    exact = True
    for li, _, _, _, step in walk(arch, kind=kind, prompt_tokens=prompt_tokens, context_lengths=context_lengths):
        layers.setdefault(li, []).append((step, step.out))
        exact = exact and step.calls_exact
        for u in step.usage:
            acc = by_model.setdefault(u.model, [0, 0, 0])
            acc[0] += u.calls
            acc[1] += u.prompt_tokens
            acc[2] += u.completion_tokens
    layer_estimates = []
    flow = Flow()
    for li in sorted(layers):
        steps = [s for s, _ in layers[li]]
        flow = merge_flows(flow, [o for _, o in layers[li]])
        layer_estimates.append(LayerEstimate(
            calls=sum(s.calls for s in steps),
            prompt_tokens=sum(u.prompt_tokens for s in steps for u in s.usage),
            completion_tokens=sum(u.completion_tokens for s in steps for u in s.usage),
            candidates=flow.c, exact=flow.exact))
    usage = tuple(ModelUsage(m, *v) for m, v in sorted(by_model.items()))
    return Estimate(calls=sum(x.calls for x in layer_estimates),
                    prompt_tokens=sum(x.prompt_tokens for x in layer_estimates),
                    completion_tokens=sum(x.completion_tokens for x in layer_estimates),
                    exact=exact, layers=tuple(layer_estimates), by_model=usage)


def question_prompt_tokens(bench: Any, questions: Sequence[Any]) -> int:
    """The largest generator prompt of these questions, in estimated tokens (``prompt_tokens_of``)."""
    return max((prompt_tokens_of(bench, q) for q in questions), default=DEFAULT_PROMPT_TOKENS)


def prompt_tokens_of(bench: Any, question: Any) -> int:
    """The generator prompt of one question, in estimated tokens: by the rule of ``itas.arch.tokens`` (3
    characters per token), except for grid tasks (ARC), which that rule undercounts by half: a grid costs a
    token per digit and per line break (SmolLM2's tokenizer; Gemma's spends a little less), so a grid task's
    prompt is counted that way (``itas.arc.grids.text_tokens``: other text at 3 characters per token) plus
    the chat template around it (``itas.arc.loaders.CHAT_OVERHEAD``, SmolLM2's default system prompt), and 8
    tokens per further message. On the synthetic grid tasks this is 9-15% above SmolLM2's real count."""
    from itas.arc.task import problem_of

    messages = bench.messages(question)
    if problem_of(question) is None:
        return messages_tokens(messages)
    from itas.arc.grids import text_tokens
    from itas.arc.loaders import CHAT_OVERHEAD
    from itas.arch.tokens import MESSAGE_OVERHEAD_TOKENS

    return (sum(text_tokens(str(m.get("content") or "")) for m in messages) + CHAT_OVERHEAD
            + MESSAGE_OVERHEAD_TOKENS * max(0, len(messages) - 1))


def context_lengths_of(pool_config: Any) -> dict[str, int]:
    return {m.name: m.context_length for m in pool_config.models}
