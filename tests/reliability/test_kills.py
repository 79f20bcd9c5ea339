"""SIGKILL at random moments of a search, 20 times in a row on ONE results directory, then a resume that
finishes; and damaged files in a results directory.

The endpoint is a fast scripted server that itas itself starts (a pool with a ``serve:`` section), answering
after a short delay so that calls are in flight when the kill comes; it logs every request it receives and
answers (tests/reliability/logged_server.py). After every kill: no evaluated trial lost, changed or evaluated
twice, no more than the budget evaluated, the tables never ahead of the study, no sample in the call cache that
was not asked for, and no sample asked for again once stored (what the killed run asked for and did not store
is at most what it had in flight); the managed servers are adopted by the next run, never duplicated, and
none is left once the search ends. At the end: the budget met exactly, trials.csv one row per study trial, the
interrupted trials recorded as such (failed in the study, `interrupted` in trials.csv) with the reason.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.reliability.helpers import (
    REPO,
    SPACE,
    check_table_matches_study,
    is_calibration,
    itas,
    itas_env,
    pool_file,
    request_key_of,
    rows,
    seed_calibration,
    study_trials,
    write_yaml,
)

KILLS = 20
BUDGET = 40
SUBSET = 4
DELAY = 0.3  # seconds the scripted server takes per request
# a space of some two thousand architectures, so that 40 trials rarely sample one already evaluated
KILL_SPACE = {"name": "kills", "max_tokens": 32, "stages": [
    {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3, 4],
                  "temperature": [0.3, 0.7, 1.0]}},
    {"critic": {"optional": True, "model": ["smollm2", "gemma3"]}},
    {"fuse": {"layers": [0, 1], "model": ["smollm2", "gemma3"]}},
    {"vote": {"optional": True}}]}
ANSWER_GRACE = 1.0  # seconds between the server's answer and the client's cache write, at most (loaded machine)


def cache_counts_rw(path: Path) -> Counter:
    """Stored samples per request key, opened as the next itas run would (a killed writer's WAL is recovered)."""
    if not path.exists():
        return Counter()
    db = sqlite3.connect(path, timeout=30)
    try:
        return Counter(dict(db.execute("SELECT key, COUNT(*) FROM calls GROUP BY key").fetchall()))
    except sqlite3.OperationalError:  # the table is not created yet
        return Counter()
    finally:
        db.close()


def read_log(paths) -> list[dict]:
    """Requests of the search (calibration excluded): body, key, n, received and answered times."""
    received: dict[str, dict] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a server stopped while writing it
                continue
            if rec["event"] == "received" and not is_calibration(rec["body"]):
                received[rec["id"]] = {"key": request_key_of(rec["body"]), "n": rec["body"].get("n", 1),
                                       "t": rec["t"], "answered": None}
            elif rec["event"] == "answered" and rec["id"] in received:
                received[rec["id"]]["answered"] = rec["t"]
    return sorted(received.values(), key=lambda r: r["t"])


def server_processes(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (the managed servers' log paths)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in cmd and status[status.rfind(")") + 2] != "Z":
            out.append(int(entry.name))
    return out


def managed_pool(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    logs = {"smollm2": tmp_path / "logs" / "smollm2.jsonl", "gemma3": tmp_path / "logs" / "gemma3.jsonl"}
    logs["smollm2"].parent.mkdir(parents=True)
    models = {}
    for name, served in (("smollm2", "fake-a"), ("gemma3", "fake-b")):
        models[name] = {"model": served, "serve": {
            "args": [sys.executable, "-m", "tests.reliability.logged_server", "--port", "{port}", "--model", served,
                     "--delay", str(DELAY), "--log", str(logs[name])],
            "env": {"PYTHONPATH": str(REPO)}, "ready_timeout": 30}}
    return write_yaml(tmp_path / "pool.yaml", {"models": models}), logs


class Snapshot:
    """What a results directory holds between two runs."""

    def __init__(self, run: Path, budget: int):
        self.budget = budget
        self.trials = study_trials(run) if (run / "config.json").exists() and (run / "study.db").exists() else []
        self.evaluated = {t.number: (tuple(t.values), t.user_attrs.get("fingerprint")) for t in self.trials
                          if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated"}
        self.cache = cache_counts_rw(run / "calls.sqlite")
        self.table = rows(run) if (run / "trials.csv").exists() else []


def check_snapshot(run: Path, before: Snapshot, now: Snapshot) -> None:
    # no evaluated trial lost or changed; none evaluated twice; never more than the budget
    for number, record in before.evaluated.items():
        assert now.evaluated.get(number) == record, f"evaluated trial {number} lost or changed"
    fingerprints = [fp for _, fp in now.evaluated.values()]
    assert len(fingerprints) == len(set(fingerprints)), "an architecture was evaluated twice"
    assert len(now.evaluated) <= now.budget
    # the tables are never ahead of the study (written after it), and every evaluated row has its folder
    by_number = {t.number: t for t in now.trials}
    for r in now.table:
        t = by_number[int(r["trial"])]
        if r["status"] in ("evaluated", "duplicate", "infeasible"):
            assert t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == r["status"], r
        if r["status"] == "evaluated":
            metrics = json.loads((run / "trials" / r["trial"] / "metrics.json").read_text())
            assert metrics["values"] == list(t.values)
    # the cache only grows
    assert all(now.cache[k] >= n for k, n in before.cache.items())


def check_calls(requests: list[dict], before: Counter, after: Counter, killed_at: float | None) -> None:
    """The samples asked for during one run against what the cache gained. A killed run may lose what it had in
    flight (asked, maybe answered, not yet stored); nothing else, and nothing stored is asked for again."""
    asked, in_flight = Counter(), Counter()
    for r in requests:
        asked[r["key"]] += r["n"]
        if killed_at is not None and (r["answered"] is None or r["answered"] > killed_at - ANSWER_GRACE):
            in_flight[r["key"]] += r["n"]
    for key in set(asked) | set(after):
        gained = after[key] - before[key]
        assert gained <= asked[key], f"{key}: {gained} samples stored, {asked[key]} asked for"
        lost = asked[key] - gained
        assert lost <= in_flight[key], f"{key}: {lost} samples asked for and not stored, {in_flight[key]} in flight"


def trials_ended(stderr: Path) -> int:
    """Trials this run has reported as ended so far (its progress lines on standard error)."""
    try:
        return sum(1 for line in stderr.read_text(errors="replace").splitlines() if line.startswith("trial "))
    except OSError:
        return 0


def wait_for_moment(proc: subprocess.Popen, rng, started: float, count_requests, *, startup: tuple[float, float],
                    after: tuple[int, int], extra: float, stderr: Path | None = None, most: int = 0) -> None:
    """Wait for a random moment of the run (or its end): either a random time in ``startup`` seconds (while it
    starts: imports, the study, the servers), or a random short while after its k-th request (k in ``after``),
    when trials run and calls are in flight. Counting requests, not seconds, keeps the kills inside the trials
    on a machine of any speed or load. With ``stderr`` (the run's standard error), the moment comes at the
    latest when the run reports ``most`` trials ended (with 0, at its first request): trials answered from the
    call cache send no request, and a run whose last trials all came from the cache would otherwise end before
    its kill."""
    if stderr is not None and most == 0:  # no trial may end: a moment of its start, or its first request
        deadline, k, extra = time.time() + rng.uniform(startup[0], min(startup[1], 1.0)), 1, 0.0
    elif rng.random() < 0.3:
        deadline, k = time.time() + rng.uniform(*startup), None
    else:
        deadline, k = time.time() + 30, rng.randint(*after)
    pause = rng.uniform(0, extra)
    while proc.poll() is None and time.time() < deadline:
        if k is not None and count_requests(started) >= k:
            time.sleep(pause)
            return
        if stderr is not None and trials_ended(stderr) >= max(most, 1):
            return
        time.sleep(0.02)


def kill_and_resume(tmp_path: Path, search: list[str], run: Path, env: dict, *, kills: int, budget: int, moment,
                    requests, after_each=None) -> dict:
    """Run ``search`` (``--out run`` added, or ``--resume run`` every other time once it exists), SIGKILL it at
    ``moment(proc, started, snapshot, stderr_path)``, ``kills`` times, then let it finish; check the directory and
    the calls after every run. ``requests(start, end)`` lists the requests the servers got in that time."""
    kill_times, snapshot = [], Snapshot(run, budget)
    for leg in range(kills + 1):
        where = ["--out", str(run)] if leg % 2 == 0 or not (run / "config.json").exists() else ["--resume", str(run)]
        started, killed_at = time.time(), None
        stderr_path = tmp_path / f"stderr-{leg}.txt"
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen(search + where, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
            if leg < kills:
                moment(proc, started, snapshot, stderr_path)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                killed_at = time.time()
            proc.wait(timeout=1800)
        stderr = stderr_path.read_text()
        assert "Traceback" not in stderr, stderr[-3000:]
        if leg < kills:
            assert proc.returncode == -signal.SIGKILL, f"run {leg} ended by itself ({proc.returncode}): {stderr}"
            kill_times.append(killed_at - started)
        else:
            assert proc.returncode == 0, stderr[-3000:]
        now = Snapshot(run, budget)
        check_snapshot(run, snapshot, now)
        check_calls(requests(started, killed_at), snapshot.cache, now.cache, killed_at)
        if after_each is not None:
            after_each(leg)
        snapshot = now

    # the end: the budget exactly; trials.csv one row per study trial; interrupted trials with the reason
    trials = check_table_matches_study(run)
    evaluated = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated"]
    assert len(evaluated) == budget
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    table = rows(run)
    interrupted = [r for r in table if r["status"] == "interrupted" and "interrupted" in r["reason"]]
    assert all(r["reason"] for r in table if r["status"] in ("failed", "interrupted"))
    assert not list(run.rglob(".*.tmp"))  # no temporary file of a killed write left behind
    return {"kills": kill_times, "trials": trials, "interrupted": interrupted}


@pytest.mark.timeout(420)
def test_twenty_sigkills_then_resume_lose_and_repeat_nothing(tmp_path, data_dir):
    rng = random.Random(20)
    state = tmp_path / "state"
    env = itas_env(state, ITAS_ORPHAN_GRACE="600")
    pool, logs = managed_pool(tmp_path)
    space = write_yaml(tmp_path / "space.yaml", KILL_SPACE)
    run = tmp_path / "run"
    marker = str(tmp_path / "logs")
    search = [sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", str(BUDGET),
              "--subset", str(SUBSET), "--space", str(space), "--pool", str(pool), "--jobs", "2", "--seed", "7",
              "--data-dir", str(data_dir)]
    servers_seen: set[int] = set()

    def requests(start: float, end: float | None) -> list[dict]:
        return [r for r in read_log(logs.values()) if r["t"] >= start and (end is None or r["t"] <= end)]

    offsets: dict[float, dict] = {}

    def count_requests(start: float) -> int:
        """Search requests received since ``start`` (cheaply: new log lines, calibration left out)."""
        at = offsets.setdefault(start, {p: p.stat().st_size if p.exists() else 0 for p in logs.values()})
        n = 0
        for path, offset in at.items():
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(offset)
                    n += sum(1 for line in f if b'"received"' in line and b"apple" not in line)
        return n

    legs = iter(range(KILLS))

    def moment(proc, started, snapshot, stderr) -> None:
        # every kill must land before the search is done, so a run may end only its share of the trials left
        # (trials answered from the call cache end without a request), and near the end the kills come sooner
        kills_left = KILLS - next(legs)
        left = BUDGET - len(snapshot.evaluated)
        wait_for_moment(proc, rng, started, count_requests, startup=(0.3, 3.0),
                        after=(1, 3) if left <= 6 else (1, 16), extra=0.5, stderr=stderr,
                        most=(left - 1) // kills_left)

    def servers(leg: int) -> None:
        # managed servers: at most one per model recorded, and adopted by the next run rather than started again
        records = json.loads((state / "servers.json").read_text()) if (state / "servers.json").exists() else []
        assert len(records) <= 2, records
        servers_seen.update(r["pid"] for r in records)

    try:
        done = kill_and_resume(tmp_path, search, run, env, kills=KILLS, budget=BUDGET, moment=moment,
                               requests=requests, after_each=servers)
        assert done["interrupted"], "no kill landed in the middle of a trial"
        assert len(servers_seen) <= 4, servers_seen  # (a kill while a server starts may cost one more start)
        # no managed server left: the last run stopped what it owned, and the record file is empty
        deadline = time.time() + 15
        while time.time() < deadline and server_processes(marker):
            time.sleep(0.2)
        assert server_processes(marker) == []
        assert json.loads((state / "servers.json").read_text()) == []
        print(f"kills after {', '.join(f'{k:.1f}' for k in done['kills'])} s; {len(done['trials'])} trials, "
              f"{len(done['interrupted'])} interrupted; servers {sorted(servers_seen)}")
    finally:
        for pid in server_processes(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_search_killed_before_it_wrote_its_configuration_starts_again(tmp_path, data_dir):
    """What a run killed in its first moments leaves (the space and pool copied, the lock, a temporary file, no
    config.json) does not stand in the way of the same command."""
    server = FakeOpenAI().start()
    try:
        env = itas_env(tmp_path / "state")
        pool = pool_file(tmp_path / "pool.yaml", {"smollm2": server.url, "gemma3": server.url})
        space = write_yaml(tmp_path / "space.yaml", SPACE)
        run = tmp_path / "run"
        run.mkdir()
        shutil.copy(space, run / "space.yaml")
        shutil.copy(pool, run / "pool.yaml")
        (run / ".itas.lock").touch()
        (run / ".config.json.k1l2.tmp").write_text('{"kind": "sea')
        out = itas("search", "--benchmark", "gsm8k", "--budget", 2, "--subset", 2, "--space", space, "--pool", pool,
                   "--out", run, "--data-dir", data_dir, env=env)
        assert out.returncode == 0, out.stderr
        assert len([r for r in rows(run) if r["status"] == "evaluated"]) == 2
        assert not list(run.rglob(".*.tmp"))
    finally:
        server.stop()


@pytest.mark.vllm
@pytest.mark.timeout(3600)
def test_three_sigkills_on_the_real_pool(tmp_path, real_pool, real_pool_file, data_dir):
    """Three SIGKILLs at random moments of a real search on the shared pool, then a resume that finishes. The
    requests are seen through a proxy in front of each server (no faults), which logs them across the kills."""
    import yaml

    from tests.faultproxy import FaultProxy

    models = yaml.safe_load(real_pool_file.read_text())["models"]
    proxies = {name: FaultProxy(m["endpoints"][0], rate=0.0).start() for name, m in models.items()}
    try:
        state = tmp_path / "state"
        seed_calibration(state, {f"{proxies[m.name].url}|{m.model}": real_pool.latency[m.name].to_dict()
                                 for m in real_pool.config.models if m.name in real_pool.latency})
        pool = write_yaml(tmp_path / "pool.yaml", {"models": {
            name: {**m, "endpoints": [proxies[name].url]} for name, m in models.items()}})
        space = write_yaml(tmp_path / "space.yaml", {"name": "e2e-kills", "max_tokens": 32, "stages": [
            {"generate": {"models": list(models), "count": [1, 2], "samples": [1, 2, 3], "temperature": [0.3, 0.7]}},
            {"fuse": {"layers": [0, 1], "model": list(models)}}], "constraints": {"max_calls_per_query": 4}})
        run = tmp_path / "run"
        search = [sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", "8", "--subset", "3",
                  "--space", str(space), "--pool", str(pool), "--jobs", "2", "--seed", "3", "--data-dir",
                  str(data_dir)]
        rng = random.Random(3)

        def requests(start: float, end: float | None) -> list[dict]:
            out = []
            for p in proxies.values():
                for a in p.attempts():
                    if a.t >= start and (end is None or a.t <= end) and a.body and not is_calibration(a.body):
                        out.append({"key": request_key_of(a.body), "n": a.n, "t": a.t,
                                    "answered": a.done if a.status == 200 else None})
            return out

        legs = iter(range(3))

        def moment(proc, started, snapshot, stderr) -> None:
            # a run may end only its share of the trials left, so that every kill lands before the search is done
            most = (8 - len(snapshot.evaluated) - 1) // (3 - next(legs))
            wait_for_moment(proc, rng, started, lambda start: len(requests(start, None)), startup=(0.5, 3.0),
                            after=(1, 4), extra=2.0, stderr=stderr, most=most)

        done = kill_and_resume(tmp_path, search, run, itas_env(state), kills=3, budget=8, moment=moment,
                               requests=requests)
        print(f"kills after {', '.join(f'{k:.1f}' for k in done['kills'])} s; {len(done['trials'])} trials, "
              f"{len(done['interrupted'])} interrupted")
    finally:
        for p in proxies.values():
            p.stop()
