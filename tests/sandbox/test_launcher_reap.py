"""The launcher's reaping of re-parented orphans must not swallow the program's own exit status.

Run in a fresh interpreter: ``waitpid(-1)`` in the pytest process could reap other tests' children.
"""
import subprocess
import sys

SCRIPT = r"""
import os, time
from itas.sandbox import _launcher
orphan = os.fork()
if orphan == 0:
    os._exit(0)
program = os.fork()
if program == 0:
    os._exit(7)
time.sleep(0.2)  # both have exited: waitpid(-1) may return either first
status = _launcher._reap_all(program)
assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7, status
assert _launcher._reap_all(program) is None
assert _launcher._reap_all(12345678) is None
print("ok")
"""


def test_reaping_orphans_returns_the_programs_status_when_it_is_reaped_too():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
