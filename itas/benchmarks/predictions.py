"""Grading outputs made elsewhere: a JSONL file of ``{"id": ..., "output": ...}`` lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from itas.benchmarks.benchmark import Benchmark
from itas.config import did_you_mean
from itas.errors import InputError
from itas.scoring import Score


@dataclass(frozen=True)
class Prediction:
    id: str
    output: str
    line: int


@dataclass(frozen=True)
class GradedPrediction:
    id: str
    score: Score


@dataclass(frozen=True)
class PredictionReport:
    benchmark: str
    path: str
    graded: list[GradedPrediction]
    questions: int  # how many questions the benchmark has

    @property
    def accuracy(self) -> float:
        return sum(g.score.value for g in self.graded) / len(self.graded) if self.graded else 0.0

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.graded:
            out[g.score.status] = out.get(g.score.status, 0) + 1
        return out


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read and validate a predictions file; errors name the file, the line and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: predictions file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    predictions: list[Prediction] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{n}: malformed JSON: {exc}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n}: expected an object with keys id and output")
        for key in ("id", "output"):
            if key not in row:
                raise InputError(f"{path}:{n}: missing key '{key}'")
        qid, output = row["id"], row["output"]
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise InputError(f"{path}:{n}: key 'id': expected a string, got {type(qid).__name__}")
        if not isinstance(output, str):
            raise InputError(f"{path}:{n}: key 'output': expected a string, got {type(output).__name__}")
        qid = str(qid)
        if qid in seen:
            raise InputError(f"{path}:{n}: key 'id': '{qid}' appears twice (also on line {seen[qid]})")
        seen[qid] = n
        predictions.append(Prediction(qid, output, n))
    if not predictions:
        raise InputError(f"{path}: no predictions")
    return predictions


def score_predictions(bench: Benchmark, path: str | Path, workers: int | None = None) -> PredictionReport:
    predictions = read_predictions(path)
    known = {q.id for q in bench.questions()}
    for p in predictions:
        if p.id not in known:
            hint = did_you_mean(p.id, known).split(" Allowed:")[0]
            raise InputError(f"{path}:{p.line}: key 'id': benchmark '{bench.name}' has no question '{p.id}'{hint}")
    items = [(bench.question(p.id), p.output) for p in predictions]
    scores = bench.score_many(items, workers=workers)
    graded = [GradedPrediction(p.id, s) for p, s in zip(predictions, scores, strict=True)]
    return PredictionReport(bench.name, str(path), graded, len(known))
