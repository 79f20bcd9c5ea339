"""Hand-made trials (no study, no server) for pure tests of the report's content."""

from __future__ import annotations

from itas.report.source import QuestionOutcome, RunData, TrialRecord


def arch(model: str, samples: int = 1) -> dict:
    return {"name": f"{model}x{samples}", "layers": [[{"type": "generator", "model": model, "samples": samples}]]}


def trial(number: int, scores: list[float], latency: float, cost: float, *, kind: str = "sampled",
          status: str = "evaluated", calls: float = 1.0, model: str = "smollm2", samples: int = 1,
          duplicate_of: int | None = None) -> TrialRecord:
    acc = sum(scores) / len(scores) if scores else 0.0
    qs = tuple(QuestionOutcome(f"q{i}", s, int(calls), 10, 5, latency, cost) for i, s in enumerate(scores))
    return TrialRecord(number=number, state="COMPLETE", kind=kind, status=status, values=(acc, latency, cost),
                       metrics={"accuracy": acc, "latency_p50": latency, "latency_p95": latency * 1.5,
                                "cost_per_query": cost, "calls_per_query": calls},
                       architecture=arch(model, samples), description=f"{model}x{samples}",
                       fingerprint=f"fp-{model}-{samples}", questions=qs if status == "evaluated" else (),
                       duplicate_of=duplicate_of)


def run(trials: list[TrialRecord], label: str = "synthetic") -> RunData:
    ids = [q.id for q in trials[0].questions]
    return RunData(label=label, trials=tuple(trials), config={"benchmark": "gsm8k", "question_ids": ids},
                   cost_unit="USD")
