"""Hostile model-written code, many programs at once: output floods are capped (in what is read back, on disk, in
time), and programs that hunt for the user's files (the home directory, an ssh-like key, through /proc, by
walking the file system) find nothing, while others flood and hog memory next to them. Afterwards, as in
tests/sandbox: no sandbox process survives, no scratch directory is left, canaries are unchanged and their
content appears nowhere in what the sandbox returned.

The sandbox here has 16 slots, so 16 programs really run at the same time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from itas.sandbox import Limits, Sandbox

AT_ONCE = 16
WALL = 4.0  # seconds a flood may run (one that ignores its write errors runs that long)
CAP = Limits().output_bytes
TRUNCATED = "\n[output truncated]"


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-many-scratch")
    os.chmod(root, 0o711)
    return root


@pytest.fixture(scope="module")
def sandbox(scratch_root) -> Sandbox:
    sb = Sandbox(workers=AT_ONCE, uid_base=64400, scratch_root=scratch_root)
    assert os.geteuid() != 0 or sb.mode == "namespaces", f"namespaces unavailable: {sb.mode_reason}"
    return sb


@pytest.fixture(autouse=True)
def clean(sandbox, scratch_root):
    yield
    assert sandbox.processes_left() == []
    assert list(scratch_root.iterdir()) == []


def free_bytes() -> int:
    return shutil.disk_usage(tempfile.gettempdir()).free


# ---- output floods -----------------------------------------------------------------------------------------------
FLOODS = {
    "print-lines": "while True:\n    print('x' * 1000)",
    "print-one-endless-line": "import sys\nwhile True:\n    sys.stdout.write('y' * (1 << 20))",
    "stderr": "import sys\nwhile True:\n    sys.stderr.write('z' * (1 << 16))",
    "raw-fd-writes": "import os\nb = b'w' * (1 << 20)\nwhile True:\n    os.write(1, b)",
    "children-flood-too": ("import os\nfor _ in range(8):\n    if os.fork() == 0:\n        break\n"
                           "b = b'c' * (1 << 20)\nwhile True:\n    os.write(1, b)"),
    "every-inherited-fd": ("import os\nb = b'f' * (1 << 20)\nwhile True:\n    for fd in range(1, 64):\n"
                           "        try:\n            os.write(fd, b)\n        except OSError:\n            pass"),
    "a-file-in-scratch": "f = open('big', 'wb')\nwhile True:\n    f.write(b'd' * (1 << 20))",
    "gigabytes-at-once": "import sys\nsys.stdout.write('g' * (3 << 30))",
}


@pytest.mark.parametrize("name", list(FLOODS))
def test_an_output_flood_is_capped(sandbox, name):
    before = free_bytes()
    t0 = time.monotonic()
    r = sandbox.run_python(FLOODS[name], Limits(wall_seconds=WALL))
    elapsed = time.monotonic() - t0
    assert r.status in ("crashed", "timed_out", "failed"), r.status  # stopped: by the file-size limit, or the clock
    assert len(r.stdout) <= CAP + len(TRUNCATED) and len(r.stderr) <= CAP + len(TRUNCATED)
    if name != "gigabytes-at-once":  # (that one dies of its memory limit before it writes)
        assert r.stdout.endswith(TRUNCATED) or r.stderr.endswith(TRUNCATED) or name == "a-file-in-scratch"
    assert elapsed < WALL + 10
    assert free_bytes() > before - (256 << 20)  # nothing big left on disk


def test_floods_at_once_stay_capped(sandbox):
    """16 floods at the same time: each capped, all gone, no disk left used."""
    before = free_bytes()
    codes = [FLOODS[n] for n in FLOODS] * (AT_ONCE // len(FLOODS))
    t0 = time.monotonic()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        results = list(pool.map(lambda c: sandbox.run_python(c, Limits(wall_seconds=WALL)), codes))
    assert all(r.status in ("crashed", "timed_out", "failed") for r in results)
    assert all(len(r.stdout) <= CAP + len(TRUNCATED) for r in results)
    assert time.monotonic() - t0 < 60
    assert free_bytes() > before - (256 << 20)


# ---- hunting for the user's files, many at once ------------------------------------------------------------------
class Canary:
    def __init__(self, path: Path, mode: int):
        self.path = path
        self.content = "canary-" + secrets.token_hex(16)
        path.write_text(self.content)
        os.chmod(path, mode)
        self.digest = self.fingerprint()

    def fingerprint(self):
        st = self.path.stat()
        return hashlib.sha256(self.path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size, st.st_mode

    def unchanged(self) -> bool:
        return self.fingerprint() == self.digest


@pytest.fixture
def canaries():
    home = Path.home()
    tag = secrets.token_hex(4)
    ssh = home / f".ssh-itas-canary-{tag}"
    ssh.mkdir(mode=0o700)
    made = [Canary(home / f".itas-canary-{tag}", 0o644),  # world-readable: only isolation protects it
            Canary(ssh / "id_ed25519", 0o600),  # an ssh-like private key
            Canary(ssh / "authorized_keys", 0o644),
            Canary(Path(tempfile.gettempdir()) / f"itas-canary-{tag}", 0o666)]
    try:
        yield made
    finally:
        for c in made:
            c.path.unlink(missing_ok=True)
        ssh.rmdir()


def hunter(canaries, home: Path) -> str:
    """A program that tries every way we know to read the canaries, prints what it finds, then 'hunt done'."""
    paths = [str(c.path) for c in canaries]
    return f"""
