"""Runs one model server and stops it when nobody owns it any more.

``python -m itas.pool.watchdog RECORD_ID LOG -- ARGS...`` (started by itas in a new session, so it leads the
server's process group). Every second it reads its record in the state file: when its owner process has died,
another itas process that shares the server becomes the owner; when the record is gone, or the owner has died
with no one sharing and no other itas process adopted the server within the grace period
(``ITAS_ORPHAN_GRACE`` seconds, default 60), it stops the server's whole process group. When the server
exits by itself, the watchdog exits with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def stop_group(pgid: int, child: subprocess.Popen | None, grace: float = 15.0) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM) if child is None else child.terminate()
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        if child is not None and child.poll() is not None:
            break
        time.sleep(0.2)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    from itas.pool import state

    record_id, log_path = sys.argv[1], sys.argv[2]
    args = sys.argv[sys.argv.index("--") + 1:]
    grace = float(os.environ.get("ITAS_ORPHAN_GRACE", "60"))
    log = open(log_path, "ab", buffering=0)
    child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    pgid = os.getpgid(0)

    def on_term(signum, frame):
        stop_group(pgid, child)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the owner's terminal is the owner's to handle
    orphaned_since: float | None = None
    while True:
        code = child.poll()
        if code is not None:
            sys.exit(code)
        time.sleep(1.0)
        records = {r.get("id"): r for r in state.read()}
        rec = records.get(record_id)
        if rec is None:
            log.write(b"\n[itas watchdog] record removed from the state file: stopping the server\n")
            stop_group(pgid, child)
            sys.exit(0)
        if state.owner_alive(rec):
            orphaned_since = None
            continue
        with state.locked() as recs:  # the owner died: another itas process that shares the server takes it
            handed = any(r.get("id") == record_id and state.hand_over(r) for r in recs)
        if handed:
            orphaned_since = None
            continue
        orphaned_since = orphaned_since or time.time()
        if time.time() - orphaned_since >= grace:
            log.write(b"\n[itas watchdog] owner died and nobody adopted the server: stopping it\n")
            with state.locked() as recs:
                recs[:] = [r for r in recs if r.get("id") != record_id]
            stop_group(pgid, child)
            sys.exit(0)


if __name__ == "__main__":
    main()
