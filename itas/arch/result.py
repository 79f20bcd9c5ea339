"""What running an architecture on questions gives: per-question records and aggregate metrics.

Metrics: **accuracy** is the mean score over all questions, a failed question scoring 0. Per-query latency,
cost, calls and tokens are over the questions that completed. **Latency** is the per-query critical path:
the sum over layers of the slowest component's path, where a component's path is the longest of its chains
of calls (calls of one chain ran one after another: a verifier's reasoning then verdict), and each call's
time is the pool's modelled latency (``Pool.call_latency``). The measured wall time of each query (first call
to final state, scoring excluded) is recorded too. Cost is the sum of ``Pool.cost`` over the calls (money
for a priced pool, else tokens); cached calls count at their recorded tokens. Of these, the share of test-time
training (calls of kind ``train``) is kept apart: its cost, and what it adds to the critical path (the path
with the training calls less the path without them).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.arch.context import CallRecord
from itas.fsutil import atomic_write


def critical_path(calls: Iterable[CallRecord]) -> float:
    chains: dict[tuple[int, int, int], float] = defaultdict(float)
    for c in calls:
        chains[(c.layer, c.component, c.chain)] += c.latency
    components: dict[tuple[int, int], float] = defaultdict(float)
    for (layer, comp, _), t in chains.items():
        components[(layer, comp)] = max(components[(layer, comp)], t)
    layers: dict[int, float] = defaultdict(float)
    for (layer, _), t in components.items():
        layers[layer] = max(layers[layer], t)
    return sum(layers.values())


def training_latency(calls: Sequence[CallRecord]) -> float:
    """Seconds of the critical path that test-time training (calls of kind ``train``) accounts for."""
    if not any(c.kind == "train" for c in calls):
        return 0.0
    return critical_path(calls) - critical_path(c for c in calls if c.kind != "train")


@dataclass(frozen=True)
class QuestionRecord:
    id: str
    status: str  # the benchmark's score status, or "failed"
    score: float
    output: str | None  # the final answer: the first candidate of the final state
    extracted: Any = None
    detail: Any = None
    error: str | None = None  # why it failed
    latency: float = 0.0  # modelled critical path, seconds
    wall_time: float = 0.0  # measured, seconds
    layer_wall_times: tuple[float, ...] = ()
    cost: float = 0.0
    fallbacks: dict[str, int] = field(default_factory=dict)
    truncations: int = 0
    final_state: dict | None = None
    calls: tuple[CallRecord, ...] = ()

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    @property
    def train_cost(self) -> float:
        """The cost of its test-time training calls (kind ``train``)."""
        return sum(c.cost for c in self.calls if c.kind == "train")

    @property
    def train_latency(self) -> float:
        """What test-time training adds to the critical path: the path with and without the training calls."""
        return training_latency(self.calls)

    def layer_calls(self, layer: int) -> list[CallRecord]:
        return [c for c in self.calls if c.layer == layer]

    def to_dict(self) -> dict:
        return {
            "id": self.id, "status": self.status, "score": self.score, "output": self.output,
            "extracted": jsonable(self.extracted), "detail": jsonable(self.detail), "error": self.error,
            "latency": self.latency, "wall_time": self.wall_time, "layer_wall_times": list(self.layer_wall_times),
            "calls": self.n_calls, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cost": self.cost, "fallbacks": dict(self.fallbacks),
            "truncations": self.truncations, "final_state": self.final_state,
            "call_records": [c.to_dict() for c in self.calls],
        }


@dataclass(frozen=True)
class RunMetrics:
    n_questions: int
    n_failed: int
    accuracy: float
    latency_p50: float
    latency_p95: float
    wall_p50: float
    wall_p95: float
    cost_per_query: float
    calls_per_query: float
    tokens_per_query: float
    prompt_tokens_per_query: float
    completion_tokens_per_query: float
    total_cost: float
    total_calls: int
    cached_calls: int
    fallbacks: int
    fallbacks_by_kind: dict[str, int]
    truncations: int
    cost_unit: str
    train_cost_per_query: float = 0.0  # of cost_per_query: test-time training
    train_latency_per_query: float = 0.0  # mean seconds of the critical path spent training

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def training(self) -> dict[str, float]:
        """Test-time training's share (``train_cost_per_query``, ``train_latency_per_query``), when there was
        any: what a search stores with a trial's metrics for ``itas report``."""
        if not (self.train_cost_per_query or self.train_latency_per_query):
            return {}
        return {"train_cost_per_query": self.train_cost_per_query,
                "train_latency_per_query": self.train_latency_per_query}


@dataclass(frozen=True)
class RunResult:
    architecture: str
    benchmark: str
    questions: tuple[QuestionRecord, ...]
    cost_unit: str = "tokens"
    elapsed: float = 0.0  # measured seconds of the whole run

    def metrics(self) -> RunMetrics:
        qs = self.questions
        done = [q for q in qs if not q.failed]
        fallbacks: Counter = Counter()
        for q in qs:
            fallbacks.update(q.fallbacks)
        lat = sorted(q.latency for q in done)
        wall = sorted(q.wall_time for q in done)
        n = len(done)
        return RunMetrics(
            n_questions=len(qs), n_failed=len(qs) - n,
            accuracy=sum(q.score for q in qs) / len(qs) if qs else 0.0,
            latency_p50=percentile(lat, 50), latency_p95=percentile(lat, 95),
            wall_p50=percentile(wall, 50), wall_p95=percentile(wall, 95),
            cost_per_query=_mean(q.cost for q in done), calls_per_query=_mean(q.n_calls for q in done),
            tokens_per_query=_mean(q.prompt_tokens + q.completion_tokens for q in done),
            prompt_tokens_per_query=_mean(q.prompt_tokens for q in done),
            completion_tokens_per_query=_mean(q.completion_tokens for q in done),
            total_cost=sum(q.cost for q in qs), total_calls=sum(q.n_calls for q in qs),
            cached_calls=sum(c.cached for q in qs for c in q.calls),
            fallbacks=sum(fallbacks.values()), fallbacks_by_kind=dict(sorted(fallbacks.items())),
            truncations=sum(q.truncations for q in qs), cost_unit=self.cost_unit,
            train_cost_per_query=_mean(q.train_cost for q in done),
            train_latency_per_query=_mean(q.train_latency for q in done))

    def to_dict(self, *, questions: bool = True) -> dict:
        out = {"architecture": self.architecture, "benchmark": self.benchmark, "elapsed": self.elapsed,
               "metrics": self.metrics().to_dict()}
        if questions:
            out["questions"] = [q.to_dict() for q in self.questions]
        return out


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def jsonable(value: Any) -> Any:
    """Make a score's ``extracted``/``detail`` JSON-safe (dataclasses become dicts, the unknown a string)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


# ---- writing a run's outputs --------------------------------------------------------------------------------
def write_run(out_dir: str | Path, result: RunResult, arch: Any, *, extra: dict | None = None) -> Path:
    """Write ``questions.jsonl`` (one record per question, with its calls), ``metrics.json`` and
    ``architecture.yaml`` (the resolved architecture, every parameter written) into ``out_dir``; each file
    atomically (written aside, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in result.questions)
    atomic_write(out / "questions.jsonl", lines)
    metrics = {**result.to_dict(questions=False), **(extra or {})}
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    atomic_write(out / "architecture.yaml", arch.to_yaml(full=True))
    return out



