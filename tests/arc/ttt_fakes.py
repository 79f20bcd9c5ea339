"""Fakes for test-time training: a trainer that writes an adapter folder at once, and adapter serving that
records loads. A test registers them for its duration with ``ttt_services.use(fake_services(tmp_path))``."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

from itas.ttt import services as ttt_services
from itas.ttt.trainer import TrainingError


class FakeTrainer:
    def __init__(self, tokens: int = 1000, seconds: float = 12.5, fail: bool = False):
        self.tokens, self.seconds, self.fail = tokens, seconds, fail
        self.jobs: list[dict] = []
        self._lock = threading.Lock()

    def train(self, job: dict, out_dir: Path, log: Path) -> None:
        with self._lock:
            self.jobs.append(job)
        log.write_text("fake training\n")
        if self.fail:
            raise TrainingError(f"training of {job['task']} failed (exit 1): out of memory (log: {log})")
        (out_dir / "adapter_config.json").write_text(json.dumps({"r": job["rank"]}))
        (out_dir / "training.json").write_text(json.dumps(
            {"tokens": self.tokens, "loss_tokens": 100, "steps": job["steps"], "seconds": self.seconds,
             "sequences": len(job["sequences"]), "dropped": 0, "final_loss": 0.1}))


class FakeServing:
    def __init__(self, pool=None):
        self.events: list[tuple[str, str, str]] = []
        self.in_use: dict[str, int] = {}

    async def base_weights(self, model: str) -> str:
        return f"/fake/weights/{model}"

    @contextlib.asynccontextmanager
    async def loaded(self, model: str, name: str, path: Path):
        assert (Path(path) / "adapter_config.json").is_file()
        if self.in_use.get(name, 0) == 0:
            self.events.append(("load", model, name))
        self.in_use[name] = self.in_use.get(name, 0) + 1
        try:
            yield
        finally:
            self.in_use[name] -= 1
            if self.in_use[name] == 0:
                self.events.append(("unload", model, name))


def fake_services(adapter_dir: Path) -> ttt_services.Services:
    """Services with a ``FakeTrainer`` and one ``FakeServing`` for every pool; use with ``ttt_services.use``."""
    serving = FakeServing()
    return ttt_services.Services(trainer=FakeTrainer(), serving=lambda pool: serving, adapter_dir=adapter_dir)
