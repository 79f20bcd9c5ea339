"""The reward of a sample: a judge model of the pool asked for a score by prompt, or a reward model behind
vLLM's pooling API. Both exactly as the ``best_of_n`` component does it (same prompt template, truncation rule,
score parser and judge sampling parameters), so a sampling run measures what that component would select.

``--reward judge:MODEL`` or ``--reward reward_model:MODEL``. A judgement without a parsable score gives no
reward (None): such a sample is ranked after every rewarded one, as in the component.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from itas.errors import InputError

KINDS = ("judge", "reward_model")


def _best_of_n_default(name: str):
    from itas.components.best_of_n import BestOfN

    return next(f.default for f in dataclasses.fields(BestOfN) if f.name == name)


@dataclass(frozen=True)
class RewardSpec:
    kind: str  # "judge" or "reward_model"
    model: str  # a pool model
    temperature: float = 0.0  # of the judge
    max_tokens: int = 256  # of the judge

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model}"

    def to_dict(self) -> dict:
        out: dict = {"spec": self.name}
        if self.kind == "judge":
            out.update(temperature=self.temperature, max_tokens=self.max_tokens)
        return out


def parse_reward(spec: str) -> RewardSpec:
    """``judge:MODEL`` or ``reward_model:MODEL`` (the judge's temperature and max_tokens are best_of_n's
    defaults)."""
    kind, sep, model = spec.partition(":")
    kind, model = kind.strip(), model.strip()
    if not sep or kind not in KINDS or not model:
        from itas.config import did_you_mean

        hint = did_you_mean(kind, KINDS) if sep and kind not in KINDS else f" Allowed: {', '.join(KINDS)}"
        raise InputError(f"--reward '{spec}': expected judge:MODEL or reward_model:MODEL (a pool model){hint}")
    if kind == "judge":
        return RewardSpec(kind, model, temperature=float(_best_of_n_default("temperature")),
                          max_tokens=int(_best_of_n_default("max_tokens")))
    return RewardSpec(kind, model)


def judge_messages(bench_messages: list[dict], candidate: str, context_length: int, max_tokens: int) -> list[dict]:
    """The best_of_n judge's prompt for one candidate: the question as the components quote it, the turns before
    it, the candidate cut by the truncation rule to fit the judge's context."""
    from itas.arch.context import split_prompt
    from itas.arch.tokens import fit_texts, messages_tokens, room_chars
    from itas.components.templates import render

    query, history = split_prompt(bench_messages)

    def build(text: str) -> list[dict]:
        return [dict(m) for m in history] + [{"role": "user", "content": render("judge", question=query,
                                                                                 candidate=text)}]

    budget = room_chars(context_length, max_tokens, messages_tokens(build("")))
    fitted, _ = fit_texts([candidate], budget)
    return build(fitted[0])


async def reward_of(pool, spec: RewardSpec, bench_messages: list[dict], text: str) -> float | None:
    """The reward of ``text`` as an answer to ``bench_messages``; None for an unparsable judgement."""
    if spec.kind == "reward_model":
        return float(await pool.reward(spec.model, bench_messages, text))
    from itas.components.best_of_n import parse_score
    from itas.pool.types import SamplingParams

    messages = judge_messages(bench_messages, text, pool.context_length(spec.model), spec.max_tokens)
    params = SamplingParams(temperature=spec.temperature, max_tokens=spec.max_tokens)
    out = (await pool.generate(spec.model, messages, params, k=1))[0].text
    return parse_score(out)
