"""Several workers on one study: the storage, the budget gate and heartbeats.

Workers share one Optuna study in a database (``--storage postgresql://...``). Each keeps its own local
artifacts; everything a report needs is stored with the trials. Optuna's heartbeat marks the trials of a
killed worker as failed after a grace period, and its retry callback enqueues their parameters again, so
another worker evaluates them. No more than N trials complete: before its first call, a trial reserves a slot
under a lock (a PostgreSQL advisory lock; a file lock for SQLite); a trial started past the budget stops there
and is recorded as such.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from itas.errors import InputError

HEARTBEAT_SECONDS = float(os.environ.get("ITAS_HEARTBEAT", "10"))
GRACE_SECONDS = float(os.environ.get("ITAS_HEARTBEAT_GRACE", str(3 * HEARTBEAT_SECONDS)))


def redact(url: str) -> str:
    """The storage URL without its password (what is written to files and printed)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def make_storage(url: str, shared: bool):
    import warnings

    import optuna

    def open_once():
        if not shared:
            return optuna.storages.RDBStorage(url)
        with warnings.catch_warnings():  # the heartbeat API is marked experimental
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=max(1, int(HEARTBEAT_SECONDS)), grace_period=max(2, int(GRACE_SECONDS)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))

    try:
        for attempt in range(3):
            try:
                storage = open_once()
                if url.startswith("sqlite:") and ":memory:" not in url:
                    _write_ahead(storage)
                return storage if shared else _only_writer(storage)
            except Exception as exc:
                # two processes opening an empty database at once race to create Optuna's tables (PostgreSQL:
                # a unique violation on CREATE TYPE); the loser finds them created when it tries again
                if type(exc).__name__ != "IntegrityError" or attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ModuleNotFoundError as exc:
        raise InputError(f"--storage {redact(url)}: the database driver is not installed ({exc.name}); for "
                         f"PostgreSQL: pip install 'itas[postgres]' (psycopg)") from None
    except Exception as exc:
        raise InputError(f"--storage {redact(url)}: cannot open the storage ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})") from None


