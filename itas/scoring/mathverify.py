"""MATH answers graded with ``math-verify`` (gold first: ``verify(parse(gold), parse(output))``).

math-verify's own time limits use ``signal.alarm``, which only works on the main thread; itas scores from worker
threads of an asyncio program. So grading runs in a small pool of long-lived worker processes with math-verify's
timeouts disabled, and this module enforces the time limit itself: a worker that does not answer in time is
killed (and replaced on the next request) and the item scores ``timeout``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from itas.errors import ItasError
from itas.scoring.base import Scorer, register_scorer
from itas.scoring.types import Question, Score

_WORKER = Path(__file__).with_name("_math_worker.py")
_STARTUP_SECONDS = 120.0


class GradingError(ItasError):
    """The math-verify workers could not be started."""


class _Worker:
    def __init__(self, memory_bytes: int):
        code = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({memory_bytes}, {memory_bytes})); "
                f"import runpy; runpy.run_path({str(_WORKER)!r}, run_name='__main__')")
        try:
            self.proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise GradingError(f"cannot start a math-verify worker: {exc}") from None
        self.buffer = b""
        ready = self.read(_STARTUP_SECONDS)
        if not ready or not ready.get("ready"):
            self.kill()
            raise GradingError("a math-verify worker did not start (is math-verify installed?)")

    def read(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # the worker died
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def ask(self, request: dict, timeout: float) -> dict | None:
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        return self.read(timeout)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


class MathVerifyPool:
    """A bounded pool of math-verify worker processes. Thread-safe."""

    def __init__(self, workers: int | None = None, memory_bytes: int = 4 << 30):
        self.size = max(1, workers or min(2, os.cpu_count() or 1))
        self.memory_bytes = memory_bytes
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._free = threading.Semaphore(self.size)
        self._all: list[_Worker] = []
        atexit.register(self.close)

    def grade(self, gold: str, output: str, timeout: float) -> dict | None:
        """math-verify's verdict, or ``None`` when it took longer than ``timeout`` seconds."""
        with self._free:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self.memory_bytes)
                with self._lock:
                    self._all.append(worker)
            reply = worker.ask({"gold": gold, "output": output}, timeout)
            with self._lock:
                if reply is None:
                    worker.kill()
                    self._all.remove(worker)
                else:
                    self._idle.append(worker)
            return reply

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = self._all, [], []
        for w in workers:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
            w.kill()


_pool: MathVerifyPool | None = None
_pool_lock = threading.Lock()


def math_pool() -> MathVerifyPool:
    """The process-wide pool (``ITAS_MATH_WORKERS`` workers, default min(2, CPUs))."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = MathVerifyPool(int(os.environ.get("ITAS_MATH_WORKERS") or 0) or None)
        return _pool


@register_scorer
class MathVerifyScorer(Scorer):
    """math-verify equivalence of the output's final answer with the reference (gold first), time-limited."""

    name = "math_verify"
    kind = "math"
    default_extractor = "math_answer"
    options = {"timeout": 20.0}

    def score(self, q: Question, output: str) -> Score:
        try:
            extracted = self.extract(output)
        except Exception:  # noqa: BLE001 - the extracted answer is informative only; math-verify decides
            extracted = None
        if not output or not output.strip():
            return Score(0.0, "no_answer", None, "empty output")
        reply = math_pool().grade(str(q.reference), output, self.opts["timeout"])
        if reply is None:
            return Score(0.0, "timeout", extracted, f"math-verify took longer than {self.opts['timeout']:g}s")
        if "error" in reply:
            return Score(0.0, "wrong", extracted, f"math-verify failed: {reply['error']}")
        if not reply["pred"]:
            return Score(0.0, "no_answer", extracted, "no answer math-verify could parse")
        if reply["ok"]:
            return Score(1.0, "correct", extracted)
        expected = reply["gold"][0] if reply["gold"] else str(q.reference)
        return Score(0.0, "wrong", extracted, f"parsed {reply['pred'][0][:80]}, expected {expected[:80]}")
