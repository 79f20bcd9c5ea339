"""One search against the oracle server (no vLLM), made once per session and read by many tests.

The pool prices its two models (so cost is money) and the oracle answers gemma3 ("fake-b") right more often
than smollm2 ("fake-a"), so voting and the better model buy accuracy at a cost: a front of several trials.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

from tests.report.oracle import OracleOpenAI

SPACE = {
    "name": "report-test",
    "max_tokens": 64,
    "stages": [
        {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 3, 5], "temperature": 0.7}},
        {"fuse": {"layers": [0, 1], "model": ["smollm2", "gemma3"]}},
        {"vote": {"optional": True}},
    ],
    "constraints": {"max_calls_per_query": 8},
}
SUBSET = 12
BUDGET = 9


@pytest.fixture(scope="session")
def oracle(data_dir):
    from itas.benchmarks import load_benchmark

    bench = load_benchmark("gsm8k", data_dir=data_dir)
    server = OracleOpenAI({q.text: str(q.reference) for q in bench.questions()},
                          {"fake-a": 0.35, "fake-b": 0.7}).start()
    try:
        yield server
    finally:
        server.stop()


def write_pool(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({"models": {
        "smollm2": {"model": "fake-a", "endpoints": [url], "price": {"input": 0.1, "output": 0.4}},
        "gemma3": {"model": "fake-b", "endpoints": [url], "price": {"input": 1.0, "output": 4.0}}}}))
    return path


@pytest.fixture(scope="session")
def search_dir(oracle, data_dir, tmp_path_factory) -> Path:
    """A finished search's results directory (treat as read-only: copy it with ``fresh_search_dir`` to change
    it)."""
    from itas.search.runner import SearchRequest, run_search

    root = tmp_path_factory.mktemp("report-search")
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    pool = write_pool(root / "pool.yaml", oracle.url)
    req = SearchRequest(benchmark="gsm8k", budget=BUDGET, out=root / "run", space=str(space), pool=str(pool),
                        subset=SUBSET, seed=0, jobs=2, data_dir=str(data_dir))
    outcome = asyncio.run(run_search(req))
    assert outcome.counted == BUDGET
    return outcome.run_dir


@pytest.fixture
def fresh_search_dir(search_dir, tmp_path) -> Path:
    """A private copy of the search's results directory, for tests that write into it."""
    dst = tmp_path / search_dir.name
    shutil.copytree(search_dir, dst)
    return dst


@pytest.fixture
def itas(monkeypatch, capsys):
    """Run the CLI in this process: ``code, out, err = itas("report", DIR)``."""
    import sys

    def call(*args):
        from itas.cli import main

        monkeypatch.setenv("COLUMNS", "220")
        monkeypatch.setattr(sys, "argv", ["itas", *map(str, args)])
        with pytest.raises(SystemExit) as exit_:
            main()
        out = capsys.readouterr()
        return exit_.value.code, out.out, out.err

    return call
