"""An ARC task (demonstration pairs and test pairs) and the text a model sees for one of its test inputs.

```
Input:
0120
Output:
2102

Input:
...
Output:
...

Test input:
0330
Test output:
```

The benchmark's prompt (its definition's ``prompt``) is put around this text. ``leave_one_out`` gives the
test-time-training tasks: each demonstration in turn becomes the test of a task made of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from itas.arc.grids import Grid, as_grid, render_grid


@dataclass(frozen=True)
class Pair:
    input: Grid
    output: Grid

    @classmethod
    def from_json(cls, value: Mapping) -> Pair:
        return cls(as_grid(value["input"]), as_grid(value["output"]))

    def to_json(self) -> dict:
        return {"input": [list(r) for r in self.input], "output": [list(r) for r in self.output]}


@dataclass(frozen=True)
class Task:
    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    @classmethod
    def from_json(cls, task_id: str, value: Mapping) -> Task:
        """A task in ARC's JSON form (``{"train": [{"input", "output"}, ...], "test": [...]}``)."""
        return cls(task_id, tuple(Pair.from_json(p) for p in value["train"]),
                   tuple(Pair.from_json(p) for p in value["test"]))

    def to_json(self) -> dict:
        return {"train": [p.to_json() for p in self.train], "test": [p.to_json() for p in self.test]}

    def leave_one_out(self) -> list[tuple[tuple[Pair, ...], Pair]]:
        return leave_one_out(self.train)


def leave_one_out(train: tuple[Pair, ...]) -> list[tuple[tuple[Pair, ...], Pair]]:
    """(the other demonstrations, the held-out one) for each demonstration held out in turn."""
    return [(train[:i] + train[i + 1:], held) for i, held in enumerate(train)]


def format_problem(train: Iterable[Pair], test_input: Grid) -> str:
    """The text of one problem: the demonstrations, then the test input waiting for its output."""
    blocks = [f"Input:\n{render_grid(p.input)}\nOutput:\n{render_grid(p.output)}" for p in train]
    blocks.append(f"Test input:\n{render_grid(test_input)}\nTest output:")
    return "\n\n".join(blocks)


def pairs_from_meta(value: object) -> tuple[Pair, ...] | None:
    """Demonstrations stored in a question's ``meta`` (a list of ``{"input", "output"}``); None if malformed."""
    if not isinstance(value, (list, tuple)):
        return None
    try:
        return tuple(Pair.from_json(p) for p in value)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Problem:
    """One test input of a task, with the task's demonstrations: what ``augment_vote`` and ``ttt`` work on."""

    task: str
    train: tuple[Pair, ...]
    test_input: Grid


def problem_of(question: object) -> Problem | None:
    """The grid problem of a benchmark question (from its ``meta``: ``train``, ``test_input`` and ``task``), or
    None when the question is not a grid task."""
    meta = getattr(question, "meta", None)
    if not isinstance(meta, Mapping):
        return None
    train = pairs_from_meta(meta.get("train"))
    if not train or "test_input" not in meta:
        return None
    try:
        test_input = as_grid(meta["test_input"])
    except (TypeError, ValueError):
        return None
    return Problem(str(meta.get("task") or getattr(question, "id", "task")), train, test_input)
