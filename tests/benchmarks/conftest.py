from __future__ import annotations

import os
from pathlib import Path

import pytest

from itas.benchmarks import load_benchmark

DATA_DIR = Path(os.environ.get("ITAS_DATA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"benchmark data expected in {DATA_DIR.resolve()}; set ITAS_DATA_DIR"
    return DATA_DIR.resolve()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh cache of reference runs: every session measures the reference solutions itself."""
    return tmp_path_factory.mktemp("reference-cache")


@pytest.fixture(scope="session")
def benchmarks(data_dir, cache_dir):
    """Each built-in benchmark loaded once per session (code benchmarks keep their measured references)."""
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_benchmark(name, data_dir, cache_dir=cache_dir)
        return loaded[name]

    return get
