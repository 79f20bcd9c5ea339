"""Answer extraction and scoring: pure extractors, and scorers keyed by the name a benchmark definition uses.

Registries: :data:`EXTRACTORS` (output -> normalised final answer) and :data:`SCORERS` (scorer classes).
Built-in scorers: ``numeric`` (GSM8K), ``math_verify`` (MATH), ``exact_match`` (text), ``humaneval_tests``,
``python_asserts`` (MBPP and custom code benchmarks), ``evalplus_tests`` (HumanEval+), ``arc_grid`` (ARC's exact match
with two attempts, in ``itas.arc.scoring``).
"""

import itas.arc.scoring  # noqa: F401 - registers the ARC extractor and scorer (arc_grid)
from itas.scoring import code, mathverify, numeric, text  # noqa: F401 - they register their scorers
from itas.scoring.base import SCORERS, Scorer, register_scorer
from itas.scoring.extract import EXTRACTORS, Extractor
from itas.scoring.types import STATUSES, Question, Score

__all__ = ["EXTRACTORS", "SCORERS", "STATUSES", "Extractor", "Question", "Score", "Scorer", "register_scorer"]
