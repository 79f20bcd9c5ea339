"""What test-time training bought and what it cost, for runs whose architectures use ``ttt`` components.

**What it cost.** A ``ttt`` component records its training as one call of kind ``train`` (its cost: 3 x the
tokens trained on, at the model's input price; its latency: the measured training time, on the path of the
component's slowest samples; see ``itas.components.ttt``). Per trial the report shows the training's share of
the cost per query (``train_cost_per_query`` of ``cost_per_query``) and of the latency (what the training adds
to the critical path, ``train_latency_per_query``, of the mean per-query latency). A search stores both with
the trial's metrics; for runs made before that, ``itas.report.source`` reads them from the trial's
``questions.jsonl`` (its call records).

**What it bought.** Each evaluated ``ttt`` architecture is compared with *the same architecture without
test-time training*: every ``ttt`` component replaced by what the search space's ``ttt`` stage turned into it,
a ``generator`` (same model, samples, temperature, max_tokens) or, when it votes over augmentations, an
``augment_vote`` (the same plus augmentations, transforms, seed). When that architecture was evaluated too (its
fingerprint matches a trial's), the row shows both side by side and the paired test of their accuracy on the
same questions. Since a search need not have sampled that counterpart, the section also gives the most accurate
architecture with and without ``ttt`` (ties: cheaper) side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from itas.report.source import TrialRecord
from itas.report.stats import REPLICATES, PairedTest, paired_test

GENERATOR_KEYS = ("model", "samples", "temperature", "max_tokens")
AUGMENT_KEYS = (*GENERATOR_KEYS, "augmentations", "transforms", "seed")


def uses_ttt(architecture: dict | None) -> bool:
    return bool(architecture) and any(isinstance(c, dict) and c.get("type") == "ttt"
                                      for layer in architecture.get("layers") or () for c in _specs(layer))


def _specs(layer) -> list:
    return [layer] if isinstance(layer, dict) else list(layer or ())


def without_ttt(architecture: dict) -> dict:
    """The architecture with every ``ttt`` component replaced by its generator (or augment_vote) equivalent."""
    def plain(spec: dict) -> dict:
        if spec.get("type") != "ttt":
            return spec
        if int(spec.get("augmentations") or 0) >= 1:
            return {"type": "augment_vote", **{k: spec[k] for k in AUGMENT_KEYS if k in spec}}
        return {"type": "generator", **{k: spec[k] for k in GENERATOR_KEYS if k in spec}}

    layers = [[plain(dict(c)) for c in _specs(layer)] for layer in architecture.get("layers") or ()]
    return {**{k: v for k, v in architecture.items() if k != "layers"}, "layers": layers}


def fingerprint_of(architecture: dict) -> str | None:
    """The fingerprint the search gives this architecture (None when it does not parse any more)."""
    from itas.arch.spec import parse_architecture
    from itas.errors import ItasError

    try:
        return parse_architecture(architecture, "<report>", default_name="x").fingerprint()
    except (ItasError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class TttRow:
    trial: TrialRecord
    train_cost: float | None  # per query (None: not recorded)
    train_latency: float | None  # seconds of the critical path per query (None: not recorded)
    latency_mean: float  # mean per-query latency of the trial (what train_latency is a share of)
    without: TrialRecord | None  # the same architecture without ttt, when it was evaluated
    versus: PairedTest | None  # this trial against ``without`` on their shared questions

    @property
    def cost_share(self) -> float | None:
        if self.train_cost is None or self.trial.cost <= 0:
            return None
        return self.train_cost / self.trial.cost

    @property
    def latency_share(self) -> float | None:
        if self.train_latency is None or self.latency_mean <= 0:
            return None
        return self.train_latency / self.latency_mean

    def to_dict(self) -> dict:
        t, w = self.trial, self.without
        return {"trial": t.number, "description": t.description, "accuracy": t.accuracy, "cost_per_query": t.cost,
                "latency_p50": t.latency_p50, "latency_mean": self.latency_mean,
                "train_cost_per_query": self.train_cost, "train_cost_share": self.cost_share,
                "train_latency_per_query": self.train_latency, "train_latency_share": self.latency_share,
                "without_ttt": None if w is None else {
                    "trial": w.number, "description": w.description, "accuracy": w.accuracy,
                    "cost_per_query": w.cost, "latency_p50": w.latency_p50},
                "vs_without_ttt": self.versus.to_dict() if self.versus else None}


@dataclass(frozen=True)
class TttSummary:
    rows: tuple[TttRow, ...]  # every evaluated ttt architecture, most accurate first
    best_with: TrialRecord | None
    best_without: TrialRecord | None

    def to_dict(self) -> dict:
        def brief(t: TrialRecord | None) -> dict | None:
            return None if t is None else {"trial": t.number, "description": t.description, "accuracy": t.accuracy,
                                           "cost_per_query": t.cost, "latency_p50": t.latency_p50}

        return {"architectures": [r.to_dict() for r in self.rows], "best_with_ttt": brief(self.best_with),
                "best_without_ttt": brief(self.best_without)}


def _best(trials: Sequence[TrialRecord]) -> TrialRecord | None:
    return min(trials, key=lambda t: (-t.accuracy, t.cost, t.latency_p50, t.number)) if trials else None


def _optional(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def summarise_ttt(evaluated: Sequence[TrialRecord], *, replicates: int = REPLICATES,
                  seed: int = 0) -> TttSummary | None:
    """The test-time training section of a run's report (None when no evaluated trial uses ``ttt``)."""
    with_ttt = [t for t in evaluated if uses_ttt(t.architecture)]
    if not with_ttt:
        return None
    by_fp = {}
    for t in evaluated:
        by_fp.setdefault(t.fingerprint, t)  # the first evaluation of an architecture
    rows = []
    for t in sorted(with_ttt, key=lambda t: (-t.accuracy, t.cost, t.latency_p50, t.number)):
        without = by_fp.get(fingerprint_of(without_ttt(t.architecture)) or "")
        versus = None
        if without is not None:
            ref = without.scores()
            shared = [q for q in t.questions if q.id in ref]
            if shared:
                versus = paired_test([q.score for q in shared], [ref[q.id] for q in shared],
                                     replicates=replicates, seed=seed)
        latencies = [q.latency for q in t.questions]
        latency_mean = sum(latencies) / len(latencies) if latencies else t.latency_p50
        rows.append(TttRow(trial=t, train_cost=_optional(t.metrics, "train_cost_per_query"),
                           train_latency=_optional(t.metrics, "train_latency_per_query"),
                           latency_mean=latency_mean, without=without, versus=versus))
    return TttSummary(rows=tuple(rows), best_with=_best(with_ttt),
                      best_without=_best([t for t in evaluated if not uses_ttt(t.architecture)]))


