"""Prompt templates: text files in ``itas/components/prompts/``, one per prompt.

The first line of each file is a ``#`` comment saying what the prompt asks; it is not sent. Placeholders are
``$name`` (``string.Template``), so braces in questions, code and candidates need no escaping.
"""

from __future__ import annotations

import functools
import string
from importlib import resources


@functools.cache
def template(name: str) -> string.Template:
    text = resources.files("itas.components").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("#"):
        raise ValueError(f"prompt template {name}.txt must start with a '#' line saying what it asks")
    return string.Template(body.strip("\n"))


def render(name: str, **values: object) -> str:
    return template(name).substitute({k: str(v) for k, v in values.items()})


def purpose(name: str) -> str:
    """The template's first line, without the '#': what the prompt asks."""
    text = resources.files("itas.components").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return text.partition("\n")[0].lstrip("#").strip()


def template_names() -> list[str]:
    folder = resources.files("itas.components").joinpath("prompts")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
