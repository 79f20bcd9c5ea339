"""Numeric answers (GSM8K): the extracted number equals the gold number exactly (as fractions)."""

from __future__ import annotations

from itas.scoring.base import Scorer, register_scorer
from itas.scoring.extract import format_number, parse_number
from itas.scoring.types import Question, Score


@register_scorer
class NumericScorer(Scorer):
    """The final number equals the reference (commas, signs, decimals, fractions, units and $ handled)."""

    name = "numeric"
    kind = "math"
    default_extractor = "gsm8k_number"

    def score(self, q: Question, output: str) -> Score:
        gold = parse_number(str(q.reference))
        if gold is None:
            return Score(0.0, "wrong", None, f"the reference {q.reference!r} is not a number")
        try:
            extracted = self.extract(output)
        except Exception as exc:  # noqa: BLE001 - a broken extractor must not crash a trial
            return Score(0.0, "no_answer", None, f"extraction failed: {exc}")
        if extracted is None:
            return Score(0.0, "no_answer", None, "no number found")
        value = parse_number(extracted)
        if value == gold:
            return Score(1.0, "correct", extracted)
        return Score(0.0, "wrong", extracted, f"expected {format_number(gold)}")
