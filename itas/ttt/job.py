"""What one LoRA training is asked to do (``TrainingJob``), what it reports (``TrainingReport``), and the adapter
it leaves (``Adapter``).

**Cost of training.** A training step runs the forward pass over the whole sequence and the backward pass
through it; the backward pass costs about twice the forward pass (gradients with respect to the activations and
to the weights: the 2N + 4N = 6N FLOPs per token of Kaplan et al., 2020, against 2N for a forward pass).
With LoRA the weight gradients of the frozen base are not computed, so this over-counts a little; it is kept as
the documented, conservative factor. A training is therefore counted as ``TRAIN_COST_FACTOR`` x (tokens of
every sequence of every step) prompt tokens of the base model, at the pool's input price, and its measured
time is its latency.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

TRAIN_COST_FACTOR = 3.0  # forward + backward pass, in forward-pass tokens
FORMAT_VERSION = 1  # of the training data and script; part of every adapter's key
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainingSequence:
    """One training example: a chat prompt (as the benchmark writes it) and the answer the model should give."""

    messages: tuple[dict, ...]
    answer: str

    def to_json(self) -> dict:
        return {"messages": [dict(m) for m in self.messages], "answer": self.answer}


@dataclass(frozen=True)
class TrainingJob:
    task: str  # the task's id (names the adapter's folder; the key is made from the content)
    served_model: str  # the base model's id on its server
    sequences: tuple[TrainingSequence, ...]
    steps: int
    rank: int
    alpha: float
    learning_rate: float
    seed: int
    max_length: int  # tokens; longer sequences are left out
    target_modules: tuple[str, ...] = TARGET_MODULES

    def key(self) -> str:
        """Identifies the adapter: base model, training data and every training parameter."""
        blob = json.dumps({"version": FORMAT_VERSION, **self.spec()}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def spec(self) -> dict:
        return {"served_model": self.served_model, "sequences": [s.to_json() for s in self.sequences],
                "steps": self.steps, "rank": self.rank, "alpha": self.alpha, "learning_rate": self.learning_rate,
                "seed": self.seed, "max_length": self.max_length, "target_modules": list(self.target_modules)}

    @property
    def adapter_name(self) -> str:
        """The name the adapter is served under (unique per key)."""
        return f"ttt-{self.key()[:16]}"

    def folder_name(self) -> str:
        return f"{safe_name(self.task)}-{self.key()[:16]}"

    def to_json(self, weights: str) -> dict:
        """The job file the training script reads."""
        return {"version": FORMAT_VERSION, "task": self.task, "weights": weights, **self.spec()}


@dataclass(frozen=True)
class TrainingReport:
    """What the training script measured (its ``training.json``)."""

    tokens: int  # tokens forwarded (and back-propagated) over all steps
    loss_tokens: int  # of which the answer tokens the loss was computed on
    steps: int
    seconds: float
    sequences: int  # distinct sequences used
    dropped: int  # sequences left out for being longer than max_length
    final_loss: float | None = None

    @property
    def cost_tokens(self) -> int:
        """Forward-pass-equivalent tokens (``TRAIN_COST_FACTOR`` x tokens)."""
        return round(TRAIN_COST_FACTOR * self.tokens)

    @classmethod
    def from_json(cls, value: dict) -> TrainingReport:
        return cls(tokens=int(value["tokens"]), loss_tokens=int(value.get("loss_tokens", 0)),
                   steps=int(value["steps"]), seconds=float(value["seconds"]), sequences=int(value["sequences"]),
                   dropped=int(value.get("dropped", 0)), final_loss=value.get("final_loss"))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Adapter:
    name: str
    path: Path
    report: TrainingReport
    cached: bool  # found already trained (by an earlier run, or by another question of this run)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:80] or "task"
