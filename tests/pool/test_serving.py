"""Managed serving with a small scripted server: start, stop, adopt, and no orphan left after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from itas.errors import ServingError
from itas.pool import state
from itas.pool.config import parse_pool
from itas.pool.serving import pool_status, reap_orphans, start_pool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("ITAS_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    for rec in state.read():  # never leave a test server behind
        with_group_killed(rec["pid"])


def with_group_killed(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pool_data(model="fake-model", args=None):
    args = args or [sys.executable, "-m", "tests.fake_openai", "--port", "{port}", "--model", model]
    return {"models": {"fake": {"model": model, "serve": {"args": args, "env": {"PYTHONPATH": str(REPO)},
                                                          "ready_timeout": 30}}}}


def write_pool(tmp_path, **kw) -> Path:
    import yaml

    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(pool_data(**kw)))
    return path


def answers(url: str) -> bool:
    try:
        return httpx.get(url + "/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def group_gone(pgid: int, within: float) -> bool:
    from itas.pool.serving import _group_alive

    deadline = time.time() + within
    while time.time() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def test_start_then_stop_leaves_nothing():
    config = parse_pool(pool_data(), "pool.yaml")
    running = start_pool(config, calibrate=False)
    (rec,) = running.started
    url = running.config["fake"].endpoints[0].url
    assert answers(url) and rec["owner"]["pid"] == os.getpid()
    assert [r["id"] for r in state.read()] == [rec["id"]]
    running.stop()
    assert group_gone(rec["pid"], 10) and not answers(url) and state.read() == []


def test_a_server_that_fails_to_start_is_reported_and_forgotten():
    config = parse_pool(pool_data(args=[sys.executable, "-c", "import sys; print('boom {port}'); sys.exit(3)"]),
                        "pool.yaml")
    with pytest.raises(ServingError, match=r"exited with code 3.*boom"):
        start_pool(config, calibrate=False)
    assert state.read() == []


OWNER = textwrap.dedent("""
    import sys, time, yaml
    from itas.pool.config import load_pool
    from itas.pool.serving import start_pool
    running = start_pool(load_pool(sys.argv[1]), calibrate=False)
    print(running.started[0]["url"], flush=True)
    time.sleep(600)
