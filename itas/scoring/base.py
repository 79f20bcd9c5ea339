"""The scorer contract and its registry.

A scorer is created once per loaded benchmark from the definition's ``scorer:`` entry (a name, or a mapping with
``name`` and options) and grades outputs against a question's reference. ``score`` is thread-safe, may run
subprocesses, and never raises because of what a model wrote: bad output is a ``wrong``/``no_answer``/``timeout``/
``crashed`` score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from itas.config import Node
from itas.errors import InputError
from itas.scoring.extract import Extractor
from itas.scoring.registry import Registry
from itas.scoring.types import Question, Score


class Scorer(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]  # "math" | "code" | "text"
    default_extractor: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}  # option name -> default value (its type is checked)

    def __init__(self, extract: Extractor, options: dict[str, Any] | None = None, cache_dir: Path | None = None):
        self.extract = extract
        self.opts = {**self.options, **(options or {})}
        self.cache_dir = cache_dir

    @classmethod
    def parse_options(cls, node: Node) -> dict[str, Any]:
        """Validate the options of a definition's ``scorer:`` mapping (all but ``name``)."""
        node.mapping(allowed=["name", *cls.options])
        parsed = {}
        for key, default in cls.options.items():
            if not node.has(key):
                continue
            child = node.child(key)
            if isinstance(default, bool):
                parsed[key] = child.bool()
            elif isinstance(default, int):
                parsed[key] = child.int(min=0)
            elif isinstance(default, float):
                parsed[key] = child.float(min=0)
            else:
                parsed[key] = child.str()
        return parsed

    @abstractmethod
    def score(self, q: Question, output: str) -> Score:
        """Grade one output. Thread-safe; never raises because of the output's content."""

    def prepare(self, questions: Iterable[Question]) -> None:  # noqa: B027 - optional, nothing to do by default
        """Do once-per-question work ahead of scoring (e.g. measure reference solutions); optional."""

    def run_tests(self, q: Question, code: str, tests: list[str]) -> list[bool]:
        raise InputError(f"the '{self.name}' scorer does not execute tests (only code benchmarks do)")

    def describe(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else self.name


SCORERS: Registry[type[Scorer]] = Registry("scorer")


def register_scorer(cls: type[Scorer]) -> type[Scorer]:
    SCORERS.add(cls.name, cls)
    return cls
