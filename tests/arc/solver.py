"""A scripted "model" for grid prompts: it reads the demonstrations and the test input out of a prompt (in the
format of ``itas.arc.task.format_problem``) and finds the rotation/reflection plus colour mapping they follow, so
it answers any task of the synthetic family correctly in whatever frame an augmentation shows it."""

from __future__ import annotations

import re

from itas.arc.grids import Grid, dihedral, parse_grid, render_grid

_BLOCK = re.compile(r"Input:\n([\d\n]+?)\nOutput:\n([\d\n]+?)(?:\n\n|$)")
_TEST = re.compile(r"Test input:\n([\d\n]+?)\nTest output:")


def read_prompt(text: str) -> tuple[list[tuple[Grid, Grid]], Grid]:
    pairs = [(parse_grid(a), parse_grid(b)) for a, b in _BLOCK.findall(text.split("Test input:")[0] + "\n\n")]
    return pairs, parse_grid(_TEST.search(text).group(1))


def solve(text: str) -> Grid | None:
    pairs, test = read_prompt(text)
    for d in range(8):
        mapping: dict[int, int] = {}
        ok = True
        for a, b in pairs:
            t = dihedral(a, d)
            if (len(t), len(t[0])) != (len(b), len(b[0])):
                ok = False
                break
            for ra, rb in zip(t, b, strict=True):
                for x, y in zip(ra, rb, strict=True):
                    if mapping.setdefault(x, y) != y:
                        ok = False
            if not ok:
                break
        if ok:
            return tuple(tuple(mapping.get(c, c) for c in row) for row in dihedral(test, d))
    return None


def prompt_text(messages: list[dict]) -> str:
    return str(messages[-1]["content"])


def solver_script(model, messages, params, index) -> str:
    """Always right (in the prompt's own frame), then rambles on as a model that did not learn to stop."""
    answer = solve(prompt_text(messages))
    return render_grid(answer) + "\n\nInput:\n12" if answer is not None else "no idea"


def copy_script(model, messages, params, index) -> str:
    """Always wrong: repeats the test input."""
    return render_grid(read_prompt(prompt_text(messages))[1])
