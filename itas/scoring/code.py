"""Code benchmarks: the program in a model's output is executed against the benchmark's tests in the sandbox.

Time limits are scaled to the reference solution: each question's reference solution is run once (in the
sandbox, with generous limits), its run times are cached (in memory and, given a cache directory, on disk), and a
candidate gets ``max(item_time_floor, time_factor * reference item)`` CPU seconds per test or input,
``max(time_floor, time_factor * reference)`` CPU seconds to load (for HumanEval: to run ``check``), and twice the
scaled reference wall time as a wall-clock backstop. CPU time, because the machine may be busy (a search runs many
programs at once next to model servers): being slowed down by others does not time a program out. HumanEval+ also caches the reference's outputs on its extra inputs: they are
the expected outputs.

Scores: ``correct`` (every test passed), ``wrong`` (a test failed, or the program does not load),
``timeout`` (the program or one test ran out of time), ``crashed`` (the process died: a signal, the memory or
file-size limit, ``os._exit``), ``no_answer`` (no code in the output).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from itas.errors import DataError
from itas.fsutil import atomic_write
from itas.sandbox import Limits, RunResult, Sandbox, default_sandbox
from itas.scoring.base import Scorer, register_scorer
from itas.scoring.types import Question, Score

log = logging.getLogger("itas.scoring")

_DRIVER = Path(__file__).resolve().parent.parent / "sandbox" / "_driver.py"
_REFERENCE_WALL = 600.0  # the reference solution's own limit while it is measured
_SLACK = 2.0  # interpreter start-up and the driver's own work, on top of the scaled limit


def assemble_function(prompt: str, code: str, entry_point: str) -> str:
    """The program for a HumanEval-style task: the prompt (signature, docstring, helpers, imports) followed by
    the model's code, which is either a complete definition of ``entry_point`` or the body that completes the
    prompt's last function."""
    if re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", code, re.MULTILINE):
        lines = code.split("\n")
        first = next((line for line in lines if line.strip()), "")
        indent = len(first) - len(first.lstrip())
        if indent and all(not line.strip() or line[:indent].isspace() for line in lines):
            code = "\n".join(line[indent:] for line in lines)  # a definition indented as a whole
        return prompt.rstrip() + "\n\n" + code
    first = next((line for line in code.split("\n") if line.strip()), "")
    if first and not first[0].isspace():  # a body written flush left
        code = "\n".join(("    " + line) if line.strip() else line for line in code.split("\n"))
    return prompt + code


