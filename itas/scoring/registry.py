"""A registry keyed by YAML name, with did-you-mean errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from itas.config import did_you_mean
from itas.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = item
            return item

        return add

    def add(self, name: str, item: T) -> None:
        self.register(name)(item)

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str, *, source: str | None = None, key: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}",
                              source=source, key=key) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
