"""The results directory of a sampling run: the only module that reads or writes it.

```
<dir>/config.json     everything needed to resume: benchmark, model, K, the question ids, sampling parameters,
                      the reward, the pool and data folder used, and a history of the sessions
<dir>/calls.sqlite    the call cache (samples and judge calls): a larger K asks only for the new samples
<dir>/samples.jsonl   one line per question per sample: index, text, extracted answer, score, reward, tokens
<dir>/curves.csv|json, fit.json, winrate.csv, summary.json, *.png, sampling.html   derived (report.render)
```

Every file is written atomically (aside, then renamed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from itas.arch.result import atomic_write, jsonable
from itas.errors import InputError

CONFIG = "config.json"
SAMPLES = "samples.jsonl"
CACHE = "calls.sqlite"
VERSION = 1


@dataclass(frozen=True)
class SampleConfig:
    benchmark: str
    model: str
    k: int
    question_ids: tuple[str, ...]
    temperature: float
    max_tokens: int
    subset: int | None = None
    seed: int = 0
    reward: dict | None = None  # RewardSpec.to_dict(): {"spec": "judge:gemma3", "temperature", "max_tokens"}
    pool: str | None = None  # the pool file used (None: the embedded default)
    data_dir: str | None = None
    bootstrap: int = 1000  # bootstrap replicates over questions
    level: float = 0.95  # of the intervals
    created: str = ""
    history: tuple[dict, ...] = ()  # one entry per session: k, calls sent, cache hits, times, failures
    version: int = VERSION

    @property
    def reward_spec(self) -> str | None:
        return self.reward["spec"] if self.reward else None

    def with_session(self, session: dict) -> SampleConfig:
        return replace(self, history=(*self.history, session))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["question_ids"] = list(self.question_ids)
        out["history"] = list(self.history)
        return out


_TYPES: dict[str, tuple[type, ...]] = {
    "benchmark": (str,), "model": (str,), "k": (int,), "question_ids": (list,), "temperature": (int, float),
    "max_tokens": (int,), "subset": (int, type(None)), "seed": (int,), "reward": (dict, type(None)),
    "pool": (str, type(None)), "data_dir": (str, type(None)), "bootstrap": (int,), "level": (int, float),
    "created": (str,), "history": (list,), "version": (int,),
}
_REQUIRED = ("benchmark", "model", "k", "question_ids", "temperature", "max_tokens")


def parse_config(data: Any, source: str) -> SampleConfig:
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise InputError(f"{source}: unknown key '{unknown[0]}'")
    for key in _REQUIRED:
        if key not in data:
            raise InputError(f"{source}: missing key '{key}'")
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            raise InputError(f"{source}: {key}: expected {' or '.join(t.__name__ for t in _TYPES[key])}, "
                             f"got {type(value).__name__}")
    if data["k"] < 1:
        raise InputError(f"{source}: k: must be at least 1")
    if data.get("version", VERSION) > VERSION:
        raise InputError(f"{source}: written by a newer itas (version {data['version']})")
    if data.get("reward") is not None and not isinstance(data["reward"].get("spec"), str):
        raise InputError(f"{source}: reward.spec: expected a string like 'judge:MODEL'")
    values = dict(data)
    values["question_ids"] = tuple(str(q) for q in data["question_ids"])
    values["history"] = tuple(data.get("history", ()))
    values["temperature"] = float(data["temperature"])
    return SampleConfig(**values)


def load_config(directory: Path) -> SampleConfig | None:
    """The run's config, or None when the directory holds no sampling run."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(data, str(path))


def save_config(directory: Path, config: SampleConfig) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(directory) / CONFIG, json.dumps(config.to_dict(), indent=2, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class SampleRecord:
    """One sample of one question, scored (and rewarded when the run has a reward)."""

    question: str
    index: int
    text: str
    extracted: Any  # the benchmark's normalised final answer, what votes (None: no answer)
    score: float
    status: str
    reward: float | None = None
    reward_spec: str | None = None  # which reward produced ``reward`` (None: not rewarded)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict:
        out = {"question": self.question, "index": self.index, "text": self.text,
               "extracted": jsonable(self.extracted), "score": self.score, "status": self.status,
               "correct": self.correct, "reward": self.reward, "reward_spec": self.reward_spec,
               "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
               "finish_reason": self.finish_reason, "detail": self.detail}
        return out


def _record(data: Any, where: str) -> SampleRecord:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    try:
        reward = data.get("reward")
        if reward is not None:
            reward = float(reward)
            if math.isnan(reward):
                reward = None
        return SampleRecord(question=str(data["question"]), index=int(data["index"]), text=str(data["text"]),
                            extracted=data.get("extracted"), score=float(data["score"]), status=str(data["status"]),
                            reward=reward, reward_spec=data.get("reward_spec"),
                            prompt_tokens=int(data.get("prompt_tokens") or 0),
                            completion_tokens=int(data.get("completion_tokens") or 0),
                            finish_reason=data.get("finish_reason"), detail=str(data.get("detail") or ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed sample record ({type(exc).__name__}: {exc})") from None


def load_samples(directory: Path) -> dict[tuple[str, int], SampleRecord]:
    """The stored samples by (question id, sample index); empty when there are none yet."""
    path = Path(directory) / SAMPLES
    if not path.is_file():
        return {}
    out: dict[tuple[str, int], SampleRecord] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc})") from None
            rec = _record(data, f"{path}:{n}")
            out[(rec.question, rec.index)] = rec
    return out


def save_samples(directory: Path, records: dict[tuple[str, int], SampleRecord], order: list[str]) -> None:
    """Write every record, questions in ``order`` (others after), samples by index."""
    rank = {qid: i for i, qid in enumerate(order)}
    keys = sorted(records, key=lambda key: (rank.get(key[0], len(rank)), key[0], key[1]))
    text = "".join(json.dumps(records[key].to_dict(), ensure_ascii=False) + "\n" for key in keys)
    atomic_write(Path(directory) / SAMPLES, text)


def write_json(path: Path, value: Any) -> None:
    atomic_write(Path(path), json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    import io

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write(Path(path), buf.getvalue())
