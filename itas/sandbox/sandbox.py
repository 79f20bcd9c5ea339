"""Run untrusted (model-written) Python in a separate, unprivileged, isolated, resource-limited process.

Isolation modes, chosen once per process (override with ``ITAS_SANDBOX_MODE``):

``namespaces`` (the normal mode; needs root and ``unshare`` from util-linux)
    New network (only a downed loopback: no connection anywhere, not even to this machine), PID (the program
    sees only its own processes; all of them die with the sandbox), mount, IPC and UTS namespaces. ``/tmp``,
    ``/var/tmp``, ``/dev/shm``, ``/run``, ``/root``, ``/home`` and the caller's home are replaced by empty
    read-only tmpfs mounts, so home-directory secrets cannot be read and the scratch directory (seen as
    ``/tmp/sandbox``) is the only writable place. The program runs as a sandbox user id of its own, with no
    groups: ids from ``ITAS_SANDBOX_UID`` (default 64000) up, skipping real accounts, each held by one running
    program on the whole machine at a time (lock files in ``$TMPDIR/itas-sandbox-locks``), so that the process
    limit counts that program alone and its leftovers can be found and killed by user id.
``setuid`` (root, but namespaces unavailable, e.g. in a container without ``CAP_SYS_ADMIN``)
    The same user id and limits, but no new namespaces: the program can reach the network and read
    world-readable files; leftover processes are killed by their user id.
``plain`` (not root)
    The program runs as the calling user, with resource limits only (no process limit, since it would count
    all of the user's processes), in its own process group. Use it only for code you would run anyway.

In every mode: a wall-clock limit (the whole process tree is killed at it), an address-space limit
(``RLIMIT_AS``), a process limit (``RLIMIT_NPROC``, after dropping to the sandbox user), a file-size limit, an
open-files limit, a CPU-seconds limit and no core dumps; a fresh scratch directory removed afterwards; output
read back up to a cap. At most ``workers`` programs run at once (``ITAS_SANDBOX_WORKERS``, default: the
number of CPUs); further calls wait for a free slot, so any number of threads may call :meth:`Sandbox.run`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pwd
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from itas.errors import ItasError

log = logging.getLogger("itas.sandbox")

MODES = ("namespaces", "setuid", "plain")
_LAUNCHER = Path(__file__).with_name("_launcher.py")
_DRIVER = Path(__file__).with_name("_driver.py")
_LAUNCHER_FAILED = 121
INNER_SCRATCH = "/tmp/sandbox"
UID_RANGE = 256  # sandbox user ids: ITAS_SANDBOX_UID .. +255 (skipping real accounts), one per running program


class SandboxError(ItasError):
    """The sandbox itself could not run a program (not a failure of the program)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30  # address space
    processes: int = 32  # processes and threads of the sandbox user
    file_bytes: int = 64 << 20  # largest file the program may write (its output files included)
    open_files: int = 256
    output_bytes: int = 64 << 10  # how much of stdout and stderr is read back

    def scaled(self, wall_seconds: float) -> Limits:
        return replace(self, wall_seconds=wall_seconds)