# ---- text ------------------------------------------------------------------------------------------------------
def _cost(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "tokens" else f"{value:.4g}"


def _share(share: float | None) -> str:
    return "" if share is None else f" ({share:.0%})"


def training_text(row: TttRow, unit: str) -> str:
    """'cost X of Y per query (P%), latency Z of W s (Q%)' of one ttt architecture."""
    t = row.trial
    if row.train_cost is None and row.train_latency is None:
        return "training cost and latency not recorded"
    cost = "—" if row.train_cost is None else (f"cost {_cost(row.train_cost, unit)} of {_cost(t.cost, unit)} "
                                                f"{unit}/query{_share(row.cost_share)}")
    latency = "—" if row.train_latency is None else (f"latency {row.train_latency:.1f} of {row.latency_mean:.1f} s "
                                                      f"per query{_share(row.latency_share)}")
    return f"{cost}, {latency}"


def ttt_lines(summary: TttSummary, unit: str) -> list[str]:
    """The section as lines of text (the table output and Markdown use them)."""
    out = []
    for r in summary.rows:
        t, w = r.trial, r.without
        line = f"trial {t.number} ({t.description}): accuracy {t.accuracy:.3f}; training: {training_text(r, unit)}"
        if w is None:
            line += "; the same architecture without ttt was not evaluated"
        else:
            diff = ""
            if r.versus is not None:
                d = r.versus.difference
                diff = f", Δ {d.estimate:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}], p {r.versus.p_value:.3g}"
            line += (f"; without ttt (trial {w.number}): accuracy {w.accuracy:.3f}{diff}, cost "
                     f"{_cost(w.cost, unit)} vs {_cost(t.cost, unit)} {unit}/query, latency p50 {w.latency_p50:.2f} vs "
                     f"{t.latency_p50:.2f} s")
        out.append(line)
    b, n = summary.best_with, summary.best_without
    if b is not None:
        line = (f"most accurate with ttt: trial {b.number}, accuracy {b.accuracy:.3f}, cost {_cost(b.cost, unit)} "
                f"{unit}/query, latency p50 {b.latency_p50:.2f} s")
        if n is not None:
            line += (f"; without ttt: trial {n.number}, accuracy {n.accuracy:.3f}, cost {_cost(n.cost, unit)} "
                     f"{unit}/query, latency p50 {n.latency_p50:.2f} s")
        out.append(line)
    return out
