"""A results directory with a damaged file, as a kill (or a disk) may leave it, given to ``itas search --resume``.

What the study can rebuild (trials.csv, pareto.csv, trial folders, a cut last record, stale temporary files)
is rebuilt and the search goes on; what it cannot (config.json, space.yaml, pool.yaml, the study itself, the
call cache) is a one-line error naming the file, exit 2, no traceback, and the directory left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.reliability.helpers import (
    SPACE,
    check_table_matches_study,
    dir_hash,
    itas,
    itas_env,
    pool_file,
    rows,
    study_trials,
    write_yaml,
)


@pytest.fixture(scope="module")
def server():
    s = FakeOpenAI().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def base_run(server, data_dir, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("damaged")
    env = itas_env(root / "state")
    pool = pool_file(root / "pool.yaml", {"smollm2": server.url, "gemma3": server.url})
    space = write_yaml(root / "space.yaml", SPACE)
    run = root / "base"
    out = itas("search", "--benchmark", "gsm8k", "--budget", 3, "--subset", 2, "--space", space, "--pool", pool,
               "--out", run, "--jobs", 1, "--data-dir", data_dir, env=env)
    assert out.returncode == 0, out.stderr
    return run, env


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(base_run[0], copy)
    return copy


def resume(run: Path, env: dict, data_dir, budget: int = 4):
    return itas("search", "--benchmark", "gsm8k", "--budget", budget, "--resume", run, "--data-dir", data_dir,
                env=env)


def cut(path: Path, keep: int) -> None:
    """Keep the first ``keep`` bytes (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def scribble(path: Path, offset: int, size: int = 4096) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(size))


def first_evaluated(run: Path) -> str:
    return next(r["trial"] for r in rows(run) if r["status"] == "evaluated")


# ---- rebuilt from the study ------------------------------------------------------------------------------------
REBUILT = {
    "trials.csv cut in a row": lambda run: cut(run / "trials.csv", -25),
    "trials.csv missing": lambda run: (run / "trials.csv").unlink(),
    "pareto.csv garbage": lambda run: (run / "pareto.csv").write_bytes(os.urandom(300)),
    "metrics.json cut": lambda run: cut(run / "trials" / first_evaluated(run) / "metrics.json", 40),
    "questions.jsonl last line cut": lambda run: cut(run / "trials" / first_evaluated(run) / "questions.jsonl", -30),
    "trial folder missing": lambda run: shutil.rmtree(run / "trials" / first_evaluated(run)),
    "temporary files of a killed write": lambda run: [
        (run / ".trials.csv.x1y2.tmp").write_text("trial,kind\n0,base"),
        (run / "trials" / "0" / ".metrics.json.abcd.tmp").write_text("{\"tri")],
}


@pytest.mark.parametrize("damage", list(REBUILT), ids=lambda d: d.replace(" ", "-"))
def test_what_the_study_holds_is_rebuilt(run, base_run, data_dir, damage):
    before = {t.number: t.values for t in study_trials(run) if t.user_attrs.get("itas_status") == "evaluated"}
    REBUILT[damage](run)
    out = resume(run, base_run[1], data_dir)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    trials = check_table_matches_study(run)
    evaluated = {t.number: t for t in trials if t.user_attrs.get("itas_status") == "evaluated"}
    assert len(evaluated) == 4 and all(evaluated[n].values == v for n, v in before.items())
    for n, t in evaluated.items():  # every evaluated trial's folder is whole again
        folder = run / "trials" / str(n)
        assert json.loads((folder / "metrics.json").read_text())["values"] == list(t.values)
        lines = (folder / "questions.jsonl").read_text().splitlines()
        assert len(lines) == 2 and all(json.loads(x)["id"] for x in lines)
    assert not list(run.rglob(".*.tmp"))


def test_pareto_csv_is_rebuilt_from_the_study(run, base_run, data_dir):
    import csv

    (run / "pareto.csv").write_bytes(os.urandom(300))
    out = resume(run, base_run[1], data_dir)
    assert out.returncode == 0, out.stderr
    from itas.search.store import front_trials

    with open(run / "pareto.csv", newline="") as f:
        assert {int(r["trial"]) for r in csv.DictReader(f)} == {t.number for t in front_trials(study_trials(run))}


def test_a_damaged_spend_record_is_reported_and_the_search_goes_on(run, base_run, data_dir):
    (run / "spend.json").write_text('{"spent": 12')
    out = resume(run, base_run[1], data_dir)
    assert out.returncode == 0, out.stderr
    assert "spend.json: damaged" in out.stderr
    assert json.loads((run / "spend.json").read_text())["spent"] >= 0


# ---- cannot be rebuilt: a clear error, nothing touched -----------------------------------------------------------
REFUSED = {
    "config.json cut": ("config.json", lambda run: cut(run / "config.json", 50)),
    "config.json garbage": ("config.json", lambda run: (run / "config.json").write_bytes(os.urandom(200))),
    "space.yaml cut": ("space.yaml", lambda run: cut(run / "space.yaml", 30)),
    "pool.yaml garbage": ("pool.yaml", lambda run: (run / "pool.yaml").write_text("models: {smollm2: [")),
    "calls.sqlite not a database": ("calls.sqlite", lambda run: (run / "calls.sqlite").write_bytes(os.urandom(8192))),
    "calls.sqlite last page cut": ("calls.sqlite", lambda run: cut(run / "calls.sqlite", -4096)),
    "calls.sqlite page scribbled": ("calls.sqlite", lambda run: scribble(run / "calls.sqlite", 3 * 4096)),
    "study.db not a database": ("study.db", lambda run: (run / "study.db").write_bytes(os.urandom(8192))),
    "study.db last page cut": ("study.db", lambda run: cut(run / "study.db", -4096)),
    "study.db page scribbled": ("study.db", lambda run: scribble(run / "study.db", 10 * 4096, 8192)),
}


@pytest.mark.parametrize("damage", list(REFUSED), ids=lambda d: d.replace(" ", "-"))
def test_what_cannot_be_rebuilt_is_a_clear_error_and_nothing_is_touched(run, base_run, data_dir, damage):
    name, make = REFUSED[damage]
    for extra in run.glob("*.sqlite-*"):  # a cleanly closed cache has no WAL files; make it so for the damage
        extra.unlink()
    make(run)
    digest = dir_hash(run)
    out = resume(run, base_run[1], data_dir)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and name in last, out.stderr
    assert dir_hash(run) == digest
