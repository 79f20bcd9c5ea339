"""Which models of a run need servers that load LoRA adapters (test-time training), and whether the pool can.

A run needs LoRA for a model when it may train adapters of it:

- an architecture (``itas run``, an enqueued or re-run trial, validation) with a ``ttt`` component on that model;
- a search space with a ``ttt`` stage: the stage turns the first layer's generators into ``ttt`` components, so
  every model the ``generate`` stage may use (the first ``max(count)`` of its ranked ``models``) needs it.

``needs_*`` give ``{model: the largest LoRA rank asked}``; ``lora_models`` checks them against the pool and gives
the set of model names to pass to ``open_pool(lora=...)``. Only managed models (with ``serve``) are in it: itas
starts their servers with the LoRA settings of ``serve.lora`` (``itas.pool.serving.server_command``). For
endpoints itas does not start, nothing is checked here; a server that does not load adapters at runtime fails
the ``ttt`` questions with what to add (``itas.ttt.serving.RUNTIME_LORA_HELP``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from itas.errors import ConfigError

DEFAULT_RANK = 16  # the ttt component's default rank


def needs_of_architecture(arch: Any) -> dict[str, int]:
    """``{model: largest rank}`` of the architecture's ``ttt`` components."""
    out: dict[str, int] = {}
    for _, _, comp in arch.components():
        if getattr(comp, "type", None) == "ttt":
            out[comp.model] = max(out.get(comp.model, 0), int(comp.rank))
    return out


def needs_of_space(space: Any) -> dict[str, int]:
    """``{model: largest rank}`` a search space's ``ttt`` stages may train (empty without a ``ttt`` stage)."""
    ttt = [s for s in space.stages if s.kind == "ttt"]
    if not ttt:
        return {}
    rank = max(int(r) for s in ttt for r in s.choice("rank", DEFAULT_RANK).values)
    out: dict[str, int] = {}
    for s in space.stages:
        if s.kind != "generate":
            continue
        ranked = list(s.params["models"].values[0])
        count = max(int(c) for c in s.choice("count", len(ranked)).values)
        for m in ranked[:count]:
            out[m] = max(out.get(m, 0), rank)
    return out


def merge(*needs: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in needs:
        for model, rank in n.items():
            out[model] = max(out.get(model, 0), rank)
    return out


def lora_models(pool_config: Any, needs: Mapping[str, int], *, source: str | None = None) -> frozenset[str]:
    """The managed models of ``needs`` (names to start with LoRA). A managed model that cannot serve adapters
    (no ``serve.lora``), or not at the rank asked, is a ``ConfigError`` naming the pool's key; ``source``
    names what asks for the adapters (a space, an architecture) in the message."""
    out = set()
    asked_by = f" (asked by {source})" if source else ""
    for model, rank in sorted(needs.items()):
        if model not in pool_config:
            continue  # an unknown model is reported by the check of models
        spec = pool_config[model]
        if spec.serve is None:
            continue  # an endpoint itas does not start: unchanged
        lora = spec.serve.lora_available
        if lora is None:
            raise ConfigError(f"test-time training (ttt) on '{model}'{asked_by} needs a server that loads LoRA "
                              f"adapters; add lora: {{max_rank: {_rank_for(rank)}, max_loras: 4}} here",
                              source=pool_config.source, key=f"models.{model}.serve.lora")
        if rank > lora.max_rank:
            raise ConfigError(f"{lora.max_rank} is less than the LoRA rank {rank} that test-time training on "
                              f"'{model}' uses{asked_by}; give at least {_rank_for(rank)}",
                              source=pool_config.source, key=f"models.{model}.serve.lora.max_rank")
        out.add(model)
    return frozenset(out)


def _rank_for(rank: int) -> int:
    from itas.pool.config import LORA_RANKS

    return next((r for r in LORA_RANKS if r >= rank), LORA_RANKS[-1])


def lora_for_architectures(pool_config: Any, archs: Iterable[Any]) -> frozenset[str]:
    archs = list(archs)
    needs = merge(*(needs_of_architecture(a) for a in archs))
    sources = ", ".join(sorted({a.source for a in archs if needs_of_architecture(a)}))
    return lora_models(pool_config, needs, source=sources or None)


def lora_for_search(pool_config: Any, space: Any, archs: Iterable[Any] = ()) -> frozenset[str]:
    """The models a search must serve with LoRA: its space's ``ttt`` stages and its enqueued architectures'."""
    archs = list(archs)
    found = lora_models(pool_config, needs_of_space(space), source=f"the ttt stage of {space.source}")
    return found | lora_for_architectures(pool_config, archs)
