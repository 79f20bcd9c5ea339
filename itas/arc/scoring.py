"""ARC's extractor and scorer (registered in ``itas.scoring``).

- extractor ``arc_grid``: the first attempt's grid (``itas.arc.grids.parse_grid``) as rows of digits, the form
  votes compare.
- scorer ``arc_grid``: exact match of the test output grid, with ARC's rule of two attempts: correct when the
  first attempt, or the second attempt written after a ``Second attempt:`` line, equals the reference exactly
  (shape and every cell). ``no_answer`` when no grid can be read.
"""

from __future__ import annotations

from itas.arc.grids import Grid, GridError, as_grid, parse_attempts, parse_grid, render_grid
from itas.scoring.base import Scorer, register_scorer
from itas.scoring.extract import EXTRACTORS
from itas.scoring.types import Question, Score


def extract_grid(output: str) -> str | None:
    """The first attempt's grid as rows of digits, or None."""
    first, _ = parse_attempts(output)
    return render_grid(first) if first is not None else None


EXTRACTORS.add("arc_grid", extract_grid)


def reference_grid(reference: object) -> Grid | None:
    """The reference as a grid: rows of digits (text), or a list of lists."""
    if isinstance(reference, str):
        return parse_grid(reference)
    try:
        return as_grid(reference)  # type: ignore[arg-type]
    except (GridError, TypeError, ValueError):
        return None


@register_scorer
class ArcGridScorer(Scorer):
    """Exact match of the output grid; two attempts, as ARC allows."""

    name = "arc_grid"
    kind = "text"
    default_extractor = "arc_grid"

    def score(self, q: Question, output: str) -> Score:
        gold = reference_grid(q.reference)
        if gold is None:
            return Score(0.0, "wrong", None, "the reference is not a grid")
        try:
            first, second = parse_attempts(output)
        except Exception as exc:  # noqa: BLE001 - model output never breaks scoring
            return Score(0.0, "no_answer", None, f"extraction failed: {exc}")
        if first is None and second is None:
            return Score(0.0, "no_answer", None, "no grid found")
        extracted = render_grid(first) if first is not None else None
        if first == gold:
            return Score(1.0, "correct", extracted, "first attempt")
        if second == gold:
            return Score(1.0, "correct", extracted, "second attempt")
        return Score(0.0, "wrong", extracted, _why(gold, first, second))


def _why(gold: Grid, *attempts: Grid | None) -> str:
    parts = []
    for n, g in enumerate(attempts, 1):
        if g is None:
            continue
        if (len(g), len(g[0])) != (len(gold), len(gold[0])):
            parts.append(f"attempt {n}: shape {len(g)}x{len(g[0])}, expected {len(gold)}x{len(gold[0])}")
        else:
            wrong = sum(a != b for ra, rb in zip(g, gold, strict=True) for a, b in zip(ra, rb, strict=True))
            parts.append(f"attempt {n}: {wrong} of {len(gold) * len(gold[0])} cells differ")
    return "; ".join(parts)