@dataclass(frozen=True)
class RunResult:
    """What happened to one program.

    ``status``: ``passed`` (exit code 0), ``failed`` (another exit code), ``timed_out`` (killed at the wall-clock
    limit) or ``crashed`` (killed by a signal: memory, file size or CPU limits, a segfault).
    """

    status: str
    returncode: int | None
    signal: int | None
    duration: float
    stdout: str
    stderr: str
    events: list[dict] = field(default_factory=list)  # what the driver reported (run_job only)
    mode: str = "namespaces"

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _read_capped(f, cap: int) -> str:
    f.seek(0)
    data = f.read(cap + 1)
    text = data[:cap].decode("utf-8", errors="replace")
    if len(data) > cap:
        text += "\n[output truncated]"
    return text


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` to end (without Popen.wait's polling sleeps); False if it is still running."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): Popen's own polling
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if ready:
        proc.wait()
    return bool(ready)


def _free_uids(first: int, count: int) -> list[int]:
    uids, uid = [], first
    while len(uids) < count:
        try:
            pwd.getpwuid(uid)  # taken by a real account: skip it
        except KeyError:
            uids.append(uid)
        uid += 1
    return uids


class Sandbox:
    """A bounded set of sandbox slots. Thread-safe; create one per process (see :func:`default_sandbox`)."""

    def __init__(self, workers: int | None = None, mode: str | None = None, limits: Limits | None = None,
                 uid_base: int | None = None, hide: list[str] | None = None, scratch_root: str | Path | None = None):
        workers = workers or int(os.environ.get("ITAS_SANDBOX_WORKERS") or 0) or (os.cpu_count() or 1)
        self.workers = max(1, workers)
        self.limits = limits or Limits()
        base = uid_base or int(os.environ.get("ITAS_SANDBOX_UID") or 64000)
        self._candidate_uids = _free_uids(base, UID_RANGE)
        self.uids: set[int] = set()  # the user ids this sandbox has run programs as
        self._slots = threading.BoundedSemaphore(self.workers)
        self._extra_hide = list(hide or [])
        self._requested_mode = mode or os.environ.get("ITAS_SANDBOX_MODE") or None
        if self._requested_mode and self._requested_mode not in MODES:
            raise SandboxError(f"ITAS_SANDBOX_MODE '{self._requested_mode}' is not one of {', '.join(MODES)}")
        self._mode: str | None = None
        self._mode_lock = threading.Lock()
        self.mode_reason = ""
        self._base_dir: Path | None = Path(scratch_root) if scratch_root is not None else None

    # ---- mode -----------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The isolation mode, detected on first use (and announced once if weaker than ``namespaces``)."""
        if self._mode is None:
            with self._mode_lock:
                if self._mode is None:
                    self._mode = self._detect_mode()
        return self._mode

    def _detect_mode(self) -> str:
        if self._requested_mode:
            self.mode_reason = "ITAS_SANDBOX_MODE"
            if self._requested_mode == "plain" or os.geteuid() == 0:
                return self._requested_mode
            raise SandboxError(f"sandbox mode '{self._requested_mode}' needs root")
        if os.geteuid() != 0:
            reason = "itas is not running as root, so it cannot switch to a sandbox user or create namespaces"
            return self._weak("plain", reason)
        if not shutil.which("unshare"):
            return self._weak("setuid", "the 'unshare' command (util-linux) is not installed")
        probe = self._probe("namespaces")
        if probe is None:
            return "namespaces"
        weak_probe = self._probe("setuid")
        if weak_probe is None:
            return self._weak("setuid", f"creating namespaces failed ({probe})")
        return self._weak("plain", f"creating namespaces failed ({probe}) and the sandbox user cannot run "
                                   f"{sys.executable} ({weak_probe})")

    def _weak(self, mode: str, reason: str) -> str:
        self.mode_reason = reason
        log.warning("itas sandbox: %s; running model-written code in the weaker '%s' mode (%s)", reason, mode,
                    "no network or process isolation" if mode == "setuid" else "resource limits only")
        return mode

    def _probe(self, mode: str) -> str | None:
        try:
            result, _ = self._run(mode, [sys.executable, "-I", "-S", "-c", "print('ok')"], {}, Limits(wall_seconds=20))
        except SandboxError as exc:
            return str(exc)
        if result.status == "passed" and result.stdout.strip() == "ok":
            return None
        return (result.stderr.strip().splitlines() or [result.status])[-1][:200]

    # ---- running --------------------------------------------------------------------------------------------
    def run(self, argv: list[str], files: dict[str, str] | None = None, limits: Limits | None = None) -> RunResult:
        """Run ``argv`` (a command line; paths relative to the scratch directory work since it is the working
        directory) with ``files`` (name -> text) written into a fresh scratch directory."""
        return self._run(self.mode, argv, files or {}, limits or self.limits)[0]

    def run_python(self, code: str, limits: Limits | None = None) -> RunResult:
        """Run a Python program given as source text."""
        return self.run([sys.executable, "-I", "-B", "main.py"], {"main.py": code}, limits)

    def run_job(self, job: dict, limits: Limits | None = None) -> RunResult:
        """Run the test driver (``_driver.py``) on ``job`` and return its reported events with the result."""
        nonce = secrets.token_hex(16)
        files = {"_driver.py": _DRIVER.read_text(encoding="utf-8"),
                 "_job.json": json.dumps({**job, "nonce": nonce})}
        argv = [sys.executable, "-I", "-B", "_driver.py", "_job.json"]
        result, results_text = self._run(self.mode, argv, files, limits or self.limits)
        events = []
        for line in results_text.splitlines():
            head, _, body = line.partition(" ")
            if head != nonce:
                continue
            try:
                event = json.loads(body)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return replace(result, events=events)

    def _scratch_base(self) -> Path:
        """Where scratch directories are made (traversable by the sandbox users, for the weaker modes)."""
        if self._base_dir is None:
            self._base_dir = Path(tempfile.gettempdir()) / "itas-sandbox"
        if not self._base_dir.is_dir():
            self._base_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chmod(self._base_dir, 0o711)
        return self._base_dir

    def processes_left(self) -> list[int]:
        """Processes of this sandbox's users still alive (there should be none between runs)."""
        return [pid for uid in self.uids for pid in _pids_of_uid(uid)] if self.mode != "plain" else []

    def hide_paths(self) -> list[str]:
        home = os.path.expanduser("~")
        paths = ["/tmp", "/var/tmp", "/dev/shm", "/run", "/root", "/home", home, tempfile.gettempdir(),
                 *self._extra_hide]
        extra = os.environ.get("ITAS_SANDBOX_HIDE")
        if extra:
            paths += [p for p in extra.split(os.pathsep) if p]
        seen, out = set(), []
        for p in paths:
            p = os.path.realpath(p)
            if p != "/" and p not in seen:
                seen.add(p)
                out.append(p)
        return out

    @staticmethod
    def expose_paths() -> list[str]:
        """Directories the interpreter needs, re-exposed read-only if they lie in a hidden directory."""
        paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                 os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(sys.executable)}
        return sorted(paths | {os.path.realpath(p) for p in paths})

    def _acquire_uid(self) -> tuple[int, int]:
        """A sandbox user id no other run on this machine is using (any process: lock files), and its lock."""
        lock_dir = Path(tempfile.gettempdir()) / "itas-sandbox-locks"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        for uid in self._candidate_uids:
            fd = os.open(lock_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uids.add(uid)
            return uid, fd
        raise SandboxError(f"all {len(self._candidate_uids)} sandbox user ids are in use")

    def _run(self, mode: str, argv: list[str], files: dict[str, str], limits: Limits) -> tuple[RunResult, str]:
        with self._slots:
            if mode == "plain":
                return self._run_as(mode, os.getuid(), argv, files, limits)
            uid, lock = self._acquire_uid()
            try:
                self._kill_uid(uid)  # a crashed earlier process may have left some behind
                return self._run_as(mode, uid, argv, files, limits)
            finally:
                self._kill_uid(uid)
                os.close(lock)  # releases the user id

    def _run_as(self, mode: str, uid: int, argv: list[str], files: dict[str, str],
                limits: Limits) -> tuple[RunResult, str]:
        scratch = None
        try:
            scratch = Path(tempfile.mkdtemp(prefix="run-", dir=self._scratch_base()))
            for name, text in files.items():
                (scratch / name).write_text(text, encoding="utf-8")
            if mode != "plain":
                for path in [scratch, *(scratch / n for n in files)]:
                    os.chown(path, uid, uid)
            os.chmod(scratch, 0o700)
            return self._launch(mode, uid, scratch, argv, limits)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _launch(self, mode: str, uid: int, scratch: Path, argv: list[str], limits: Limits) -> tuple[RunResult, str]:
        workdir = INNER_SCRATCH if mode == "namespaces" else str(scratch)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                tempfile.TemporaryFile() as res, tempfile.TemporaryFile() as status:
            cfg = {
                "mode": mode, "uid": uid, "gid": uid, "scratch": str(scratch), "inner_scratch": INNER_SCRATCH,
                "hide": self.hide_paths(), "expose": self.expose_paths(), "argv": argv,
                "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                        "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"},
                "limits": {"memory": limits.memory_bytes, "processes": limits.processes,
                           "file_size": limits.file_bytes, "open_files": limits.open_files,
                           "cpu": int(limits.wall_seconds) + 2},
                "wall": limits.wall_seconds,
                "fds": {"stdout": out.fileno(), "stderr": err.fileno(), "results": res.fileno(),
                        "status": status.fileno()},
            }
            launcher = [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(cfg)]
            if mode == "namespaces":
                launcher = ["unshare", "--net", "--pid", "--mount", "--ipc", "--uts", "--fork", "--kill-child",
                            "--mount-proc", "--", *launcher]
            fds = (out.fileno(), err.fileno(), res.fileno(), status.fileno())
            start = time.monotonic()
            try:
                proc = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=fds,
                                        start_new_session=True)
            except OSError as exc:
                raise SandboxError(f"cannot start the sandbox: {exc}") from None
            if not _wait(proc, limits.wall_seconds + 10):  # the launcher should have stopped it: make sure
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            elapsed = time.monotonic() - start
            status.seek(0)
            raw_status = status.read().decode("utf-8", errors="replace")
            stdout = _read_capped(out, limits.output_bytes)
            stderr = _read_capped(err, limits.output_bytes)
            res.seek(0)
            results_text = res.read(limits.file_bytes).decode("utf-8", errors="replace")
        if not raw_status:
            tail = " ".join(stderr.strip().splitlines()[-2:])[:300]
            raise SandboxError(f"the sandbox launcher failed (exit {proc.returncode}): {tail or 'no message'}")
        info = json.loads(raw_status)
        if info["timed_out"]:
            state = "timed_out"
        elif info["signal"] is not None:
            state = "crashed"
        elif info["returncode"] == 0:
            state = "passed"
        else:
            state = "failed"
        result = RunResult(status=state, returncode=info["returncode"], signal=info["signal"],
                           duration=info.get("duration", elapsed), stdout=stdout, stderr=stderr, mode=mode)
        return result, results_text

    def _kill_uid(self, uid: int) -> None:
        for _ in range(100):
            pids = _pids_of_uid(uid)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox: one bound on parallel runs for every benchmark of the process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default