""")


def start_owner(pool_file: Path, env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(pool_file)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    return proc, url


def test_sigkilled_owner_server_is_stopped_by_the_next_itas_command(tmp_path, isolated_state):
    pool_file = write_pool(tmp_path)
    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "ITAS_ORPHAN_GRACE": "600"}
    owner, url = start_owner(pool_file, env)
    (rec,) = state.read()
    assert answers(url)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    time.sleep(0.5)
    assert answers(url)  # the grace period keeps it for adoption...
    out = subprocess.run([sys.executable, "-m", "itas", "pool", "status", "--pool", str(pool_file)],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "orphaned" in out.stdout + out.stderr
    assert group_gone(rec["pid"], 20) and not answers(url)  # ...until any itas command finds it orphaned
    assert state.read() == []


def test_an_orphan_stops_itself_after_the_grace_period(tmp_path, isolated_state):
    pool_file = write_pool(tmp_path)
    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "ITAS_ORPHAN_GRACE": "1"}
    owner, url = start_owner(pool_file, env)
    (rec,) = state.read()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert group_gone(rec["pid"], 20) and not answers(url)  # no itas command needed
    assert state.read() == []


def test_a_new_owner_adopts_an_orphan_with_the_same_spec(tmp_path, isolated_state):
    pool_file = write_pool(tmp_path)
    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "ITAS_ORPHAN_GRACE": "600"}
    owner, url = start_owner(pool_file, env)
    (rec,) = state.read()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    from itas.pool.config import load_pool

    running = start_pool(load_pool(pool_file), calibrate=False)
    assert [r["id"] for r in running.started] == [rec["id"]]  # adopted, not restarted
    assert running.config["fake"].endpoints[0].url == url and answers(url)
    assert state.read()[0]["owner"]["pid"] == os.getpid()
    running.stop()
    assert group_gone(rec["pid"], 10)


def test_pool_up_status_down_from_the_command_line(tmp_path, isolated_state):
    pool_file = write_pool(tmp_path)
    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "COLUMNS": "200"}

    def itas(*args):
        return subprocess.run([sys.executable, "-m", "itas", *args, "--pool", str(pool_file)],
                              capture_output=True, text=True, env=env, cwd=REPO)

    up = itas("pool", "up")
    assert up.returncode == 0, up.stderr
    (rec,) = state.read()
    assert rec["owner"] is None  # detached: it outlives the command that started it
    assert answers(rec["url"])
    st = itas("pool", "status")
    assert "fake" in st.stdout and "yes" in st.stdout and str(rec["port"]) in st.stdout
    reap_orphans()
    assert answers(rec["url"])  # a detached server is never reaped
    statuses = pool_status(parse_pool(json.loads(json.dumps(pool_data())), "p"))
    assert statuses[0].answers
    down = itas("pool", "down")
    assert down.returncode == 0 and "stopped 1" in down.stdout
    assert group_gone(rec["pid"], 15) and state.read() == []


def test_pool_down_stops_what_pool_up_started_before_the_serve_settings_changed(tmp_path, isolated_state):
    import yaml

    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "COLUMNS": "200"}
    pool_file = write_pool(tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = other_dir / "pool.yaml"
    other.write_text(yaml.safe_dump({"models": {"another": pool_data()["models"]["fake"]}}))

    def itas(*args, pool=pool_file):
        return subprocess.run([sys.executable, "-m", "itas", *args, "--pool", str(pool)],
                              capture_output=True, text=True, env=env, cwd=REPO)

    assert itas("pool", "up").returncode == 0
    assert itas("pool", "up", pool=other).returncode == 0
    old, kept = sorted(state.read(), key=lambda r: r["model"] != "fake")
    edited = pool_data()
    edited["models"]["fake"]["serve"]["env"]["ITAS_EDITED"] = "1"  # another spec hash for the same model
    pool_file.write_text(yaml.safe_dump(edited))
    down = itas("pool", "down")
    assert down.returncode == 0 and "stopped 1 server(s)" in down.stdout, down.stdout + down.stderr
    assert "before this pool's serve settings changed" in down.stderr
    assert f"another (port {kept['port']})" in down.stderr and "--all" in down.stderr
    assert group_gone(old["pid"], 15)
    assert [r["id"] for r in state.read()] == [kept["id"]] and answers(kept["url"])
    down_all = itas("pool", "down", "--all")
    assert "stopped 1 server(s)" in down_all.stdout and state.read() == []
    assert group_gone(kept["pid"], 15)


def test_a_second_open_of_the_same_pool_in_one_process_does_not_stop_it():
    config = parse_pool(pool_data(), "pool.yaml")
    first = start_pool(config, calibrate=False)
    second = start_pool(config, calibrate=False)
    assert second.started == [] and [r["id"] for r in second.reused] == [first.started[0]["id"]]
    second.stop()
    url = first.config["fake"].endpoints[0].url
    assert answers(url)  # still running: the first owner stops it
    first.stop()
    assert not answers(url)


def test_a_search_interrupted_while_its_servers_start_stops_them_at_once(tmp_path):
    """Ctrl-C while ``open_pool`` waits for a slow server: the interrupted process stops the server itself, at
    once, rather than waiting for it to be ready and exiting with it running (left to its watchdog's grace)."""
    import asyncio

    from itas.pool.session import open_pool

    args = [sys.executable, "-m", "tests.fake_openai", "--port", "{port}", "--model", "fake-model",
            "--start-delay", "8"]
    data = pool_data(args=args)
    data["models"]["fake"]["serve"]["ready_timeout"] = 120
    config = parse_pool(data, "pool.yaml")

    async def interrupted():
        async def use():
            async with open_pool(config, calibrate=False):
                raise AssertionError("the server should not have been ready")

        task = asyncio.ensure_future(use())
        while not state.read():  # the server has been spawned and recorded
            await asyncio.sleep(0.05)
        (rec,) = state.read()
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rec

    t0 = time.monotonic()
    rec = asyncio.run(interrupted())  # also waits for the thread that was starting the server
    took = time.monotonic() - t0
    assert took < 6, f"the interrupted start took {took:.1f} s to end (the server takes 8 s to start)"
    assert state.read() == [], "the starting server is still recorded"
    assert group_gone(rec["pid"], 5), "the starting server still runs"


OTHER_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[2])
from itas.pool.config import parse_pool
from itas.pool.serving import start_pool
running = start_pool(parse_pool(json.loads(sys.argv[1]), "pool.yaml"), calibrate=False)
print("ready", flush=True)
sys.stdin.readline()
running.stop()
print("stopped", flush=True)
"""


def other_itas_process():
    """Another itas process using the same pool: it starts (or shares) the server, waits for a line, stops."""
    proc = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, json.dumps(pool_data()), str(REPO)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def leave(proc) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "stopped"
    proc.wait(timeout=30)


def test_a_second_process_shares_a_running_server_and_the_last_one_out_stops_it():
    """A search keeps its server while another itas command on the same pool comes and goes, in either order."""
    config = parse_pool(pool_data(), "pool.yaml")
    # the other process leaves first: the server stays up for this one, which now owns it
    other = other_itas_process()
    mine = start_pool(config, calibrate=False)
    (rec,) = state.read()
    url = mine.config["fake"].endpoints[0].url
    assert mine.started == [] and rec["owner"]["pid"] == other.pid and rec["users"] == [state.me()]
    leave(other)
    assert answers(url), "the other process stopped a server this one still uses"
    (rec,) = state.read()
    assert rec["owner"] == state.me() and rec["users"] == []
    mine.stop()
    assert group_gone(rec["pid"], 10) and state.read() == [] and not answers(url)
    # this process leaves first: the other keeps the server, and stops it when it leaves
    mine = start_pool(config, calibrate=False)
    other = other_itas_process()
    (rec,) = state.read()
    url = mine.config["fake"].endpoints[0].url
    assert rec["owner"] == state.me() and [u["pid"] for u in rec["users"]] == [other.pid]
    mine.stop()
    assert answers(url), "this process stopped a server the other still uses"
    assert state.read()[0]["owner"]["pid"] == other.pid
    leave(other)
    assert group_gone(rec["pid"], 10) and state.read() == []


def test_a_sharing_process_takes_over_when_the_owner_is_killed(tmp_path):
    config = parse_pool(pool_data(), "pool.yaml")
    other = other_itas_process()
    mine = start_pool(config, calibrate=False)
    url = mine.config["fake"].endpoints[0].url
    other.kill()
    other.wait()
    deadline = time.time() + 15  # the server's watchdog hands it over within about a second
    while time.time() < deadline and state.read()[0]["owner"]["pid"] != os.getpid():
        time.sleep(0.2)
    (rec,) = state.read()
    assert rec["owner"] == state.me() and answers(url)
    mine.stop()
    assert group_gone(rec["pid"], 10) and state.read() == []
