"""The adapter cache: one folder per trained adapter, so a resumed search never trains twice.

Layout: ``<root>/<served model>/<task>-<key>/`` holding the peft adapter (``adapter_config.json``,
``adapter_model.safetensors``), ``training.json`` (the ``TrainingReport``), ``job.json`` (what was trained) and
``train.log`` (a failed training leaves its log in ``<root>/.logs/``). ``<key>`` is the start of ``TrainingJob.key()``: base model, training data and parameters. The
root is the results directory's ``adapters/`` (next to its call cache; see ``itas.ttt.services``).

A training runs into a temporary folder that is renamed into place when it succeeded, so a folder that exists is
complete. Trainings are serialised: one at a time in this process (they use every core), and one per adapter
across processes (a lock file), so concurrent questions of one task train it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from itas.ttt.job import Adapter, TrainingJob, TrainingReport, safe_name

_TRAINING = threading.Lock()  # one training at a time in this process


class Trainer(Protocol):
    def train(self, job: dict, out_dir: Path, log: Path) -> None:
        """Train the adapter described by ``job`` (``TrainingJob.to_json``) into ``out_dir``; write
        ``training.json`` there. Raises ``TrainingError`` (or ``ServingError`` when the environment is not
        usable)."""


class AdapterStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, job: TrainingJob) -> Path:
        return self.root / safe_name(job.served_model) / job.folder_name()

    def lookup(self, job: TrainingJob) -> Adapter | None:
        folder = self.folder(job)
        report = folder / "training.json"
        if not (folder / "adapter_config.json").is_file() or not report.is_file():
            return None
        try:
            return Adapter(job.adapter_name, folder, TrainingReport.from_json(json.loads(report.read_text())),
                           cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def obtain(self, job: TrainingJob, weights: str, trainer: Trainer) -> Adapter:
        """The cached adapter, or a new one trained now (blocking: run it in a thread)."""
        found = self.lookup(job)
        if found is not None:
            return found
        with _TRAINING, self._locked(job):
            found = self.lookup(job)
            if found is not None:
                return found
            final = self.folder(job)
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.mkdir(parents=True)
            # the log stays outside the temporary folder, so that a failed training leaves it to read
            log = self.root / ".logs" / f"{safe_name(job.served_model)}-{final.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            try:
                payload = job.to_json(weights)
                (tmp / "job.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))
                trainer.train(payload, tmp, log)
                report = TrainingReport.from_json(json.loads((tmp / "training.json").read_text()))
                if log.exists():
                    shutil.move(str(log), str(tmp / "train.log"))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return Adapter(job.adapter_name, final, report, cached=False)

    @contextlib.contextmanager
    def _locked(self, job: TrainingJob) -> Iterator[None]:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{job.key()[:32]}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
