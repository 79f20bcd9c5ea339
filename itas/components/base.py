"""What every component is: a frozen dataclass of its YAML parameters with one async method.

A component type subclasses ``Component``, declares its parameters as dataclass fields (with ``param`` for
bounds, choices and help), and implements

- ``run(state, ctx) -> State``: the new state (never ``None``; a failed call raises ``CallError``);
- ``step(flow, env) -> Step``: its calls per query for ``flow.c`` incoming candidates, and what it passes on,
  for the estimate. The call count is exact when the incoming count is; ``Step.out.exact`` says whether the
  count it passes on is known exactly.

Parsing, validation, export and the registry (``itas.components.registry``) are shared.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from itas.arch.state import State
from itas.arch.tokens import messages_tokens
from itas.config import Node

if TYPE_CHECKING:
    from itas.arch.context import ComponentContext

ARCHON_IGNORED = frozenset({"model_type", "max_context_length"})


def param(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,
          choices: tuple[str, ...] | None = None, help: str = "") -> Any:
    """A component parameter: a dataclass field with its bounds and help text."""
    meta = {"min": min, "max": max, "choices": choices, "help": help}
    return field(default=default, metadata=meta)


# ---- estimate values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flow:
    """What the estimate knows about the state between layers.

    ``candidates``: (symbolic id, upper bound of its tokens) in order; ``exact``: whether their number is
    known exactly (otherwise it is an upper bound); the token bounds of the critiques and unit tests.
    """

    candidates: tuple[tuple[str, int], ...] = ()
    exact: bool = True
    critique_tokens: int = 0
    unit_tests: int = 0
    unit_test_tokens: int = 0

    @property
    def c(self) -> int:
        return len(self.candidates)

    @property
    def candidate_tokens(self) -> int:
        return sum(t for _, t in self.candidates)

    def largest(self, k: int) -> tuple[tuple[str, int], ...]:
        """The first k candidates, each with one of the k largest token bounds (a selection is unknown)."""
        bounds = sorted((t for _, t in self.candidates), reverse=True)[:k]
        return tuple((cid, t) for (cid, _), t in zip(self.candidates[:k], bounds, strict=False))


@dataclass(frozen=True)
class ModelUsage:
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Step:
    """The estimate of one component for one query."""

    out: Flow
    usage: tuple[ModelUsage, ...] = ()
    calls_exact: bool = True

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage)


@dataclass(frozen=True)
class EstimateEnv:
    """What the estimate of a component may use: the benchmark kind, the question's prompt size, the models'
    context lengths (None: unknown, no capping), and the position of the component (for symbolic ids)."""

    kind: str = "text"
    prompt_tokens: int = 200
    context_lengths: Mapping[str, int] | None = None
    layer: int = 0
    index: int = 0

    def usage(self, model: str, calls: int, prompt_tokens: int, max_tokens: int) -> ModelUsage:
        """``calls`` calls, each with at most ``prompt_tokens`` in (capped by the context window, since
        candidate texts are truncated to fit) and ``max_tokens`` out."""
        limit = (self.context_lengths or {}).get(model)
        if limit is not None:
            prompt_tokens = max(0, min(prompt_tokens, limit - max_tokens))
        return ModelUsage(model, calls, calls * prompt_tokens, calls * max_tokens)

    def new_ids(self, n: int) -> tuple[str, ...]:
        return tuple(f"L{self.layer}.C{self.index}.S{i}" for i in range(n))


# ---- the base class -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    type: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # drops or reorders candidates: must be alone in its layer
    selects: ClassVar[bool] = False
    # needs candidates from an earlier layer
    needs_candidates: ClassVar[bool] = True
    # Archon keys with no meaning here (accepted with a notice), and Archon keys spelled differently here
    archon_ignored: ClassVar[frozenset[str]] = ARCHON_IGNORED
    archon_renamed: ClassVar[Mapping[str, str]] = {}
    # the fallback counters it may count on malformed model output (documented in its module)
    fallbacks: ClassVar[tuple[str, ...]] = ()

    async def run(self, state: State, ctx: ComponentContext) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, flow: Flow, env: EstimateEnv) -> Step:  # pragma: no cover - abstract
        raise NotImplementedError

    def calls(self, c: int, *, kind: str = "text") -> int:
        """Calls per query for ``c`` incoming candidates (unit tests present), on a ``kind`` benchmark."""
        flow = Flow(candidates=tuple((f"in{i}", 0) for i in range(c)), unit_tests=1)
        return self.step(flow, EstimateEnv(kind=kind)).calls

    def sample_width(self) -> int:
        """Sample indices one instance uses per distinct prompt; identical components in one architecture
        take consecutive ranges of this width."""
        return 1

    @property
    def models(self) -> tuple[str, ...]:
        """The pool models it calls (its ``model`` parameter, where it has one)."""
        model = getattr(self, "model", None)
        return (model,) if model else ()

    def validate(self, node: Node) -> None:
        """Checks across parameters (after each was parsed on its own); raise ``node.child(key).error``."""

    # ---- YAML -----------------------------------------------------------------------------------------
    @classmethod
    def parameters(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def parse(cls, node: Node) -> Component:
        """Parse the parameters of a spec mapping (whose 'type' was already read)."""
        allowed = ["type"] + [f.name for f in cls.parameters()]
        node.mapping(allowed=allowed)
        hints = _type_hints(cls)
        values: dict[str, Any] = {}
        for f in cls.parameters():
            if not node.has(f.name):
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise node.error(f"a {cls.type} needs '{f.name}'" + _help(f))
                continue
            values[f.name] = _parse_value(node.child(f.name), hints[f.name], f)
        comp = cls(**values)
        comp.validate(node)
        return comp

    def to_dict(self, *, full: bool = True) -> dict:
        """The spec as YAML would write it; ``full`` writes parameters left at their defaults too."""
        out: dict[str, Any] = {"type": self.type}
        for f in self.parameters():
            value = getattr(self, f.name)
            if not full and f.default is not dataclasses.MISSING and value == f.default:
                continue
            if value is None:
                continue
            out[f.name] = value
        return out


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A component class's resolved annotations, resolved once (a search parses every architecture it proposes;
    resolving them each time was most of parse_architecture's time)."""
    return typing.get_type_hints(cls)


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help") if f.metadata else ""
    return f" ({text})" if text else ""


