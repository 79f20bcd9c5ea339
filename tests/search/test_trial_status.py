"""A trial's status as trials.csv and the report show it: a trial left running by a killed search is
"interrupted" (its architecture was evaluated again), not "failed"."""

from __future__ import annotations

import optuna

from itas.report.render import headline
from itas.report.source import TrialRecord
from itas.report.summary import summarise
from itas.search.store import INTERRUPTED, trial_row, trial_status
from tests.report.synthetic import run, trial


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for reason, state in ((INTERRUPTED, "FAIL"), ("2 of 20 questions failed", "FAIL"), (None, "COMPLETE")):
        t = study.ask()
        if reason:
            t.set_user_attr("reason", reason)
        if state == "FAIL":
            study.tell(t, state=optuna.trial.TrialState.FAIL)
        else:
            t.set_user_attr("itas_status", "infeasible")
            study.tell(t, [0.0, 1.0, 1.0])
    return study


def test_interrupted_failed_and_others():
    trials = _study().trials
    assert [trial_status(t) for t in trials] == ["interrupted", "failed", "infeasible"]
    assert [trial_row(t)["status"] for t in trials] == ["interrupted", "failed", "infeasible"]
    assert [TrialRecord.from_frozen(t).status for t in trials] == ["interrupted", "failed", "infeasible"]


def test_headline_counts_interrupted_apart_from_failed():
    scores = [1.0, 0.0, 1.0, 0.0]
    rr = summarise(run([trial(0, scores, 1.0, 0.001, kind="baseline"),
                        trial(1, [], 0.0, 0.0, status="interrupted"),
                        trial(2, [], 0.0, 0.0, status="interrupted"),
                        trial(3, [], 0.0, 0.0, status="failed")]), replicates=200)
    assert rr.counts["interrupted"] == 2 and rr.counts["failed"] == 1
    assert "(1 failed, 2 interrupted)" in headline(rr)
