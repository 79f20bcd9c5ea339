"""Exact match of normalised text (the default for custom benchmarks)."""

from __future__ import annotations

from itas.scoring.base import Scorer, register_scorer
from itas.scoring.extract import normalize_text
from itas.scoring.types import Question, Score


@register_scorer
class ExactMatchScorer(Scorer):
    """The extracted answer equals the reference (or one of a list of references) after normalisation
    (case, surrounding whitespace and $, a trailing full stop)."""

    name = "exact_match"
    kind = "text"
    default_extractor = "text_answer"

    def score(self, q: Question, output: str) -> Score:
        refs = q.reference if isinstance(q.reference, list) else [q.reference]
        golds = {normalize_text(str(r)) for r in refs}
        try:
            extracted = self.extract(output)
        except Exception as exc:  # noqa: BLE001
            return Score(0.0, "no_answer", None, f"extraction failed: {exc}")
        if extracted is None:
            return Score(0.0, "no_answer", None, "no answer found")
        if normalize_text(extracted) in golds:
            return Score(1.0, "correct", extracted)
        return Score(0.0, "wrong", extracted)