def _parse_value(node: Node, hint: Any, f: dataclasses.Field) -> Any:
    meta = f.metadata or {}
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if node.value is None and optional:
        return None
    lo, hi = meta.get("min"), meta.get("max")
    if hint is bool:
        return node.bool()
    if hint is int:
        return node.int(min=lo, max=hi)
    if hint is float:
        return node.float(min=lo, max=hi)
    if hint is str:
        return node.str(choices=meta.get("choices"))
    raise TypeError(f"unsupported parameter type {hint!r} for {f.name}")  # a bug in a component class


# ---- helpers components share ---------------------------------------------------------------------------
class QuotedMessages(list):
    """Messages that quote candidate texts (``quoted_prompt``): ``cut`` texts were cut to fit, and
    ``refit(scale)`` builds them again with the texts cut to ``scale`` of their room (after a server refused
    the prompt as too long for the context)."""

    def __init__(self, messages: list[dict], cut: int, refit: Callable[[float], QuotedMessages]):
        super().__init__(messages)
        self.cut = cut
        self.refit = refit


def quoted_prompt(ctx: ComponentContext, model: str, max_tokens: int, texts: list[str],
                  build: Callable[[list[str]], list[dict]]) -> list[dict]:
    """Messages quoting ``texts`` (candidate texts), cut by the truncation rule to fit ``model``'s context
    with ``max_tokens`` of room (see ``itas.arch.tokens``); the cuts of the prompt sent are counted on ``ctx``."""
    fixed = messages_tokens(build([""] * len(texts)))

    def make(scale: float) -> QuotedMessages:
        fitted, cut = ctx.fit(model, max_tokens, fixed, texts, scale=scale)
        return QuotedMessages(build(fitted), cut, make)

    return make(1.0)


def numbered(texts: list[str], label: str = "Response") -> str:
    return "\n\n".join(f"[{i}] {label} {i}:\n{t}" for i, t in enumerate(texts, 1))


def prompt_overhead(name: str) -> int:
    """Tokens of a template's own text (placeholders included), one chat message's overhead added."""
    from itas.arch.tokens import MESSAGE_OVERHEAD_TOKENS, approx_tokens
    from itas.components.templates import template

    return approx_tokens(template(name).template) + MESSAGE_OVERHEAD_TOKENS


def critiques_block(state: State, candidates) -> str:
    """The critiques section of a prompt (empty when no candidate has one), numbered like the candidates."""
    from itas.components.templates import render

    lines = [f"[{i}] {text}" for i, c in enumerate(candidates, 1) if (text := state.critique_of(c))]
    return render("critiques_section", critiques="\n\n".join(lines)) + "\n" if lines else ""
