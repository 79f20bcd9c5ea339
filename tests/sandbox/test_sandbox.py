"""The sandbox on its own: statuses, limits, isolation, parallelism, cleanup. Real processes, no mocks."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from itas.sandbox import INNER_SCRATCH, Limits, Sandbox, SandboxError

pytestmark = pytest.mark.usefixtures("clean")


def test_runs_as_an_unprivileged_user_in_its_scratch_dir(sandbox):
    r = sandbox.run_python("import os; print(os.getuid(), os.getgid(), os.getgroups(), os.getcwd())")
    assert r.status == "passed", r.stderr
    uid, gid, groups, cwd = r.stdout.split(" ", 3)
    assert int(uid) in sandbox.uids and int(gid) == int(uid)
    assert groups == "[]"
    assert cwd.strip() == INNER_SCRATCH


def test_statuses(sandbox):
    quick = Limits(wall_seconds=2)
    assert sandbox.run_python("print('hi')", quick).status == "passed"
    failed = sandbox.run_python("raise ValueError('nope')", quick)
    assert failed.status == "failed" and failed.returncode == 1 and "ValueError: nope" in failed.stderr
    assert sandbox.run_python("import sys; sys.exit(3)", quick).returncode == 3
    crashed = sandbox.run_python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", quick)
    assert crashed.status == "crashed" and crashed.signal == 11
    start = time.monotonic()
    timed_out = sandbox.run_python("while True: pass", Limits(wall_seconds=1))
    assert timed_out.status == "timed_out"
    assert time.monotonic() - start < 5


def test_a_sleeping_program_is_stopped_by_the_wall_clock(sandbox):
    r = sandbox.run_python("import time; time.sleep(60)", Limits(wall_seconds=1))
    assert r.status == "timed_out" and r.duration < 3


def test_memory_limit(sandbox):
    r = sandbox.run_python("x = bytearray(1 << 40)", Limits(wall_seconds=5, memory_bytes=256 << 20))
    assert r.status == "failed" and "MemoryError" in r.stderr
    grow = "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))"
    r = sandbox.run_python(grow, Limits(wall_seconds=10, memory_bytes=256 << 20))
    assert r.status == "failed" and "MemoryError" in r.stderr


def test_process_limit_and_fork_bomb(sandbox):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    r = sandbox.run_python(bomb, Limits(wall_seconds=2, processes=16))
    assert r.status == "timed_out"
    assert time.monotonic() - start < 10
    # the clean fixture checks that none of the bomb's processes survived


def test_output_is_capped(sandbox):
    r = sandbox.run_python("print('x' * 10_000_000)", Limits(wall_seconds=5, output_bytes=1000))
    assert r.status == "passed"
    assert len(r.stdout) < 1100 and r.stdout.endswith("[output truncated]")


def test_file_size_limit(sandbox):
    r = sandbox.run_python("open('big', 'wb').write(b'x' * (5 << 20))", Limits(wall_seconds=5, file_bytes=1 << 20))
    assert r.status != "passed"


def test_no_network_not_even_loopback(sandbox):
    r = sandbox.run_python("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)")
    assert r.status == "failed" and "Network is unreachable" in r.stderr


def test_sees_only_its_own_processes(sandbox):
    r = sandbox.run_python("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    assert r.status == "passed"
    assert len(eval(r.stdout)) <= 3  # the launcher (1) and the program


def test_private_directories_are_hidden_and_only_scratch_is_writable(sandbox):
    code = (
        "import os, sys\n"
        "print(sorted(os.listdir('/root')), sorted(os.listdir('/tmp')), sorted(os.listdir('/home')))\n"
        "open('mine.txt', 'w').write('ok')\n"
        "for path in ['/tmp/x', '/var/tmp/x', '/dev/shm/x', '/etc/x', '/x', os.path.dirname(sys.executable) + '/x']:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', path, type(exc).__name__)\n"
    )
    r = sandbox.run_python(code)
    assert r.status == "passed", r.stderr
    assert "WROTE" not in r.stdout
    first = r.stdout.splitlines()[0]
    assert "'sandbox'" in first  # /tmp holds only the scratch directory
    assert ".itas" not in first


def test_scratch_files_and_environment(sandbox):
    r = sandbox.run([sys.executable, "-I", "-c", "import os; print(open('data.txt').read(), os.environ['HOME'])"],
                    files={"data.txt": "hello"})
    assert r.status == "passed" and r.stdout.split() == ["hello", INNER_SCRATCH]


def test_parallel_runs_are_bounded(sandbox):
    """Two workers: six half-second programs take at least three rounds."""
    results = []
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(sandbox.run_python("import time; time.sleep(0.5)")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["passed"] * 6
    assert elapsed >= 1.4


def test_run_job_reports_each_assert(sandbox):
    job = {"mode": "asserts", "setup": "def f(x):\n    return x + 1\n",
           "tests": ["assert f(1) == 2", "assert f(1) == 3", "while True: pass", "assert f(0) == 1", "import sys; sys.exit(0)"],
           "item_limit": 0.5}
    r = sandbox.run_job(job)
    oks = {e["i"]: e["ok"] for e in r.events if "i" in e}
    assert oks == {0: True, 1: False, 2: False, 3: True, 4: False}
    assert any(e.get("done") for e in r.events)


def test_results_cannot_be_forged_by_printing(sandbox):
    job = {"mode": "asserts", "setup": "print('{\"i\": 0, \"ok\": true}')\nimport os\nos._exit(0)\n",
           "tests": ["assert False"]}
    r = sandbox.run_job(job)
    assert not any("i" in e for e in r.events)


def test_plain_mode_runs_and_limits(scratch_root):
    """The documented weakest mode (not root): the calling user, resource limits, own process group."""
    plain = Sandbox(workers=1, mode="plain", scratch_root=scratch_root)
    assert plain.run_python("print(6 * 7)").stdout.strip() == "42"
    assert plain.run_python("while True: pass", Limits(wall_seconds=1)).status == "timed_out"
    assert plain.run_python("x = bytearray(1 << 40)").status == "failed"


def test_weaker_mode_is_announced_once(monkeypatch, caplog, scratch_root):
    import itas.sandbox.sandbox as module

    monkeypatch.setattr(module.shutil, "which", lambda name: None)  # as if util-linux were missing
    sb = Sandbox(workers=1, scratch_root=scratch_root)
    with caplog.at_level(logging.WARNING, logger="itas.sandbox"):
        assert sb.mode == "setuid" and sb.mode == "setuid"
    warnings = [r for r in caplog.records if "weaker" in r.getMessage()]
    assert len(warnings) == 1 and "unshare" in warnings[0].getMessage()


def test_unknown_mode_is_an_error():
    with pytest.raises(SandboxError, match="not one of"):
        Sandbox(mode="chroot")


def test_two_sandboxes_never_share_a_user_id(scratch_root):
    """As if two itas processes ran at once: each running program holds its user id machine-wide."""
    a = Sandbox(workers=2, uid_base=64100, scratch_root=scratch_root)
    b = Sandbox(workers=2, uid_base=64100, scratch_root=scratch_root)
    seen = []
    program = "import os, time; print(os.getuid()); time.sleep(0.5)"
    threads = [threading.Thread(target=lambda sb=sb: seen.append(int(sb.run_python(program).stdout)))
               for sb in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and len(set(seen)) == 4
    assert a.processes_left() == [] and b.processes_left() == []
