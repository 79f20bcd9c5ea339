"""What a report reads: the trials of a search, from its Optuna study.

Everything comes from the study's trials (their user attributes: kind, status, architecture, metrics and the
per-question scores and usage), so a report can be made from a storage URL alone (``load_study``, the shared
PostgreSQL study of several workers); a results directory (``load_run``) adds its run configuration, its
pool (for the cost unit and for validation) and its call cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.errors import InputError
from itas.search.pareto import pareto_front
from itas.search.store import trial_status

QUESTION_KEYS = ("id", "score", "calls", "prompt_tokens", "completion_tokens", "latency", "cost")


@dataclass(frozen=True)
class QuestionOutcome:
    id: str
    score: float
    calls: int
    prompt_tokens: int
    completion_tokens: int
    latency: float
    cost: float

    @classmethod
    def from_row(cls, row: Sequence) -> QuestionOutcome:
        d = dict(zip(QUESTION_KEYS, row, strict=False))
        return cls(id=str(d["id"]), score=float(d.get("score") or 0.0), calls=int(d.get("calls") or 0),
                   prompt_tokens=int(d.get("prompt_tokens") or 0),
                   completion_tokens=int(d.get("completion_tokens") or 0), latency=float(d.get("latency") or 0.0),
                   cost=float(d.get("cost") or 0.0))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the report sees it (read from an Optuna FrozenTrial; never changed afterwards)."""

    number: int
    state: str  # Optuna's: COMPLETE, FAIL, RUNNING, ...
    kind: str  # baseline | enqueued | sampled
    status: str  # evaluated | infeasible | duplicate | failed | running | ...
    values: tuple[float, ...] | None  # accuracy, latency p50, cost per query
    metrics: dict = field(hash=False)
    architecture: dict | None = field(hash=False)
    description: str = ""
    fingerprint: str = ""
    questions: tuple[QuestionOutcome, ...] = ()
    duplicate_of: int | None = None
    reason: str = ""

    @property
    def evaluated(self) -> bool:
        return self.state == "COMPLETE" and self.status == "evaluated"

    @property
    def accuracy(self) -> float:
        return float(self.metrics.get("accuracy", self.values[0] if self.values else 0.0))

    @property
    def latency_p50(self) -> float:
        return float(self.metrics.get("latency_p50", self.values[1] if self.values else 0.0))

    @property
    def latency_p95(self) -> float:
        return float(self.metrics.get("latency_p95", 0.0))

    @property
    def cost(self) -> float:
        return float(self.metrics.get("cost_per_query", self.values[2] if self.values else 0.0))

    @property
    def calls(self) -> float:
        return float(self.metrics.get("calls_per_query", 0.0))

    def objective(self, name: str) -> float:
        """accuracy | latency | cost | calls (per query)."""
        return {"accuracy": self.accuracy, "latency": self.latency_p50, "cost": self.cost,
                "calls": self.calls}[name]

    def scores(self) -> dict[str, float]:
        return {q.id: q.score for q in self.questions}

    @classmethod
    def from_frozen(cls, t: Any) -> TrialRecord:
        ua = t.user_attrs
        state = t.state.name
        status = trial_status(t)
        dup = ua.get("duplicate_of")
        return cls(number=t.number, state=state, kind=ua.get("itas_kind", ""), status=status,
                   values=tuple(float(v) for v in t.values) if t.values else None,
                   metrics=dict(ua.get("metrics") or {}), architecture=ua.get("architecture"),
                   description=ua.get("description", ""), fingerprint=ua.get("fingerprint", ""),
                   questions=tuple(QuestionOutcome.from_row(q) for q in ua.get("questions") or ()),
                   duplicate_of=int(dup) if dup not in (None, "") else None, reason=ua.get("reason", ""))


@dataclass(frozen=True)
class RunData:
    """A search's trials, with what its results directory adds when there is one."""

    label: str
    trials: tuple[TrialRecord, ...]
    config: dict = field(hash=False)
    run_dir: Path | None = None
    cost_unit: str = "cost"
    study_name: str = ""
    storage: str = ""

    def evaluated(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.evaluated]

    def front(self) -> list[TrialRecord]:
        """The non-dominated evaluated trials (accuracy up, latency p50 and cost down), by trial number."""
        ev = self.evaluated()
        return [ev[i] for i in pareto_front([t.values for t in ev])]

    def baselines(self) -> list[TrialRecord]:
        """The single-call baseline of each pool model (evaluated; a duplicate resolves to its original)."""
        out, seen = [], set()
        for t in self.trials:
            if t.kind != "baseline" or t.state != "COMPLETE":
                continue
            t = self.resolve(t)
            if t.evaluated and t.number not in seen:
                seen.add(t.number)
                out.append(t)
        return out

    def best_baseline(self) -> TrialRecord | None:
        """The best single call: highest accuracy, ties to the cheaper, then the earlier."""
        base = self.baselines()
        return min(base, key=lambda t: (-t.accuracy, t.cost, t.number)) if base else None

    def resolve(self, t: TrialRecord) -> TrialRecord:
        """A duplicate trial's original evaluation (the trial itself otherwise)."""
        if t.status == "duplicate" and t.duplicate_of is not None:
            original = self.trial(t.duplicate_of, strict=False)
            if original is not None:
                return original
        return t

    def trial(self, number: int, *, strict: bool = True) -> TrialRecord | None:
        for t in self.trials:
            if t.number == number:
                return t
        if strict:
            numbers = [t.number for t in self.evaluated()]
            shown = ", ".join(map(str, numbers[:30])) + (" ..." if len(numbers) > 30 else "")
            raise InputError(f"{self.label}: no trial {number}; evaluated trials: {shown or 'none'}")
        return None

    def question_ids(self) -> list[str]:
        """The search's subset: from the run configuration, else from the first evaluated trial."""
        ids = self.config.get("question_ids")
        if ids:
            return [str(i) for i in ids]
        ev = self.evaluated()
        return [q.id for q in ev[0].questions] if ev else []

    @property
    def benchmark(self) -> str:
        return str(self.config.get("benchmark") or "?")