def _write_ahead(storage) -> None:
    """A SQLite study in WAL mode with ``synchronous=NORMAL``, as the call cache is: a commit no longer waits for
    the disk. Optuna commits once per trial attribute, on the search's event loop: with an fsync at every commit,
    the loop (and every model call behind it) stood still for 42 s of a 180-s search in stalls over 0.1 s; 17 s in
    WAL mode (bench/results/engine-use.md, section 8). A killed process loses nothing (the write-ahead log is
    replayed when the file is next opened); a power cut can lose the last commits, and never corrupts the file."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # the connections opened while Optuna created its tables: new ones get the pragmas


def _only_writer(backend):
    """Optuna's cached storage for a study that only this process writes (a search without ``--storage``: its
    results directory is locked): its cache is kept as the database is, write by write, so it never reads the
    trials from the database again.

    Optuna's own cache reads every unfinished trial, with its parameters and attributes, from the database at
    every ``get_trials`` (another process may have changed them), and a search calls it several times per trial
    (the sampler, the duplicate check, the tables): that was about half of the search process's CPU time, which on
    a machine whose cores also run the model servers is taken from them (bench/results/engine-use.md, section 10).
    Reading them again only after a write still cost a read after each of the several writes a trial makes (its
    attributes, parameters and state): in a 100-trial search, 740 reads and 1,720 single-trial reads, in stalls of
    the search's event loop of 0.1-0.4 s (section 12). With one writer, the cache can be written as the database
    is: an attribute or a parameter is copied into the cached trial (through JSON, as the database stores it), and
    a trial whose state changed is read back alone (its completion time and values come from the database)."""
    import copy
    import json
    import sqlite3

    import optuna
    from optuna.storages._cached_storage import _CachedStorage

    if not hasattr(_CachedStorage, "_read_trials_from_remote_storage"):  # another Optuna: its own cache as it is
        return backend
    try:  # Optuna's own way to write several attributes of a trial in one transaction
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session as one_session

        if not hasattr(backend, "_set_trial_attr_without_commit"):
            one_session = None
    except ImportError:
        one_session = None
    # where this process may write rows itself, as Optuna would (one statement, not Optuna's read and write each)
    raw = one_session is not None and backend.engine.name == "sqlite"
    upsert = raw and sqlite3.sqlite_version_info >= (3, 24, 0)  # SQLite's upsert, as Optuna uses it
    statements: dict[str, str] = {}  # a table's upsert, built once

    class OnlyWriter(_CachedStorage):
        def __init__(self, rdb) -> None:
            super().__init__(rdb)
            self._current: set[int] = set()  # studies whose cache is as the database is

        @property
        def engine(self):
            return self._backend.engine

        def _read_trials_from_remote_storage(self, study_id: int) -> None:
            if study_id in self._current:
                return
            super()._read_trials_from_remote_storage(study_id)
            self._current.add(study_id)

        def _cached(self, trial_id: int):
            """(study id, the cached trial) when the study's cache is current, else None."""
            where = self._trial_id_to_study_id_and_number.get(trial_id)
            if where is None or where[0] not in self._current:
                return None
            return where[0], self._studies[where[0]].trials[where[1]]

        def _replace(self, study_id: int, trial) -> None:
            with self._lock:
                self._studies[study_id].trials[trial.number] = trial

        def get_trial(self, trial_id: int):
            found = self._cached(trial_id)
            return found[1] if found is not None else super().get_trial(trial_id)

        def _follow(self, trial_id: int, write, change):
            """``write()`` to the database, then ``change`` a copy of the cached trial as the write changed it (a
            new object, as a read from the database gives: trials held elsewhere stay as they were read)."""
            found = self._cached(trial_id)
            try:
                done = write()
            except BaseException:
                self._current.clear()
                raise
            if found is not None:
                study_id, trial = found
                self._replace(study_id, change(copy.copy(trial)))
            return done

        def set_trial_user_attr(self, trial_id: int, key: str, value) -> None:
            self.set_trial_user_attrs(trial_id, {key: value})

        def set_trial_system_attr(self, trial_id: int, key: str, value) -> None:
            def change(trial):
                trial.system_attrs = {**trial.system_attrs, key: json.loads(json.dumps(value))}
                return trial

            def write():
                if not self._upsert(models.TrialSystemAttributeModel, trial_id, {key: value}):
                    super(OnlyWriter, self).set_trial_system_attr(trial_id, key, value)

            self._follow(trial_id, write, change)

        def _finished(self, trial_id: int) -> bool:
            """Whether the trial has ended, as the cache knows it (True where it does not know: Optuna then
            reads the trial and refuses the write itself)."""
            found = self._cached(trial_id)
            return found is None or found[1].state.is_finished()

        def _upsert(self, table, trial_id: int, values: dict) -> bool:
            """Write a trial's attributes in one statement, as Optuna writes one (SQLite's upsert); False where
            this storage cannot. Optuna reads the trial first to refuse a finished one: the cache, as the
            database is, answers that here (a read of the trial and an upsert for each attribute were 17% of
            a search's event loop against instant endpoints)."""
            if not upsert:
                return False
            found = self._cached(trial_id)
            with one_session(self._backend.scoped_session, True) as session:
                state = found[1].state if found is not None else \
                    models.TrialModel.find_or_raise_by_id(trial_id, session).state
                self._backend.check_trial_is_updatable(trial_id, state)
                t = table.__table__
                sql = statements.get(t.name)
                if sql is None:
                    sql = statements[t.name] = (
                        f"INSERT INTO {t.name} ({t.c.trial_id.name}, {t.c.key.name}, {t.c.value_json.name}) "
                        f"VALUES (?, ?, ?) ON CONFLICT ({t.c.trial_id.name}, {t.c.key.name}) "
                        f"DO UPDATE SET {t.c.value_json.name} = excluded.{t.c.value_json.name}")
                session.connection().exec_driver_sql(sql, [(trial_id, key, json.dumps(value))
                                                           for key, value in values.items()])
            return True

        def set_trial_user_attrs(self, trial_id: int, values: dict) -> None:
            """Several user attributes in one transaction (one commit instead of one each)."""
            def write():
                if one_session is None:
                    for key, value in values.items():
                        super(OnlyWriter, self).set_trial_user_attr(trial_id, key, value)
                    return
                if self._upsert(models.TrialUserAttributeModel, trial_id, values):
                    return
                with one_session(self._backend.scoped_session, True) as session:
                    for key, value in values.items():
                        self._backend._set_trial_attr_without_commit(session, models.TrialUserAttributeModel,
                                                                     trial_id, key, value)

            def change(trial):
                trial.user_attrs = {**trial.user_attrs, **json.loads(json.dumps(values))}
                return trial

            self._follow(trial_id, write, change)

        def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                            distribution) -> None:
            def change(trial):
                trial.params = {**trial.params, param_name: distribution.to_external_repr(param_value_internal)}
                trial.distributions = {**trial.distributions, param_name: distribution}
                return trial

            due = getattr(self._batch, "due", None)
            found = self._cached(trial_id)
            if due is not None and found is not None:
                study_id, trial = found
                known = self._studies[study_id].param_distribution.get(param_name)
                if known is not None:  # as Optuna checks it, against the study's distribution of that name
                    optuna.distributions.check_distribution_compatibility(known, distribution)
                due.append((trial_id, param_name, param_value_internal, distribution, known, change))
                self._replace(study_id, change(copy.copy(trial)))
                return
            self._follow(trial_id, lambda: super(OnlyWriter, self).set_trial_param(
                trial_id, param_name, param_value_internal, distribution), change)

        @contextlib.contextmanager
        def batched_params(self):
            """The parameters this thread sets meanwhile are written in one transaction at the end (the cache has
            them at once): a proposal's dozen parameters were a dozen commits, a third of the sampler's time."""
            if one_session is None or getattr(self._batch, "due", None) is not None:
                yield
                return
            self._batch.due = []
            try:
                yield
            finally:
                due, self._batch.due = self._batch.due, None
                if due:
                    with self._one:
                        self._write_params(due)

        def _write_params(self, due: list) -> None:
            try:
                with one_session(self._backend.scoped_session, True) as session:
                    checked = [d for d in due if d[4] is not None]  # checked against the study's distribution
                    if not raw or any(self._finished(d[0]) for d in checked):
                        checked = []  # Optuna's own checks and writes, one parameter at a time
                    for trial_id, name, value, distribution, known, _ in due:
                        if known is None or not checked:
                            self._backend._set_trial_param_without_commit(session, trial_id, name, value,
                                                                          distribution, known)
                    if checked:
                        t = models.TrialParamModel.__table__
                        session.flush()
                        session.connection().exec_driver_sql(
                            f"INSERT INTO {t.name} ({t.c.trial_id.name}, {t.c.param_name.name}, "
                            f"{t.c.param_value.name}, {t.c.distribution_json.name}) VALUES (?, ?, ?, ?)",
                            [(trial_id, name, value, optuna.distributions.distribution_to_json(distribution))
                             for trial_id, name, value, distribution, _, _ in checked])
            except BaseException:
                self._current.clear()
                raise
            for trial_id, name, _, distribution, _, change in due:
                where = self._trial_id_to_study_id_and_number.get(trial_id)
                if where is not None:
                    self._studies[where[0]].param_distribution.setdefault(name, distribution)
                found = self._cached(trial_id)  # again: the cache may have been read from the database meanwhile
                if found is not None:
                    self._replace(found[0], change(copy.copy(found[1])))

        def set_trial_state_values(self, trial_id: int, state, values=None) -> bool:
            def change(trial):
                if one_session is None or not state.is_finished():
                    return self._backend.get_trial(trial_id)  # this trial alone, as stored
                # it ended: its state, values and completion time as stored (the time is the database's)
                with one_session(self._backend.scoped_session) as session:
                    row = models.TrialModel.find_or_raise_by_id(trial_id, session)
                    trial.state, trial.datetime_start, trial.datetime_complete = (
                        row.state, row.datetime_start, row.datetime_complete)
                if values is not None:
                    stored = models.TrialValueModel
                    trial.values = [stored.stored_repr_to_value(*stored.value_to_stored_repr(float(v)))
                                    for v in values]
                return trial

            return self._follow(trial_id, lambda: super(OnlyWriter, self).set_trial_state_values(trial_id, state, values),
                                change)

    def written(name: str):
        method = getattr(_CachedStorage, name)

        def write(self, *args, **kwargs):
            self._current.clear()
            try:
                return method(self, *args, **kwargs)
            finally:
                self._current.clear()  # also after it: a read during the write may have found the old state

        write.__name__ = name
        return write

    # the writes not followed into the cache: it is read from the database again after them (none of them is
    # made while a search runs, apart from the trials' creation: Optuna's cache adds a new trial itself)
    for name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
                 "set_trial_intermediate_value"):
        setattr(OnlyWriter, name, written(name))

    def one_at_a_time(method):
        def call(self, *args, **kwargs):
            with self._one:
                return method(self, *args, **kwargs)

        call.__name__ = method.__name__
        return call

    # the search proposes its next trial in a worker thread (runner._Runner._start) while its event loop writes
    # the trials that end: the cache is read and written by one thread at a time
    for name in dir(OnlyWriter):
        method = getattr(OnlyWriter, name)
        if callable(method) and (not name.startswith("_") or name == "_read_trials_from_remote_storage") \
                and name not in ("engine", "batched_params") and not isinstance(method, type):
            setattr(OnlyWriter, name, one_at_a_time(method))
    storage = OnlyWriter(backend)
    storage._one = threading.RLock()
    storage._batch = threading.local()
    return storage