import glob, os
paths = {paths!r}
home = {str(home)!r}
def show(label, fn):
    try:
        print(label, repr(fn())[:2000])
    except Exception as exc:
        print(label, 'refused:', type(exc).__name__)
for p in paths:
    show('open', lambda p=p: open(p).read())
    show('proc-root', lambda p=p: open('/proc/1/root' + p).read())
    show('proc-self-root', lambda p=p: open('/proc/self/root' + p).read())
    show('proc-cwd-up', lambda p=p: open('/proc/self/cwd/../../..' + p).read())
for d in (home, '/root', '/home', os.path.expanduser('~root'), os.path.dirname(paths[1])):
    show('listdir ' + d, lambda d=d: os.listdir(d))
    show('glob ' + d, lambda d=d: [open(f).read() for f in glob.glob(d + '/.*') + glob.glob(d + '/*')
                                  if os.path.isfile(f)])
show('environ', lambda: dict(os.environ))
seen = 0
for top in ('/root', '/home', '/tmp', '/var', '/srv', '/opt', '/mnt', '/work'):
    for dirpath, dirnames, filenames in os.walk(top):
        for f in filenames:
            seen += 1
            if 'itas-canary' in f or 'id_ed25519' in f:
                show('walk ' + f, lambda: open(os.path.join(dirpath, f)).read())
        if seen > 20000:
            break
print('hunt done', seen)
"""


def interpreter_dirs() -> list[str]:
    """Names in the home directory that the sandbox re-exposes because the Python interpreter lives there."""
    home = Path.home().resolve()
    names = set()
    for p in Sandbox.expose_paths():
        p = Path(p).resolve()
        if p != home and home in p.parents:
            names.add(p.relative_to(home).parts[0])
    return sorted(names)


def leaked(text: str, canaries) -> list[str]:
    return [c.content for c in canaries if c.content in text]


def test_many_programs_at_once_cannot_read_home_or_keys(sandbox, canaries):
    home = Path.home()
    code = hunter(canaries, home)
    # outside the sandbox the same program finds every canary: the hunt is a real one
    import subprocess
    import sys

    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "hunt done" in free.stdout and sorted(leaked(free.stdout, canaries)) == sorted(c.content for c in canaries)
    hog = "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))"
    jobs = [code] * 10 + [FLOODS["raw-fd-writes"]] * 3 + [hog] * 3
    assert len(jobs) == AT_ONCE
    with ThreadPoolExecutor(AT_ONCE) as pool:
        results = list(pool.map(lambda c: sandbox.run_python(c, Limits(wall_seconds=20)), jobs))
    hunts = results[:10]
    for r in hunts:  # every hunter ran to its end, found nothing
        assert r.status == "passed", (r.status, r.stderr[-500:])
        assert "hunt done" in r.stdout
        assert "refused" in r.stdout
    for r in results:
        assert leaked(r.stdout + r.stderr + repr(r.events), canaries) == []
    for r in results[10:]:
        assert r.status in ("crashed", "timed_out", "failed")
    assert all(c.unchanged() for c in canaries)


def test_hostile_solutions_scored_at_once_through_a_code_benchmark(sandbox, canaries, tmp_path):
    """The same through the HumanEval scorer, as a search would run them: all scored 0, nothing leaked."""
    from itas.benchmarks import load_benchmark

    bench = load_benchmark("humaneval", sandbox=sandbox, cache_dir=tmp_path / "cache")
    bench.scorer.opts["time_floor"] = 1.0
    q = bench.question("HumanEval/0")
    correct = ("    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n")

    def solution(prelude: str) -> str:
        body = "\n".join("    " + line for line in prelude.strip().splitlines())
        return ("```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float)"
                " -> bool:\n" + body + "\n" + correct + "```\n")

    assert bench.score(q, solution("pass")).value == 1  # the harmless version passes
    reads = [f"print(open({str(c.path)!r}).read())" for c in canaries]
    preludes = (reads * 4)[:8] + [
        "while True:\n    print('x' * 1000)",
        "import os\nb = b'w' * (1 << 20)\nwhile True:\n    os.write(1, b)",
        # the home directory holds nothing but the interpreter's own folders, re-exposed read-only
        f"import os\nassert [f for f in os.listdir({str(Path.home())!r}) if f not in {interpreter_dirs()!r}]",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "x = bytearray(1 << 40)",
        "import time\ntime.sleep(3600)",
        "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    ]
    assert len(preludes) == AT_ONCE
    with ThreadPoolExecutor(AT_ONCE) as pool:
        scores = list(pool.map(lambda p: bench.score(q, solution(p)), preludes))
    for prelude, score in zip(preludes, scores, strict=True):
        assert score.value == 0, (prelude, score)
        assert leaked(score.detail + (score.extracted or ""), canaries) == []
    assert all(c.unchanged() for c in canaries)
