"""Hostile model-written code, scored through a real code benchmark: each is stopped and scored as failed, and
afterwards no sandbox process survives, canary files are unchanged, their content appears nowhere in what the
sandbox returned, and a loopback listener got no connection.

Each hostile solution is a correct HumanEval/0 solution that first does something it must not be able to do,
and would pass if that succeeded."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from itas.benchmarks import load_benchmark
from itas.sandbox import Limits

pytestmark = pytest.mark.usefixtures("clean")

CORRECT = """
    s = sorted(numbers)
    return any(b - a < threshold for a, b in zip(s, s[1:]))
"""


def solution(prelude: str) -> str:
    body = "\n".join("    " + line for line in prelude.strip().splitlines())
    return ("```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
            + body + CORRECT + "```\n")


@pytest.fixture(scope="module")
def bench(sandbox, tmp_path_factory):
    b = load_benchmark("humaneval", sandbox=sandbox, cache_dir=tmp_path_factory.mktemp("cache"))
    b.scorer.opts["time_floor"] = 1.0  # hostile programs need not get five seconds
    return b


@pytest.fixture(scope="module")
def question(bench):
    q = bench.question("HumanEval/0")
    assert bench.score(q, solution("pass")).status == "correct"  # the harmless version passes
    return q


class Canary:
    def __init__(self, path: Path):
        self.path = path
        self.content = "canary-" + secrets.token_hex(16)
        path.write_text(self.content)
        os.chmod(path, 0o666)  # even world-writable: only the sandbox's isolation protects it
        self.digest = self.fingerprint()

    def fingerprint(self):
        st = self.path.stat()
        return hashlib.sha256(self.path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size

    def unchanged(self) -> bool:
        return self.fingerprint() == self.digest


@pytest.fixture
def canaries():
    made = [Canary(Path.home() / f".itas-canary-{secrets.token_hex(4)}"),
            Canary(Path(tempfile.gettempdir()) / f"itas-canary-{secrets.token_hex(4)}")]
    yield made
    for c in made:
        c.path.unlink(missing_ok=True)


def leaked(score, canaries) -> bool:
    text = " ".join([score.detail, score.extracted or ""])
    return any(c.content in text for c in canaries)


def test_infinite_loop(bench, question):
    score = bench.score(question, solution("while True:\n    pass"))
    assert score.value == 0 and score.status == "timeout"


def test_sleeping_forever(bench, question):
    score = bench.score(question, solution("import time\ntime.sleep(3600)"))
    assert score.value == 0 and score.status == "timeout"


def test_fork_bomb(bench, question):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    score = bench.score(question, solution(bomb))
    assert score.value == 0 and score.status in ("timeout", "crashed")


def test_huge_allocation(bench, question):
    score = bench.score(question, solution("x = bytearray(1 << 40)"))
    assert score.value == 0 and "MemoryError" in score.detail
    score = bench.score(question, solution("x = []\nwhile True:\n    x.append(bytearray(10 ** 8))"))
    # stopped either way: at the memory limit, or (on a loaded machine, zero-filling is slow) at the time limit
    assert score.value == 0 and score.status in ("wrong", "crashed", "timeout")


def test_reading_a_canary_in_the_home_directory(bench, question, canaries):
    home = canaries[0]
    code = f"content = open({str(home.path)!r}).read()\nprint(content)"
    score = bench.score(question, solution(code))
    assert score.value == 0 and "FileNotFoundError" in score.detail
    assert not leaked(score, canaries)
    # directly, and looking at everything the sandbox returns
    for canary in canaries:
        r = bench.scorer.sandbox.run_python(f"print(open({str(canary.path)!r}).read())", Limits(wall_seconds=5))
        assert r.status == "failed"
        assert canary.content not in r.stdout + r.stderr + repr(r.events)
    assert all(c.unchanged() for c in canaries)


def test_writing_outside_scratch(bench, question, canaries):
    targets = [str(c.path) for c in canaries]
    new_files = [str(Path(tempfile.gettempdir()) / f"itas-new-{secrets.token_hex(4)}"),
                 str(Path.home() / f".itas-new-{secrets.token_hex(4)}"),
                 str(Path(__file__).resolve().parent / f"itas-new-{secrets.token_hex(4)}")]
    code = f"for path in {targets + new_files!r}:\n    open(path, 'w').write('overwritten')"
    score = bench.score(question, solution(code))
    assert score.value == 0 and score.status == "wrong"
    assert all(c.unchanged() for c in canaries)
    assert not any(os.path.exists(p) for p in new_files)
    for path in new_files:  # each one on its own, too
        r = bench.scorer.sandbox.run_python(f"open({path!r}, 'w').write('x')", Limits(wall_seconds=5))
        assert r.status == "failed" and not os.path.exists(path)


def test_connecting_to_a_loopback_listener(bench, question):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                connections.append(conn)
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        # the listener works for a process outside the sandbox
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for _ in range(50):
            if connections:
                break
            threading.Event().wait(0.05)
        assert len(connections) == 1
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')"
        score = bench.score(question, solution(code))
        assert score.value == 0 and score.status == "wrong"
        for host in ("127.0.0.1", "localhost", "::1"):
            r = bench.scorer.sandbox.run_python(
                f"import socket; socket.create_connection(({host!r}, {port}), timeout=2)", Limits(wall_seconds=5))
            assert r.status == "failed"
        threading.Event().wait(0.3)
        assert len(connections) == 1  # only our own
    finally:
        stop.set()
        thread.join(timeout=5)
        for c in connections:
            c.close()
        listener.close()


def test_killing_itself_crashes(bench, question):
    score = bench.score(question, solution("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    assert score.value == 0 and score.status == "crashed"


def test_exiting_early_is_not_a_pass(bench, question):
    for exit_code in ("import sys\nsys.exit(0)", "import os\nos._exit(0)"):
        score = bench.score(question, solution(exit_code))
        assert score.value == 0, exit_code
