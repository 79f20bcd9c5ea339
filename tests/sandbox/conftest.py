from __future__ import annotations

import os
from pathlib import Path

import pytest

from itas.sandbox import Sandbox

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"benchmark data expected in {DATA_DIR.resolve()}"
    return DATA_DIR.resolve()


@pytest.fixture(scope="session")
def scratch_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sandbox-scratch")
    os.chmod(root, 0o711)
    return root


@pytest.fixture(scope="session")
def sandbox(scratch_root) -> Sandbox:
    """A sandbox of its own (own user ids and scratch root), so that the tests can check what it leaves."""
    sb = Sandbox(workers=2, uid_base=64100, scratch_root=scratch_root)
    assert os.geteuid() != 0 or sb.mode == "namespaces", f"namespaces unavailable: {sb.mode_reason}"
    return sb


@pytest.fixture
def clean(sandbox, scratch_root):
    """After the test: no process of the sandbox's users survives and no scratch directory is left."""
    yield
    assert sandbox.processes_left() == []
    assert list(scratch_root.iterdir()) == []
