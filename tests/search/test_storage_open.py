"""Opening a shared storage survives losing the race to create Optuna's tables on an empty database."""
import optuna
import pytest

from itas.errors import InputError
from itas.search import shared


class IntegrityError(Exception):  # the name sqlalchemy gives a unique violation, as make_storage sees it
    pass


def test_a_lost_schema_race_is_retried_and_other_errors_are_not(monkeypatch, tmp_path):
    calls = []
    real = optuna.storages.RDBStorage

    def flaky(url, **kw):
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError('duplicate key value violates unique constraint "pg_type_typname_nsp_index"')
        return real(url, **kw)

    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    storage = shared.make_storage(f"sqlite:///{tmp_path / 'a.db'}", shared=False)
    assert len(calls) == 2 and storage is not None

    def broken(url, **kw):
        calls.append(url)
        raise ValueError("bad url")

    calls.clear()
    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(InputError, match="cannot open the storage"):
        shared.make_storage("sqlite:///nowhere", shared=False)
    assert len(calls) == 1


def test_a_sqlite_study_commits_without_waiting_for_the_disk_and_a_killed_writer_loses_nothing(tmp_path):
    """The study's SQLite file runs in WAL mode with synchronous=NORMAL (Optuna commits each trial attribute on the
    search's event loop; with an fsync per commit that held the loop for seconds). A process killed without
    closing anything leaves its commits in the log, and the next opening finds them."""
    import os
    import subprocess
    import sys

    path = tmp_path / "study.db"
    storage = shared.make_storage(f"sqlite:///{path}", shared=False)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    storage.engine.dispose()

    writer = (
        "import os, optuna\n"
        "from itas.search import shared\n"
        f"s = shared.make_storage('sqlite:///{path}', shared=False)\n"
        "study = optuna.create_study(storage=s, study_name='s', directions=['maximize'])\n"
        "for i in range(5):\n"
        "    t = study.ask()\n"
        "    study._storage.set_trial_user_attr(t._trial_id, 'i', i)\n"
        "    study.tell(t, float(i))\n"
        "os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", writer], env={**os.environ}, timeout=120)
    assert done.returncode == -9
    assert (tmp_path / "study.db-wal").exists()  # killed: nothing checkpointed the log into the file
    study = optuna.load_study(study_name="s", storage=shared.make_storage(f"sqlite:///{path}", shared=False))
    assert [(t.value, t.user_attrs["i"]) for t in study.trials] == [(float(i), i) for i in range(5)]


def test_a_study_only_this_process_writes_is_kept_in_its_cache_as_the_database_holds_it(tmp_path):
    """Without --storage, the search alone writes its study: its cache follows each write (attributes and
    parameters copied in, a trial whose state changed read back alone), so it never reads the trials from the
    database again (Optuna's own cache reads the unfinished ones at every get_trials: half of the search process's
    CPU; reading them after each write still stalled the search's event loop). Every field of every trial is as
    the database holds it."""
    storage = shared.make_storage(f"sqlite:///{tmp_path / 'study.db'}", shared=False)
    reads = []
    real = storage._backend._get_trials
    storage._backend._get_trials = lambda *a, **k: reads.append(1) or real(*a, **k)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    study.get_trials(deepcopy=False)
    before = len(reads)

    running = study.ask()
    running.suggest_categorical("model", ["smollm2", "gemma3"])
    running.suggest_int("samples", 1, 8)
    study._storage.set_trial_user_attr(running._trial_id, "arch", {"layers": (2, 3), "name": "x"})
    running.set_constraint("compute", 0.0)
    assert study.get_trials(deepcopy=False)[0].user_attrs == {"arch": {"layers": [2, 3], "name": "x"}}  # as JSON
    held = study.get_trials(deepcopy=False)[0]
    with study._storage.batched_params():  # as the search proposes: the parameters in one transaction at the end
        done = study.ask()
        done.suggest_float("temperature", 0.1, 1.0)  # new to the study: checked and written as Optuna does
        done.suggest_int("samples", 1, 8)  # known: checked against the study's distribution by the cache
        assert study._storage.get_trial(done._trial_id).params == {"temperature": done.params["temperature"],
                                                                   "samples": done.params["samples"]}
        with pytest.raises(ValueError):  # an incompatible distribution is refused as Optuna refuses it
            study._storage.set_trial_param(done._trial_id, "model", 0, optuna.distributions.IntDistribution(0, 3))
    study._storage.set_trial_user_attrs(done._trial_id, {"metrics": {"accuracy": 0.5}, "kind": "sampled"})
    study._storage.set_trial_system_attr(done._trial_id, "itas", [1, 2])
    study.tell(done, [0.5, 2.0])
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.enqueue_trial({"model": "gemma3"})
    enqueued = study.ask()
    assert enqueued.suggest_categorical("model", ["smollm2", "gemma3"]) == "gemma3"
    study._storage.set_trial_user_attr(running._trial_id, "reason", "late")
    assert held.user_attrs == {"arch": {"layers": [2, 3], "name": "x"}}  # a trial read earlier stays as read
    assert study._storage.get_trial(running._trial_id).user_attrs["reason"] == "late"
    cached = study.get_trials(deepcopy=False)
    assert len(reads) == before  # written all along, read never

    fields = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
              "datetime_start", "datetime_complete", "intermediate_values", "_trial_id")
    # the same study opened afresh (as a resume or a report does) holds the same
    again = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}"))
    assert [t.state.name for t in again.trials] == ["RUNNING", "COMPLETE", "FAIL", "PRUNED", "RUNNING"]
    for mine, stored in zip(cached, again.trials, strict=True):
        for f in fields:
            assert getattr(mine, f) == getattr(stored, f), (mine.number, f)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # the cache knows it ended
        study._storage.set_trial_user_attrs(done._trial_id, {"late": 1})
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_system_attr(done._trial_id, "late", 1)
    assert "late" not in again._storage.get_trial(done._trial_id).user_attrs


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_shared_study_is_read_as_optuna_reads_it(tmp_path):
    """With --storage other workers write the study too: every get_trials reads the unfinished trials."""
    storage = shared.make_storage(f"sqlite:///{tmp_path / 'study.db'}", shared=True)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize"])
    study.ask()
    other = optuna.load_study(study_name="s", storage=shared.make_storage(f"sqlite:///{tmp_path / 'study.db'}",
                                                                         shared=True))
    study.get_trials(deepcopy=False)
    t = other.trials[0]
    other._storage.set_trial_user_attr(t._trial_id, "by", "other")
    assert study.get_trials(deepcopy=False)[0].user_attrs == {"by": "other"}
