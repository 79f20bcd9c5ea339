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
