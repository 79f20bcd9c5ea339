"""The state file of managed servers: one JSON list of records, read and written under a file lock.

A record: id, model, spec hash, pid (of the watchdog, leader of the server's process group), port, url, log,
owner (pid and start time of the itas process that owns it; none for servers started by ``itas pool up``),
start time, and the latency calibration once measured.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from itas.fsutil import atomic_write
from itas.paths import state_dir


def state_file() -> Path:
    return state_dir() / "servers.json"


@contextlib.contextmanager
def locked() -> Iterator[list[dict]]:
    """Read the records under an exclusive lock; what the block leaves in the list is written back."""
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "servers.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            records = read()
            before = json.dumps(records, sort_keys=True)
            yield records
            if json.dumps(records, sort_keys=True) != before:
                _write(records)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read() -> list[dict]:
    path = state_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (json.JSONDecodeError, OSError):
        # a corrupt state file: keep a copy for inspection and start afresh (servers still running are found
        # by the watchdogs, which stop themselves when their record is gone)
        try:
            path.replace(path.with_suffix(".corrupt"))
        except OSError:
            pass
        return []
    return data if isinstance(data, list) else []


def _write(records: list[dict]) -> None:
    atomic_write(state_file(), json.dumps(records, indent=2))


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against a reused pid); None when it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":  # a zombie is dead
        return None
    return fields[19] if len(fields) > 19 else None


def alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    now = process_start_time(pid)
    return now is not None and (start is None or now == start)


def owner_alive(record: dict) -> bool:
    owner = record.get("owner")
    if owner is None:
        return True  # detached (itas pool up): lives until itas pool down
    return alive(owner.get("pid"), owner.get("start"))


def me() -> dict:
    return {"pid": os.getpid(), "start": process_start_time(os.getpid())}


def users_alive(record: dict) -> list[dict]:
    """The other itas processes that share the recorded server with its owner and are still running."""
    return [u for u in record.get("users") or [] if isinstance(u, dict) and alive(u.get("pid"), u.get("start"))]


def hand_over(record: dict) -> bool:
    """When the record's owner has died (or is leaving: its ``users`` no longer list it) and another process still
    shares the server, make that process the owner (in place; the caller holds the lock). True if handed over."""
    users = [u for u in users_alive(record) if u != record.get("owner")]
    if not users:
        return False
    record["owner"], record["users"] = users[0], users[1:]
    return True
