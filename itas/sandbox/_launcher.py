"""The sandbox launcher: the first process inside the sandbox (standard library only, run with ``python -I -S``).

It runs as root. In ``namespaces`` mode it is started by ``unshare --net --pid --mount ... --fork --kill-child
--mount-proc`` and so is process 1 of fresh network, PID, mount, IPC and UTS namespaces. It then:

1. hides the writable and private parts of the file system (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run``,
   ``/root``, ``/home``, the caller's home) under empty read-only-for-others tmpfs mounts, re-exposes read-only
   the few directories the Python interpreter needs that lie below them, and binds the scratch directory at
   ``/tmp/sandbox`` (the only writable place);
2. forks the program, which drops to the sandbox user (``setgroups([])``, ``setgid``, ``setuid``), lowers its
   resource limits (address space, processes, file size, open files, CPU seconds, no core dumps), changes to
   the scratch directory and executes the program;
3. waits for it with a wall-clock deadline, then kills every process left in the namespace and reports what
   happened as one JSON object on the status file descriptor.

In ``setuid`` mode (root, but namespaces unavailable) steps 2 and 3 happen without new namespaces: leftovers are
found and killed by their user id, which belongs to this sandbox slot alone. In ``plain`` mode (not root) the
program runs as the calling user with resource limits only, in its own process group.

Usage: ``python -I -S _launcher.py CONFIG_JSON``.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

LAUNCHER_FAILED = 121  # exit code of the launcher when the sandbox itself could not be set up

_libc = None


def _mount(source, target, fstype, flags, data=None):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)

    def enc(s):
        return None if s is None else s.encode()

    rc = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} on {target}: {os.strerror(err)}")


def _under(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def setup_mounts(cfg):
    """Hide private and writable directories, re-expose what the interpreter needs, bind the scratch dir."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    hide = [h for h in cfg["hide"] if os.path.isdir(h) and h != "/"]
    # a hidden directory inside another hidden one is hidden already
    hide = [h for h in hide if not any(o != h and _under(h, o) for o in hide)]
    expose = [p for p in cfg["expose"] if os.path.isdir(p) and any(_under(p, h) for h in hide)]
    expose_fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in expose}
    scratch_fd = os.open(cfg["scratch"], os.O_PATH | os.O_DIRECTORY)
    for h in hide:
        _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    for p, fd in sorted(expose_fds.items()):
        os.makedirs(p, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
        _mount(None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    inner = cfg["inner_scratch"]
    os.makedirs(inner, mode=0o755, exist_ok=True)
    _mount(f"/proc/self/fd/{scratch_fd}", inner, None, MS_BIND)
    _mount(None, inner, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)
    os.close(scratch_fd)
    # the tmpfs mounts stay root-owned 0755: the sandbox user can write nowhere but the scratch directory


def _child(cfg, workdir):
    """In the forked child: wire the file descriptors, drop privileges, lower limits, exec the program."""
    try:
        fds = cfg["fds"]
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        os.dup2(fds["results"], 3)
        os.closerange(4, 65536)
        if cfg["mode"] != "namespaces":
            os.setsid()
        os.chdir(workdir)
        if cfg["mode"] in ("namespaces", "setuid"):
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        lim = cfg["limits"]
        # lowered after dropping to the sandbox user (RLIMIT_NPROC counts that user's processes)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (lim["memory"], lim["memory"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_size"], lim["file_size"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
        resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))
        if lim.get("processes") and cfg["mode"] != "plain":
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["processes"], lim["processes"]))
        os.umask(0o077)
        os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave without running Python cleanup
        try:
            os.write(2, f"itas sandbox: cannot start the program: {exc}\n".encode())
        finally:
            os._exit(LAUNCHER_FAILED)


def _pids_of_uid(uid):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == uid:
                pids.append(int(name))
        except OSError:
            pass
    return pids


def _kill_all(cfg, child_pid):
    """Kill everything the program started."""
    if cfg["mode"] == "namespaces":
        try:
            os.kill(-1, signal.SIGKILL)  # process 1 of the namespace: every other process in it
        except ProcessLookupError:
            pass
        return
    try:
        os.killpg(child_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cfg["mode"] == "setuid":
        for _ in range(50):  # a fork bomb may race with the killing: repeat until none is left
            pids = [p for p in _pids_of_uid(cfg["uid"]) if p != os.getpid()]
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)


def _reap_all(program_pid=None):
    """Reap every exited child without blocking; return the program's wait status if it was among them.

    Orphans of the program are re-parented to the launcher (process 1 of the namespace), so ``waitpid(-1)`` may
    also reap the program itself when it exits at that moment; its status must not be lost.
    """
    program_status = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return program_status
        if pid == 0:
            return program_status
        if pid == program_pid:
            program_status = status


def main():
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["fds"]["status"]
    workdir = cfg["scratch"]
    if cfg["mode"] == "namespaces":
        setup_mounts(cfg)
        workdir = cfg["inner_scratch"]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(cfg, workdir)
    for key in ("stdout", "stderr", "results"):
        os.close(cfg["fds"][key])
    deadline = start + cfg["wall"]
    timed_out = False
    wait_status = None
    import select

    pidfd = os.pidfd_open(pid)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([pidfd], [], [], min(remaining, 1.0))
        if ready:
            _, wait_status = os.waitpid(pid, 0)
            break
        if cfg["mode"] == "namespaces":
            wait_status = _reap_all(pid)  # orphans of the program are re-parented to us
            if wait_status is not None:
                break
    duration = time.monotonic() - start
    _kill_all(cfg, pid)
    if wait_status is None:
        try:
            _, wait_status = os.waitpid(pid, 0)
        except ChildProcessError:
            wait_status = None
    _reap_all()
    report = {"timed_out": timed_out, "duration": duration, "returncode": None, "signal": None}
    if wait_status is not None:
        if os.WIFSIGNALED(wait_status):
            report["signal"] = os.WTERMSIG(wait_status)
        elif os.WIFEXITED(wait_status):
            report["returncode"] = os.WEXITSTATUS(wait_status)
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001
        sys.stderr.write(f"itas sandbox: launcher failed: {exc!r}\n")
        sys.exit(LAUNCHER_FAILED)
