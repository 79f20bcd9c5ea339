"""Parsing helpers shared by every YAML format: load with the file name, walk with a key path, and
fail with a one-line message that names the file, the key and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from itas.errors import ConfigError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} Allowed: {', '.join(choices)}" if choices else hint


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML{where}: {problem}", source=str(path)) from None


class Node:
    """A value inside a parsed YAML document, with its file and key path, for precise errors."""

    def __init__(self, value: Any, source: str, path: str = ""):
        self.value = value
        self.source = source
        self.path = path

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.path or "(top level)")

    def child(self, key: str | int) -> Node:
        if isinstance(key, int):
            sub = f"{self.path}[{key}]"
        else:
            sub = f"{self.path}.{key}" if self.path else str(key)
        value = self.value[key] if isinstance(self.value, (Mapping, list)) else None
        return Node(value, self.source, sub)

    # ---- shape checks -------------------------------------------------------------------------
    def mapping(self, allowed: Iterable[str] | None = None, required: Iterable[str] = ()) -> Node:
        if not isinstance(self.value, Mapping):
            raise self.error(f"expected a mapping, got {type_name(self.value)}")
        for key in self.value:
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {key!r}")
        if allowed is not None:
            allowed = list(allowed)
            for key in self.value:
                if key not in allowed:
                    raise Node(None, self.source, self._sub(key)).error(
                        f"unknown key '{key}'{did_you_mean(key, allowed)}"
                    )
        for key in required:
            if key not in self.value:
                raise self.error(f"missing required key '{key}'")
        return self

    def _sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return isinstance(self.value, Mapping) and key in self.value and self.value[key] is not None

    def items(self) -> list[tuple[str, Node]]:
        return [(k, self.child(k)) for k in self.value]

    def list(self, min_len: int = 0) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {type_name(self.value)}")
        if len(self.value) < min_len:
            raise self.error(f"expected at least {min_len} item(s), got {len(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    def str(self, choices: Iterable[str] | None = None) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.error(f"expected a non-empty string, got {type_name(self.value)}")
        if choices is not None:
            choices = list(choices)
            if self.value not in choices:
                raise self.error(f"'{self.value}' is not allowed{did_you_mean(self.value, choices)}")
        return self.value

    def int(self, min: int | None = None, max: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.error(f"expected an integer, got {type_name(self.value)} {self.value!r}")
        self._range(self.value, min, max)
        return self.value

    def float(self, min: float | None = None, max: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.error(f"expected a number, got {type_name(self.value)} {self.value!r}")
        self._range(self.value, min, max)
        return float(self.value)

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got {type_name(self.value)} {self.value!r}")
        return self.value

    def _range(self, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self.error(f"{value} is too small; must be at least {lo}")
        if hi is not None and value > hi:
            raise self.error(f"{value} is too large; must be at most {hi}")


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
            bool: "a boolean"}.get(type(value), type(value).__name__)