class BudgetGate:
    """Reserves evaluation slots so that no more than ``budget`` trials complete across all workers."""

    def __init__(self, url: str, study, budget: int):
        self.url = url
        self.study = study
        self.budget = budget
        self._engine = None
        self._key = zlib.crc32(f"itas:{study.study_name}".encode()) & 0x7FFFFFFF

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        scheme = urlsplit(self.url).scheme
        if scheme.startswith("postgresql"):
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            with self._engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        elif scheme.startswith("sqlite"):
            path = self.url.split(":///", 1)[1]  # sqlite:///relative or sqlite:////absolute
            with open(path + ".itas-lock", "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        else:
            raise InputError(f"--storage {redact(self.url)}: several workers need PostgreSQL or SQLite storage")

    def used(self, trials) -> int:
        return sum(1 for t in trials if (t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated")
                   or (t.state.name == "RUNNING" and t.user_attrs.get("itas_reserved")))

    def reserve(self, trial, fingerprint: str) -> tuple[str, object]:
        """("ok", None) when ``trial`` may be evaluated; ("done", t) or ("running", n) when another worker has
        evaluated (or is evaluating, as trial n) the same architecture; ("full", None) when the budget is taken."""
        with self._lock():
            trials = self.study.get_trials(deepcopy=False)
            for t in trials:
                if t.number == trial.number or t.user_attrs.get("fingerprint") != fingerprint:
                    continue
                if t.state.name == "COMPLETE" and t.user_attrs.get("itas_status") == "evaluated":
                    return "done", t
                if t.state.name == "RUNNING" and t.user_attrs.get("itas_reserved"):
                    return "running", t.number
            if self.used(trials) >= self.budget:
                return "full", None
            self.study._storage.set_trial_user_attr(trial._trial_id, "itas_reserved", True)
            return "ok", None


class RunDirLock:
    """One search process per local results directory at a time."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".itas.lock"
        self.f = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise InputError(f"{self.path.parent}: another itas search is running in this results directory") from None
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()
