"""``itas run --from DIR --trial N``: a trial's architecture re-run on its search's subset, with its pool and
call cache, reproduces the reported accuracy exactly with zero new calls."""

from __future__ import annotations

import json
import sqlite3

import pytest

from itas.report.source import load_run


def cache_rows(run_dir) -> int:
    with sqlite3.connect(f"file:{run_dir / 'calls.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_every_evaluated_trial_reproduces_with_zero_new_calls(itas, search_dir, oracle, tmp_path):
    run = load_run(search_dir)
    rows_before = cache_rows(search_dir)
    for t in run.evaluated():
        sent = len(oracle.model_requests())
        out = tmp_path / f"trial-{t.number}"
        code, stdout, err = itas("run", "--from", search_dir, "--trial", t.number, "--out", out)
        assert code == 0, err
        assert len(oracle.model_requests()) == sent, f"trial {t.number} made new calls"
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["metrics"]["accuracy"] == t.accuracy  # exactly
        assert metrics["metrics"]["cached_calls"] == metrics["metrics"]["total_calls"] > 0
        assert metrics["reproduction"] == {"reported_accuracy": t.accuracy, "accuracy": t.accuracy,
                                           "same_accuracy": True, "new_calls": 0,
                                           "cached_calls": metrics["metrics"]["total_calls"]}
        assert metrics["run"]["question_ids"] == run.question_ids() and metrics["run"]["trial"] == t.number
        scores = {json.loads(line)["id"]: json.loads(line)["score"]
                  for line in (out / "questions.jsonl").read_text().splitlines()}
        assert scores == t.scores()
        assert "reproduced" in stdout and "0 new call(s)" in stdout
    assert cache_rows(search_dir) == rows_before


def test_a_duplicate_trial_reruns_its_original(itas, fresh_search_dir, tmp_path):
    import optuna

    run = load_run(fresh_search_dir)
    original = run.evaluated()[-1]
    # record a duplicate of it, as the search does when it samples an architecture again
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    t = study.ask()
    for key, value in {"itas_kind": "sampled", "itas_status": "duplicate", "duplicate_of": original.number,
                       "architecture": original.architecture, "fingerprint": original.fingerprint,
                       "metrics": original.metrics}.items():
        t.set_user_attr(key, value)
    study.tell(t, list(original.values))
    code, out, err = itas("run", "--from", fresh_search_dir, "--trial", t.number, "--out", tmp_path / "o")
    assert code == 0, err
    assert f"duplicates trial {original.number}" in err
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["metrics"]["accuracy"] == original.accuracy


@pytest.mark.parametrize("args,message", [
    (["--trial", "1"], "--from DIR and --trial N go together"),
    (["--from", "{run}"], "--from DIR and --trial N go together"),
    (["--from", "{run}", "--trial", "999"], "no trial 999; evaluated trials: 0, 1"),
    (["--from", "{run}", "--trial", "0", "--arch", "vote5"], "--arch cannot be given"),
    (["--from", "{run}", "--trial", "0", "--limit", "2"], "--limit cannot be given"),
    ([], "give --arch FILE and --benchmark NAME, or --from"),
])
def test_bad_from_input_is_one_line_and_exit_2(itas, search_dir, oracle, args, message):
    sent = len(oracle.model_requests())
    code, _, err = itas("run", *[a.format(run=search_dir) for a in args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert len(oracle.model_requests()) == sent


def test_an_infeasible_trial_has_nothing_to_reproduce(itas, fresh_search_dir):
    import optuna

    run = load_run(fresh_search_dir)
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    t = study.ask()
    t.set_user_attr("itas_status", "infeasible")
    t.set_user_attr("reason", "13 calls per query > max_calls_per_query 12")
    study.tell(t, [0.0, 1.0, 1.0])
    code, _, err = itas("run", "--from", fresh_search_dir, "--trial", t.number)
    assert code == 2 and f"trial {t.number} is infeasible (13 calls per query" in err


def test_a_missing_cache_is_refused(itas, fresh_search_dir, oracle):
    (fresh_search_dir / "calls.sqlite").unlink()
    for extra in ("calls.sqlite-wal", "calls.sqlite-shm"):
        (fresh_search_dir / extra).unlink(missing_ok=True)
    sent = len(oracle.model_requests())
    code, _, err = itas("run", "--from", fresh_search_dir, "--trial", 0)
    assert code == 2 and "call cache is missing" in err
    assert len(oracle.model_requests()) == sent
