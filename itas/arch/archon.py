"""Archon's JSON configs in and out.

Archon (ScalingIntelligence/Archon) writes an architecture as ``{"name", "layers": [[{"type", "model",
"model_type", "temperature", "max_tokens", "samples", ...}]]}`` (older configs: a layer is
``{"branches", "models": [...]}``). Import: the same components by ``type``; model names mapped to pool names
through ``model_map`` (names not in the map are kept and must be pool names); keys with no meaning here
(``model_type``, ``max_context_length``, and per type e.g. a ranker's ``ranker_batch_size``) are accepted and
ignored with a notice; ``unit_test_cap`` is ``n_tests``, ``first_pass: true`` is ``first_k: 1``. Any other
key is an error, as in YAML. Export writes every component with the keys Archon reads (``model_type``,
``temperature``, ``max_tokens``, ``samples``) and itas's own parameters under their names; types Archon does
not have (vote, best_of_n) are exported as custom components (``"custom": true``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from itas.arch.spec import Architecture, check_structure
from itas.components.registry import component_class
from itas.config import Node

ARCHON_TYPES = frozenset({"generator", "fuser", "ranker", "critic", "verifier", "unit_test_generator",
                          "unit_test_evaluator"})
DEFAULT_MODEL_TYPE = "vLLM"


def from_archon(data: Any, source: str, *, model_map: Mapping[str, str] | None = None
                ) -> tuple[Architecture, list[str]]:
    """(the architecture, notices about what was ignored)."""
    model_map = dict(model_map or {})
    root = Node(data, source).mapping(allowed=["name", "layers", "custom"], required=["layers"])
    ignored: Counter = Counter()
    if root.has("custom"):
        ignored["custom"] += 1
    name = root.child("name").str() if root.has("name") else None
    layers = []
    for layer_node in root.child("layers").list(min_len=1):
        if isinstance(layer_node.value, Mapping):  # the older form: {"branches": n, "models": [...]}
            layer_node.mapping(allowed=["branches", "models"], required=["models"])
            if layer_node.has("branches"):
                ignored["branches"] += 1
            layer_node = layer_node.child("models")
        specs = []
        for spec in layer_node.list(min_len=1):
            specs.append(_component(spec, model_map, ignored))
        layers.append(tuple(specs))
    from pathlib import Path

    arch = Architecture(name=name or Path(source).stem, layers=tuple(layers), source=source)
    check_structure(arch)
    notices = [f"{source}: ignored Archon key '{k}' ({n}x): it has no meaning in itas" for k, n in
               sorted(ignored.items())]
    return arch, notices


def _component(node: Node, model_map: dict[str, str], ignored: Counter):
    node.mapping(required=["type"])
    type_node = node.child("type")
    cls = component_class(type_node.str(), type_node)
    native: dict[str, Any] = {}
    for key, value in node.value.items():
        if key in cls.archon_ignored:
            ignored[key] += 1
        elif key == "first_pass" and cls.type == "unit_test_evaluator":
            if value and "first_k" not in node.value:
                native["first_k"] = 1
        else:
            native[cls.archon_renamed.get(key, key)] = value
    if isinstance(native.get("model"), str):
        native["model"] = model_map.get(native["model"], native["model"])
    return cls.parse(Node(native, node.source, node.path))


def to_archon(arch: Architecture, *, model_map: Mapping[str, str] | None = None,
              model_type: str = DEFAULT_MODEL_TYPE) -> dict:
    """An Archon config. ``model_map`` renames pool names to Archon's (the inverse of the import's map)."""
    model_map = dict(model_map or {})
    layers = []
    custom = False
    for layer in arch.layers:
        out_layer = []
        for comp in layer:
            custom = custom or comp.type not in ARCHON_TYPES
            renamed = {ours: theirs for theirs, ours in comp.archon_renamed.items()}
            d = {renamed.get(k, k): v for k, v in comp.to_dict(full=True).items()}
            if "model" in d:
                d["model"] = model_map.get(d["model"], d["model"])
                d["model_type"] = model_type
                d.setdefault("samples", 1)
            if comp.type == "unit_test_evaluator":
                d["remove_unit_tests_from_prompt"] = True
            out_layer.append(_ordered(d))
        layers.append(out_layer)
    out: dict[str, Any] = {"name": arch.name, "layers": layers}
    if custom:
        out["custom"] = True
    return out


def _ordered(d: dict) -> dict:
    first = ["type", "model", "model_type", "temperature", "max_tokens", "samples"]
    return {**{k: d[k] for k in first if k in d}, **{k: v for k, v in d.items() if k not in first}}
