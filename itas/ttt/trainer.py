"""Training in a separate process: ``train_lora.py`` run by the serving environment's Python (which has torch,
transformers and peft; itas itself never imports them).

Exit status of the script: 0 trained; 3 the environment cannot train (peft or torch missing: a ``ServingError``
that stops the run, with what to install); anything else, or the time limit, is a ``TrainingError`` for that
question only (a ``CallError``: the question fails with the reason, the others go on).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from itas.errors import CallError, ServingError
from itas.paths import serving_python

SCRIPT = Path(__file__).with_name("train_lora.py")
EXIT_ENVIRONMENT = 3


class TrainingError(CallError):
    """A LoRA training failed (it crashed, ran out of memory or time)."""


class SubprocessTrainer:
    def __init__(self, python: Path | None = None, timeout: float = 3600.0, threads: int | None = None):
        self.python = python
        self.timeout = timeout
        self.threads = threads

    def train(self, job: dict, out_dir: Path, log: Path) -> None:
        python = Path(self.python) if self.python else serving_python()
        if not python.exists():
            raise ServingError(f"the serving environment is not prepared ({python} is missing); run: "
                               f"itas models prepare")
        job_file = out_dir / "job.json"
        if not job_file.exists():
            job_file.write_text(json.dumps(job, ensure_ascii=False))
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        if self.threads:
            env["ITAS_TTT_THREADS"] = str(self.threads)
        cmd = [str(python), str(SCRIPT), "--job", str(job_file), "--out", str(out_dir)]
        with open(log, "w") as out:
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise TrainingError(f"training of {job.get('task')} ran out of its {self.timeout:.0f} s "
                                    f"(log: {log})") from None
        if proc.returncode == EXIT_ENVIRONMENT:
            raise ServingError(f"the serving environment cannot train LoRA adapters: {_tail(log)}. Install peft "
                               f"into it: {python} -m pip install peft")
        if proc.returncode != 0:
            raise TrainingError(f"training of {job.get('task')} failed (exit {proc.returncode}): {_tail(log)} "
                                f"(log: {log})")
        if not (out_dir / "training.json").is_file():
            raise TrainingError(f"training of {job.get('task')} wrote no training.json (log: {log})")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(t.strip() for t in text[-lines:])[-500:]