class CodeScorer(Scorer):
    kind = "code"
    default_extractor = "python_code"
    options = {"time_floor": 5.0, "time_factor": 4.0, "item_time_floor": 1.0, "memory_mb": 1024,
               "test_time_limit": 3.0}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sandbox: Sandbox | None = None
        self._refs: dict[str, dict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ---- what subclasses say ---------------------------------------------------------------------------------
    def setup(self, q: Question, code: str) -> str:
        """The program that defines the candidate (without the benchmark's tests)."""
        raise NotImplementedError

    def job(self, q: Question, code: str, ref: dict | None) -> dict:
        """The driver job that runs the benchmark's tests on ``code`` (``ref`` is None for the reference run)."""
        raise NotImplementedError

    def reference_code(self, q: Question) -> str:
        ref = q.reference if isinstance(q.reference, dict) else {}
        solution = ref.get("solution")
        if not solution:
            raise DataError(f"{q.id}: no reference solution to measure time limits with")
        return solution

    # ---- machinery -------------------------------------------------------------------------------------------
    def _sandbox(self) -> Sandbox:
        if self.sandbox is None:
            self.sandbox = default_sandbox()
        return self.sandbox

    def _limits(self, wall: float) -> Limits:
        return Limits(wall_seconds=wall, memory_bytes=int(self.opts["memory_mb"]) << 20)

    def _lock_for(self, qid: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(qid, threading.Lock())

    def reference(self, q: Question) -> dict:
        """The measured run of the question's reference solution: ``{"seconds", "items": [seconds...],
        "outputs": [...] or None, "ok": bool}`` (measured once, then cached)."""
        if q.id in self._refs:
            return self._refs[q.id]
        with self._lock_for(q.id):
            if q.id in self._refs:
                return self._refs[q.id]
            job = self.job(q, self.reference_code(q), None)
            key = hashlib.sha256(json.dumps([self.name, job, sys.version, _DRIVER.read_bytes().hex()],
                                            sort_keys=True).encode()).hexdigest()
            ref = self._load_cached(key)
            if ref is None:
                result = self._sandbox().run_job(job, self._limits(_REFERENCE_WALL))
                ref = self._summarise_reference(q, result)
                self._store_cached(key, ref)
            self._refs[q.id] = ref
            return ref

    def _summarise_reference(self, q: Question, result: RunResult) -> dict:
        setup = next((e for e in result.events if "setup" in e), {})
        items = {e["i"]: e for e in result.events if "i" in e}
        n = max(items) + 1 if items else 0
        ok = result.status == "passed" and setup.get("setup") is True and all(e.get("ok") for e in items.values()) \
            and any(e.get("done") for e in result.events)
        if not ok:
            why = setup.get("error") or next((e.get("error") for e in items.values() if not e.get("ok")), None)
            log.warning("%s: the reference solution did not pass its own tests (%s); using the time floor",
                        q.id, why or result.status)
        return {
            "ok": ok,
            "wall": float(result.duration),
            "seconds": float(setup.get("t", 0.0)) + sum(float(e.get("t", 0.0)) for e in items.values()),
            "setup_seconds": float(setup.get("t", 0.0)),
            "items": [float(items[i].get("t", 0.0)) if i in items else 0.0 for i in range(n)],
            "item_ok": [bool(items[i].get("ok")) if i in items else False for i in range(n)],
            "outputs": [items[i].get("out") if i in items else None for i in range(n)],
        }

    def _cache_file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / "reference-runs" / f"{key}.json"

    def _load_cached(self, key: str) -> dict | None:
        path = self._cache_file(key)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _store_cached(self, key: str, ref: dict) -> None:
        path = self._cache_file(key)
        if path is None:
            return
        try:
            atomic_write(path, json.dumps(ref))
        except OSError as exc:
            log.warning("cannot cache a reference run in %s: %s", path.parent, exc)

    def prepare(self, questions: Iterable[Question], workers: int | None = None) -> None:
        questions = list(questions)
        n = workers or self._sandbox().workers
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(self.reference, questions))

    def wall_limit(self, ref: dict) -> float:
        """The wall-clock limit of the whole run: a backstop (the CPU-time limits below are the real ones),
        twice the scaled reference wall time, so that a loaded machine does not time good programs out."""
        return 2 * max(self.opts["time_floor"], self.opts["time_factor"] * ref.get("wall", ref["seconds"])) + _SLACK

    def setup_limit(self, ref: dict) -> float:
        """CPU seconds for loading the program (in ``script`` mode: for the whole test)."""
        return max(self.opts["time_floor"], self.opts["time_factor"] * ref["setup_seconds"])

    def item_limits(self, ref: dict) -> list[float]:
        return [max(self.opts["item_time_floor"], self.opts["time_factor"] * t) for t in ref["items"]]

    # ---- scoring ---------------------------------------------------------------------------------------------
    def score(self, q: Question, output: str) -> Score:
        try:
            code = self.extract(output)
        except Exception as exc:  # noqa: BLE001
            return Score(0.0, "no_answer", None, f"extraction failed: {exc}")
        if not code or not code.strip():
            return Score(0.0, "no_answer", None, "no code in the output")
        ref = self.reference(q)
        job = self.job(q, code, ref)
        wall = self.wall_limit(ref)
        job["setup_limit"] = self.setup_limit(ref)
        job["stop_on_failure"] = True  # one failure decides the score
        result = self._sandbox().run_job(job, self._limits(wall))
        return self._verdict(result, code)

    @staticmethod
    def _verdict(result: RunResult, code: str) -> Score:
        if result.status == "timed_out":
            return Score(0.0, "timeout", code, f"killed after {result.duration:.1f}s")
        setup = next((e for e in result.events if "setup" in e), None)
        done = any(e.get("done") for e in result.events)
        if setup is not None and not setup["setup"]:
            status = "timeout" if setup.get("timeout") else "wrong"
            return Score(0.0, status, code, setup.get("error", ""))
        for e in result.events:
            if "i" in e and not e.get("ok"):
                status = "timeout" if e.get("timeout") else "wrong"
                return Score(0.0, status, code, f"test {e['i']}: {e.get('error', 'wrong output')}")
            if "error" in e and "i" not in e and "setup" not in e:
                return Score(0.0, "wrong", code, e["error"])
        if not done:
            if result.signal is not None:
                return Score(0.0, "crashed", code, f"killed by signal {result.signal}")
            tail = (result.stderr.strip().splitlines() or [""])[-1][:200]
            return Score(0.0, "crashed", code, f"exited with code {result.returncode} before the tests ended {tail}")
        return Score(1.0, "correct", code)

    def run_tests(self, q: Question, code: str, tests: list[str]) -> list[bool]:
        """Execute model-written test snippets (e.g. ``assert f(1) == 2``) against a candidate; one bool each.
        ``code`` is a model output (its program is extracted)."""
        if not tests:
            return []
        try:
            program = self.extract(code)
        except Exception:  # noqa: BLE001
            program = None
        if not program:
            return [False] * len(tests)
        per_test = float(self.opts["test_time_limit"])
        wall = self.opts["time_floor"] + per_test * len(tests) + _SLACK
        job = {"mode": "asserts", "setup": self.setup(q, program), "tests": [str(t) for t in tests],
               "item_limit": per_test, "setup_limit": self.opts["time_floor"]}
        result = self._sandbox().run_job(job, self._limits(wall))
        passed = {e["i"]: bool(e.get("ok")) for e in result.events if "i" in e}
        return [passed.get(i, False) for i in range(len(tests))]


def _field(q: Question, key: str, default: Any = None) -> Any:
    ref = q.reference if isinstance(q.reference, dict) else {}
    return ref.get(key, default)


@register_scorer
class HumanEvalScorer(CodeScorer):
    """Runs the task's ``check(candidate)`` tests on the completed function (HumanEval)."""

    name = "humaneval_tests"

    def setup(self, q: Question, code: str) -> str:
        return assemble_function(_field(q, "prompt", ""), code, _field(q, "entry_point", ""))

    def job(self, q: Question, code: str, ref: dict | None) -> dict:
        entry = _field(q, "entry_point", "")
        program = self.setup(q, code) + "\n\n" + _field(q, "test", "") + f"\n\ncheck({entry})\n"
        return {"mode": "script", "setup": program}


@register_scorer
class PythonAssertsScorer(CodeScorer):
    """Runs assert statements (MBPP's ``test_list``, or a custom benchmark's list of tests) after the code."""

    name = "python_asserts"

    @staticmethod
    def _tests(q: Question) -> list[str]:
        ref = q.reference
        tests = ref.get("tests") if isinstance(ref, dict) else ref
        if isinstance(tests, str):
            tests = [tests]
        return [str(t) for t in tests or []]

    def setup(self, q: Question, code: str) -> str:
        imports = _field(q, "imports") or []
        if isinstance(imports, str):
            imports = [imports]
        return "\n".join(imports) + ("\n" if imports else "") + code

    def job(self, q: Question, code: str, ref: dict | None) -> dict:
        job = {"mode": "asserts", "setup": self.setup(q, code), "tests": self._tests(q)}
        if ref is not None:
            job["limits"] = self.item_limits(ref)
        return job


@register_scorer
class EvalPlusScorer(CodeScorer):
    """Calls the function on HumanEval+'s base and extra inputs; outputs must match the reference solution's
    (EvalPlus rules: exact, or within ``atol`` for floats)."""

    name = "evalplus_tests"
    options = {**CodeScorer.options, "item_time_floor": 1.0}

    def setup(self, q: Question, code: str) -> str:
        return assemble_function(_field(q, "prompt", ""), code, _field(q, "entry_point", ""))

    def job(self, q: Question, code: str, ref: dict | None) -> dict:
        entry = _field(q, "entry_point", "")
        inputs = list(_field(q, "base_input") or []) + list(_field(q, "plus_input") or [])
        job = {"mode": "calls", "setup": self.setup(q, code), "entry_point": entry, "inputs": inputs,
               "atol": float(_field(q, "atol") or 0), "oracle": "find_zero" if entry == "find_zero" else None}
        if ref is not None:
            keep = [i for i, ok in enumerate(ref["item_ok"]) if ok and i < len(inputs)]
            limits = self.item_limits(ref)
            job["inputs"] = [inputs[i] for i in keep]
            job["expected"] = [ref["outputs"][i] for i in keep]
            job["limits"] = [limits[i] for i in keep]
            if any(isinstance(e, dict) and e.get("__t") == "recompute" for e in job["expected"]):
                job["reference_setup"] = self.setup(q, self.reference_code(q))
        return job
