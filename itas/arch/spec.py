"""Architecture YAML -> a frozen ``Architecture``; and back.

```yaml
name: rank-critic-fuse          # optional (default: the file name)
description: optional text
layers:                         # run in order; the components of a layer run concurrently
  - - {type: generator, model: smollm2, samples: 3, temperature: 0.8}
    - {type: generator, model: gemma3, samples: 2}
  - - {type: ranker, model: smollm2, top_k: 3}
  - - {type: critic, model: smollm2}
  - - {type: fuser, model: smollm2}
```

A layer is a list of component specs (a single spec mapping is accepted as a one-component layer). Each spec
has a ``type`` (see ``itas.components``) and that type's parameters. The outputs of a layer's components are
merged in spec order (``itas.arch.state.merge_states``). A component that selects among the candidates
(ranker, verifier, unit_test_evaluator, vote, best_of_n) must be alone in its layer; components that need
candidates need an earlier layer that produces some; a unit_test_evaluator needs a unit_test_generator in an
earlier layer; the last layer must leave at least one candidate. The final answer is the first candidate of
the final state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from itas.components.base import Component
from itas.components.registry import component_class
from itas.config import Node, did_you_mean
from itas.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: tuple[tuple[Component, ...], ...]
    description: str | None = None
    source: str = field(default="<memory>", compare=False)

    # ---- reading -------------------------------------------------------------------------------------
    def components(self) -> Iterator[tuple[int, int, Component]]:
        for li, layer in enumerate(self.layers):
            for ci, comp in enumerate(layer):
                yield li, ci, comp

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({m for _, _, c in self.components() for m in c.models}))

    def sample_starts(self) -> dict[tuple[int, int], int]:
        """The first sample index of each component: identical components (same type and parameters) in
        one architecture take consecutive ranges (so they do not share samples); the first of its kind starts
        at 0, so the same component in another architecture reuses the same cached samples."""
        used: dict[Component, int] = {}
        starts: dict[tuple[int, int], int] = {}
        for li, ci, comp in self.components():
            starts[(li, ci)] = used.get(comp, 0)
            used[comp] = starts[(li, ci)] + comp.sample_width()
        return starts

    def check_models(self, pool_config: Any) -> None:
        """Every model named must be in the pool (``pool_config``: a PoolConfig, or any container of names)."""
        names = list(getattr(pool_config, "names", pool_config))
        for li, ci, comp in self.components():
            for model in comp.models:
                if model not in names:
                    pool = getattr(pool_config, "source", "the pool")
                    raise ConfigError(f"model '{model}' is not in {pool}{did_you_mean(model, names)}",
                                      source=self.source, key=f"layers[{li}][{ci}].model")

    # ---- writing -------------------------------------------------------------------------------------
    def to_dict(self, *, full: bool = True) -> dict:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["layers"] = [[c.to_dict(full=full) for c in layer] for layer in self.layers]
        return out

    def to_yaml(self, *, full: bool = True) -> str:
        return yaml.safe_dump(self.to_dict(full=full), sort_keys=False, default_flow_style=None, width=110)

    def fingerprint(self) -> str:
        """Identifies what the architecture computes (not its name): equal for equal layers."""
        blob = json.dumps([[c.to_dict(full=True) for c in layer] for layer in self.layers], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_models(self, model_map: Mapping[str, str]) -> Architecture:
        """The same architecture with model names replaced through ``model_map`` (others unchanged)."""
        import dataclasses

        def remap(c: Component) -> Component:
            fields = {f.name for f in dataclasses.fields(c)}
            if "model" in fields and c.model in model_map:  # type: ignore[attr-defined]
                return dataclasses.replace(c, model=model_map[c.model])  # type: ignore[attr-defined]
            return c

        layers = tuple(tuple(remap(c) for c in layer) for layer in self.layers)
        return Architecture(self.name, layers, self.description, self.source)


# ---- parsing ----------------------------------------------------------------------------------------------
def parse_architecture(data: Any, source: str, *, default_name: str | None = None) -> Architecture:
    root = Node(data, source).mapping(allowed=["name", "description", "layers"], required=["layers"])
    name = root.child("name").str() if root.has("name") else (default_name or Path(source).stem)
    description = root.child("description").str() if root.has("description") else None
    layers = []
    for layer_node in root.child("layers").list(min_len=1):
        specs = [layer_node] if isinstance(layer_node.value, Mapping) else layer_node.list(min_len=1)
        layers.append(tuple(parse_component(spec) for spec in specs))
    arch = Architecture(name=name, layers=tuple(layers), description=description, source=source)
    check_structure(arch)
    return arch


def parse_component(node: Node) -> Component:
    node.mapping(required=["type"])
    type_node = node.child("type")
    cls = component_class(type_node.str(), type_node)
    return cls.parse(node)


def check_structure(arch: Architecture) -> None:
    """What makes an architecture runnable, checked before any call (errors name the key path)."""
    from itas.arch.estimate import walk

    for li, layer in enumerate(arch.layers):
        selectors = [c for c in layer if c.selects]
        if selectors and len(layer) > 1:
            raise ConfigError(f"a {selectors[0].type} selects among the candidates, so it must be alone in its "
                              f"layer; put the other {len(layer) - 1} component(s) in a layer of their own",
                              source=arch.source, key=f"layers[{li}]")
    for li, ci, comp, flow_in, _ in walk(arch, kind="text"):
        if comp.needs_candidates and flow_in.c == 0:
            raise ConfigError(f"a {comp.type} needs candidates, but no earlier layer produces any "
                              f"(start with a generator layer)", source=arch.source, key=f"layers[{li}][{ci}].type")
        if comp.type == "unit_test_evaluator" and flow_in.unit_tests == 0:
            raise ConfigError("a unit_test_evaluator needs unit tests from an earlier layer "
                              "(a unit_test_generator)", source=arch.source, key=f"layers[{li}][{ci}].type")
    from itas.arch.estimate import final_flow

    final = final_flow(arch)
    if final.c == 0:
        raise ConfigError("the last layer leaves no candidate to answer with (end with a layer that keeps or "
                          "produces candidates)", source=arch.source, key="layers")


# ---- loading ----------------------------------------------------------------------------------------------
def shipped_architectures() -> dict[str, Path]:
    from itas.paths import shipped_dir

    folder = shipped_dir("architectures")
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml", ".json")}


def resolve_architecture(ref: str | Path) -> Path:
    """A file path, or the name of a shipped example architecture (``vote5``)."""
    path = Path(ref)
    if path.is_file():
        return path
    shipped = shipped_architectures()
    if str(ref) in shipped:
        return shipped[str(ref)]
    if path.suffix or "/" in str(ref):
        raise ConfigError("file not found", source=str(ref))
    raise ConfigError(f"no architecture file or shipped example named '{ref}'{did_you_mean(str(ref), shipped)}")


def load_architecture(ref: str | Path, *, model_map: Mapping[str, str] | None = None,
                      report: Any = None) -> Architecture:
    """Load an architecture YAML, or an Archon JSON config (``.json``), or a shipped example by name.

    ``model_map`` renames models (Archon's model names to pool names; applied to YAML files too).
    ``report`` (a callable taking one string) receives notices, such as Archon keys that were ignored.
    """
    from itas.config import load_yaml

    path = resolve_architecture(ref)
    if path.suffix == ".json":
        from itas.arch.archon import from_archon

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                              source=str(path)) from None
        arch, notices = from_archon(data, str(path), model_map=model_map)
        for n in notices:
            if report:
                report(n)
        return arch
    arch = parse_architecture(load_yaml(path), str(path))
    return arch.with_models(model_map) if model_map else arch
