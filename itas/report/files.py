"""Atomic writes of report files (``itas.fsutil``): plots, pages and picked architectures are never half written."""

from __future__ import annotations

from pathlib import Path

from itas.fsutil import atomic_path, atomic_write

__all__ = ["atomic_path", "write_text"]


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, text)
