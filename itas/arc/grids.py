"""Grids: values, their text form, and reading them back out of model output.

**Text form.** Rows of digits without separators, one row per line (``render_grid``). ARC's two attempts are
written as the first grid, a blank line, the line ``Second attempt:`` and the second grid
(``render_attempts``); only the ``augment_vote`` and ``ttt`` components write a second attempt.

**Reading (``parse_grid``).** The first run of consecutive grid rows in the text: a row is a line holding only
digits, written either together (``0120``) or separated by single spaces or commas (``0 1 2 0``,
``[0, 1, 2, 0],``); the run ends at the first line that is not a row or has a different width. Code fences
and surrounding prose are skipped. A JSON list of lists (``[[0, 1], [2, 0]]``) is read when no row is found.
Whatever follows the grid is ignored, so a model that does not stop after its answer still gets it read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30
SECOND_ATTEMPT = "Second attempt:"

_ROW_SEPARATED = re.compile(r"^\[?\s*\d(?:\s*[ ,]\s*\d)*\s*\]?,?$")
_ROW_PLAIN = re.compile(r"^\d+$")


class GridError(ValueError):
    """A value that is not a grid (ragged, empty, too large, or a colour outside 0-9)."""


def as_grid(value: Iterable[Iterable[int]]) -> Grid:
    """A validated, immutable grid from any nested iterable of ints (lists from JSON, numpy arrays)."""
    rows = tuple(tuple(int(c) for c in row) for row in value)
    if not rows or not rows[0]:
        raise GridError("a grid has at least one row and one column")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise GridError("the rows of a grid must all have the same length")
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise GridError(f"a grid has at most {MAX_SIDE} rows and columns, got {len(rows)}x{width}")
    if any(not 0 <= c <= 9 for r in rows for c in r):
        raise GridError("grid colours are 0-9")
    return rows


def shape(grid: Grid) -> tuple[int, int]:
    return len(grid), len(grid[0])


def render_grid(grid: Grid) -> str:
    return "\n".join("".join(str(c) for c in row) for row in grid)


def render_attempts(grids: Sequence[Grid]) -> str:
    """One or two attempts as one text (the second after a ``Second attempt:`` line)."""
    if not 1 <= len(grids) <= 2:
        raise ValueError("ARC allows one or two attempts")
    text = render_grid(grids[0])
    if len(grids) == 2:
        text += f"\n\n{SECOND_ATTEMPT}\n{render_grid(grids[1])}"
    return text


# ---- reading grids out of text ----------------------------------------------------------------------------
def _row(line: str) -> tuple[int, ...] | None:
    s = line.strip()
    if not s:
        return None
    if _ROW_PLAIN.match(s):
        return tuple(int(c) for c in s)
    if _ROW_SEPARATED.match(s):
        return tuple(int(c) for c in re.findall(r"\d", s))
    return None


def parse_grid(text: str) -> Grid | None:
    """The first grid in ``text`` (see the module's reading rule), or None."""
    if not isinstance(text, str):
        return None
    rows: list[tuple[int, ...]] = []
    for line in text.splitlines():
        row = _row(line)
        if row is None or len(row) > MAX_SIDE or (rows and len(row) != len(rows[0])):
            if rows:
                break
            continue
        rows.append(row)
        if len(rows) == MAX_SIDE:
            break
    if rows:
        return tuple(rows)
    return _json_grid(text)


def _json_grid(text: str) -> Grid | None:
    m = re.search(r"\[\s*\[[\d\s,\[\]]*\]\s*\]", text)
    if not m:
        return None
    try:
        return as_grid(json.loads(m.group(0)))
    except (ValueError, TypeError, GridError):
        return None


def parse_attempts(text: str) -> tuple[Grid | None, Grid | None]:
    """(first attempt, second attempt): the first grid before a ``Second attempt:`` line and the first grid
    after it (None where there is none)."""
    if not isinstance(text, str):
        return None, None
    lines = text.splitlines()
    cut = next((i for i, line in enumerate(lines) if line.strip().lower() == SECOND_ATTEMPT.lower()), None)
    if cut is None:
        return parse_grid(text), None
    return parse_grid("\n".join(lines[:cut])), parse_grid("\n".join(lines[cut + 1:]))


# ---- token counts ------------------------------------------------------------------------------------------
def text_tokens(text: str) -> int:
    """Tokens of a prompt made of grids and a little prose, counted the way SmolLM2's tokenizer spends them on
    grids: one per digit and one per line break; other characters at three per token (rounded up)."""
    digits = sum(c.isdigit() for c in text)
    breaks = text.count("\n")
    return digits + breaks + math.ceil((len(text) - digits - breaks) / 3)


# ---- geometry and colours -------------------------------------------------------------------------------------
def transpose(g: Grid) -> Grid:
    return tuple(zip(*g, strict=True))


def flip_lr(g: Grid) -> Grid:
    """Mirror left-right (each row reversed)."""
    return tuple(row[::-1] for row in g)


def flip_ud(g: Grid) -> Grid:
    """Mirror top-bottom (row order reversed)."""
    return g[::-1]


def rot90(g: Grid) -> Grid:
    """Rotate a quarter turn counter-clockwise (as ``numpy.rot90``)."""
    return flip_ud(transpose(g))


def rot180(g: Grid) -> Grid:
    return flip_ud(flip_lr(g))


def rot270(g: Grid) -> Grid:
    return transpose(flip_ud(g))


def anti_transpose(g: Grid) -> Grid:
    """Mirror about the anti-diagonal."""
    return rot180(transpose(g))


# the dihedral group of the square, by index: (name, transform, index of its inverse)
DIHEDRAL = (
    ("identity", lambda g: g, 0),
    ("rotate_90", rot90, 3),
    ("rotate_180", rot180, 2),
    ("rotate_270", rot270, 1),
    ("flip_horizontal", flip_lr, 4),
    ("flip_vertical", flip_ud, 5),
    ("transpose", transpose, 6),
    ("anti_transpose", anti_transpose, 7),
)
DIHEDRAL_NAMES = tuple(name for name, _, _ in DIHEDRAL)


def dihedral(g: Grid, index: int) -> Grid:
    return DIHEDRAL[index][1](g)


def dihedral_inverse(index: int) -> int:
    return DIHEDRAL[index][2]


IDENTITY_COLOURS = tuple(range(10))


def recolour(g: Grid, mapping: Sequence[int]) -> Grid:
    """Every colour c replaced by ``mapping[c]``."""
    return tuple(tuple(mapping[c] for c in row) for row in g)


def inverse_colours(mapping: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(mapping)
    for c, m in enumerate(mapping):
        inv[m] = c
    return tuple(inv)
