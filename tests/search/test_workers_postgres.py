"""Several workers on one study in a real PostgreSQL server (from Debian's packages, started on loopback by the
test itself) against a fast scripted endpoint: the budget is met exactly, no trial is lost or run twice, a killed
worker's trial is picked up by another, and a report is made from the database alone."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from itas.pool.serving import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:  # a fresh machine: install the server from Debian's packages
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, capture_output=True)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="itas-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    port = free_port()
    log = root / "log"
    log.touch()
    sock = root / "sock"
    sock.mkdir()
    for p in (log, sock):
        shutil.chown(p, "postgres", "postgres")
    subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([*as_pg, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "itas"], check=True,
                       capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/itas"
    finally:
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def endpoint():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--delay", "0.05"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait()


def files(tmp_path: Path, url: str) -> tuple[Path, Path]:
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump({"models": {"smollm2": {"model": "fake-a", "endpoints": [url]},
                                               "gemma3": {"model": "fake-b", "endpoints": [url]}}}))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"stages": [
        {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2, 3, 4]}},
        {"fuse": {"layers": [0, 1], "model": ["smollm2", "gemma3"]}},
        {"vote": {"optional": True}}]}))
    return pool, space


def load(url: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def test_four_workers_finish_exactly_the_budget(tmp_path, postgres_url, endpoint, data_dir):
    pool, space = files(tmp_path, endpoint)
    env = {**os.environ, "ITAS_STATE_DIR": str(tmp_path / "state"), "ITAS_HEARTBEAT": "1", "ITAS_HEARTBEAT_GRACE": "15"}
    budget, name = 12, "itas-w4"
    first = subprocess.Popen([sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", str(budget),
                              "--subset", "3", "--space", str(space), "--pool", str(pool), "--storage", postgres_url,
                              "--out", str(tmp_path / "w4"), "--jobs", "2", "--data-dir", str(data_dir)],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # the study exists once the first worker has written its configuration
        try:
            if "itas_config" in load(postgres_url, name).user_attrs:
                break
        except KeyError:
            pass
        time.sleep(0.3)
    workers = [subprocess.Popen([sys.executable, "-m", "itas", "worker", "--storage", postgres_url, "--study", name,
                                 "--out", str(tmp_path / f"w{i}"), "--jobs", "2", "--data-dir", str(data_dir)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(3)]
    outs = [p.communicate(timeout=300) for p in [first, *workers]]
    for p, (_, err) in zip([first, *workers], outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    study = load(postgres_url, name)
    evaluated = [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated"]
    assert len(evaluated) == budget
    fps = [t.user_attrs["fingerprint"] for t in evaluated]
    assert len(fps) == len(set(fps))  # no architecture evaluated twice
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    past = [t for t in study.trials if "past the budget" in (t.user_attrs.get("reason") or "")]
    for t in past:
        assert "metrics" not in t.user_attrs  # stopped before its first call
    # every worker wrote its own local artifacts for the trials it evaluated
    local = {int(p.parent.name) for d in ["w4", "w0", "w1", "w2"] for p in (tmp_path / d / "trials").glob("*/questions.jsonl")}
    assert {t.number for t in evaluated} <= local
    # a report from the database alone
    rep = subprocess.run([sys.executable, "-m", "itas", "report", "--storage", postgres_url, "--study", name,
                          "--format", "json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    report_trials = {row["trial"] for run in (data if isinstance(data, list) else data["runs"]) for row in run["front"]}
    assert report_trials and report_trials <= {t.number for t in evaluated}


def test_a_killed_workers_trial_is_picked_up_by_another(tmp_path, postgres_url, data_dir):
    port = free_port()
    slow = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--delay", "1.0"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.8)
        pool, space = files(tmp_path, f"http://127.0.0.1:{port}/v1")
        env = {**os.environ, "ITAS_STATE_DIR": str(tmp_path / "state"), "ITAS_HEARTBEAT": "1",
               "ITAS_HEARTBEAT_GRACE": "3"}
        budget, name = 4, "itas-kill"
        victim = subprocess.Popen([sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget",
                                   str(budget), "--subset", "2", "--space", str(space), "--pool", str(pool),
                                   "--storage", postgres_url, "--out", str(tmp_path / "kill"), "--jobs", "1",
                                   "--data-dir", str(data_dir)], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        running = None
        while time.time() < deadline and running is None:
            try:
                running = next((t for t in load(postgres_url, name).trials
                                if t.state.name == "RUNNING" and t.user_attrs.get("itas_reserved")), None)
            except KeyError:
                pass
            time.sleep(0.2)
        assert running is not None
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        rescuer = subprocess.run([sys.executable, "-m", "itas", "worker", "--storage", postgres_url, "--study", name,
                                  "--out", str(tmp_path / "rescuer"), "--data-dir", str(data_dir)], cwd=REPO,
                                 env=env, capture_output=True, text=True, timeout=300)
        assert rescuer.returncode == 0, rescuer.stderr[-2000:]
        study = load(postgres_url, name)
        killed = next(t for t in study.trials if t.number == running.number)
        assert killed.state.name == "FAIL"  # marked failed through its stale heartbeat...
        evaluated = [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated"]
        assert len(evaluated) == budget
        # ...and its architecture evaluated by the other worker
        assert running.user_attrs["fingerprint"] in {t.user_attrs["fingerprint"] for t in evaluated}
    finally:
        slow.terminate()
        slow.wait()
