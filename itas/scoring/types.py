"""The two values every benchmark and scorer exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("correct", "wrong", "no_answer", "timeout", "crashed")


@dataclass(frozen=True)
class Question:
    """One benchmark item.

    ``id`` is the data's own id where it has one (``HumanEval/0``, MATH's ``unique_id``), else
    ``<benchmark>/<split>/<row>``; ``text`` is the problem as a model should see it (without instructions);
    ``reference`` is what the scorer needs (a gold answer, or tests and an entry point); ``meta`` holds extra
    fields such as ``level`` and ``subject``.
    """

    id: str
    text: str
    reference: Any
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Score:
    """The grade of one output.

    ``status``: ``correct``, ``wrong``, ``no_answer`` (nothing could be extracted), ``timeout`` (grading or the
    program ran out of time) or ``crashed`` (the program died: memory, a signal). ``extracted`` is the final answer
    used (for code: the program); ``detail`` says why, in a few words.
    """

    value: float
    status: str
    extracted: str | None
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"
