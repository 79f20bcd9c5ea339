"""The one registry of component types, keyed by the YAML ``type``."""

from __future__ import annotations

from itas.config import Node, did_you_mean
from itas.errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a ``Component`` subclass available under its ``type``."""
    name = getattr(cls, "type", "")
    if not name:
        raise TypeError(f"{cls.__name__} has no 'type'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"component type '{name}' is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def component_types() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def component_class(name: str, node: Node | None = None) -> type:
    """The class registered as ``name``; an unknown name is a ConfigError with a did-you-mean."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        message = f"unknown component type '{name}'{did_you_mean(name, _REGISTRY)}"
        if node is not None:
            raise node.error(message) from None
        raise ConfigError(message) from None


def _load_builtins() -> None:
    import itas.components  # noqa: F401  (its import registers the built-in types)