# ---- loading ----------------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path) -> RunData:
    """A search's results directory: its configuration, then its trials from the study it names."""
    from itas.search import store

    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"{path}: no such results directory; give a directory written by itas search")
    config = store.read_config(path)
    if config is None:
        raise InputError(f"{path}: not a search results directory (no {store.CONFIG}); give a directory "
                         f"written by itas search")
    if config.get("kind") not in (None, "search"):
        raise InputError(f"{path}: holds a '{config.get('kind')}' run, not a search")
    if not config.get("study_name"):
        raise InputError(f"{path}: the search never started (no study recorded in {store.CONFIG})")
    storage = config.get("storage") or f"sqlite:///{(path / 'study.db').resolve()}"
    if not config.get("storage") and not (path / "study.db").exists():
        raise InputError(f"{path}: study.db is missing; the trials of this search cannot be read")
    trials = _with_training(_read_trials(storage, config["study_name"], where=str(path)), path)
    return RunData(label=path.name, trials=trials, config=config, run_dir=path, cost_unit=_cost_unit(path),
                   study_name=config["study_name"], storage=storage)


TRAIN_KEYS = ("train_cost_per_query", "train_latency_per_query")


def _with_training(trials: tuple[TrialRecord, ...], run_dir: Path) -> tuple[TrialRecord, ...]:
    """Trials of ``ttt`` architectures whose metrics lack test-time training's share (searches made before it
    was stored) get it from their ``trials/<n>/questions.jsonl``: the calls of kind ``train``."""
    import dataclasses

    from itas.report.ttt import uses_ttt

    out = []
    for t in trials:
        if t.evaluated and uses_ttt(t.architecture) and not all(k in t.metrics for k in TRAIN_KEYS):
            found = training_of_folder(run_dir / "trials" / str(t.number) / "questions.jsonl")
            if found is not None:
                t = dataclasses.replace(t, metrics={**t.metrics, **found})
        out.append(t)
    return tuple(out)


def training_of_folder(questions_jsonl: Path) -> dict | None:
    """``train_cost_per_query`` and ``train_latency_per_query`` from a trial's call records (None when the file
    is missing or holds no call records)."""
    from itas.arch.result import training_latency

    try:
        lines = questions_jsonl.read_text().splitlines()
    except OSError:
        return None
    costs, latencies = [], []
    for line in lines:
        try:
            q = json.loads(line)
            if q.get("error") is not None or "call_records" not in q:
                continue
            calls = [_CallView(c) for c in q["call_records"]]
        except (ValueError, TypeError, AttributeError, KeyError):
            continue
        costs.append(sum(c.cost for c in calls if c.kind == "train"))
        latencies.append(training_latency(calls))
    if not costs:
        return None
    return {"train_cost_per_query": sum(costs) / len(costs), "train_latency_per_query": sum(latencies) / len(latencies)}


class _CallView:
    """The fields of a recorded call that the critical path reads."""

    __slots__ = ("layer", "component", "chain", "latency", "cost", "kind")

    def __init__(self, d: dict):
        self.layer, self.component, self.chain = int(d["layer"]), int(d["component"]), int(d.get("chain") or 0)
        self.latency, self.cost = float(d.get("latency") or 0.0), float(d.get("cost") or 0.0)
        self.kind = str(d.get("kind") or "chat")


def load_study(storage: str, study_name: str) -> RunData:
    """A study read from its storage URL alone (no results directory: no pool file, no validation)."""
    trials = _read_trials(storage, study_name, where=storage)
    config: dict = {"study_name": study_name, "storage": storage}
    try:
        import optuna

        attrs = optuna.load_study(study_name=study_name, storage=storage).user_attrs
        config.update(attrs.get("itas_config") or {})
    except Exception:  # user attributes are extras
        pass
    return RunData(label=study_name, trials=trials, config=config, run_dir=None,
                   cost_unit=str(config.get("cost_unit") or "cost"), study_name=study_name, storage=storage)


def _read_trials(storage: str, study_name: str, *, where: str) -> tuple[TrialRecord, ...]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = _study_names(storage)
        raise InputError(f"{where}: no study named '{study_name}' in the storage"
                         + (f"; studies there: {', '.join(names)}" if names else "")) from None
    except Exception as exc:
        raise InputError(f"{where}: cannot open the study storage ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})") from None
    return tuple(TrialRecord.from_frozen(t) for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number))


def _study_names(storage: str) -> list[str]:
    try:
        import optuna

        return [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
    except Exception:
        return []


def _cost_unit(run_dir: Path) -> str:
    """USD for a priced pool, tokens otherwise (the pool the search used: pool.yaml, else the default)."""
    try:
        return pool_config_of(run_dir).cost_unit
    except Exception:
        return "cost"


def pool_config_of(run_dir: Path):
    """The pool the search used: its pool.yaml, or the embedded default pool when none was given."""
    from itas.pool.config import load_pool

    path = run_dir / "pool.yaml"
    return load_pool(path if path.exists() else None)


def cache_path_of(run: RunData) -> Path:
    """The call cache the search used."""
    if run.config.get("cache"):
        return Path(run.config["cache"])
    if run.run_dir is None:
        raise InputError(f"{run.label}: no results directory, so no call cache; give the results directory")
    return run.run_dir / "calls.sqlite"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); remove it to recompute") from None
