"""Shared fixtures.

The real-vLLM tests (marked ``vllm``) share ONE pool per test session: the embedded default pool (SmolLM2 and
Gemma 3 on vLLM's CPU build), started by the ``real_pool`` fixture the first time a test asks for it and
stopped at the end of the session. Tests that run ``itas`` as a subprocess use ``real_pool_file``: a pool YAML
whose endpoints are those running servers, so they never start a second pool.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests keep their managed-server records apart from the user's own (itas pool up) servers.
os.environ.setdefault("ITAS_STATE_DIR", tempfile.mkdtemp(prefix="itas-test-state-"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("ITAS_DATA_DIR") or REPO.parent / "shared" / "data")
    assert path.is_dir(), f"benchmark data not found at {path}; set ITAS_DATA_DIR"
    return path


@pytest.fixture(scope="session")
def real_pool():
    """The default pool, really served: a ``RunningPool`` (config with endpoints, latency models)."""
    from itas.paths import serving_python
    from itas.pool.config import load_pool
    from itas.pool.serving import start_pool

    if not serving_python().exists():
        pytest.fail("the serving environment is missing: run `make models` (or `itas models prepare`) first")
    running = start_pool(load_pool(None), report=lambda m: print(f"[pool] {m}", flush=True))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def real_pool_file(real_pool, tmp_path_factory) -> Path:
    """A pool YAML pointing at the shared running servers (unmanaged endpoints), with their calibration."""
    import yaml

    from itas.paths import state_dir

    data = {"models": {}}
    calibration = {}
    for m in real_pool.config.models:
        data["models"][m.name] = {"model": m.model, "context_length": m.context_length,
                                  "max_concurrency": m.max_concurrency,
                                  "endpoints": [e.url for e in m.endpoints]}
        if m.turns:
            data["models"][m.name]["turns"] = m.turns
        if m.name in real_pool.latency:
            calibration[f"{m.endpoints[0].url}|{m.model}"] = real_pool.latency[m.name].to_dict()
    path = tmp_path_factory.mktemp("pool") / "test_pool.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cal = state_dir() / "calibration.json"
    cal.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(cal.read_text()) if cal.exists() else {}
    known.update(calibration)
    cal.write_text(json.dumps(known, indent=2))
    return path


E2E_SPACE = {
    "name": "e2e",
    "max_tokens": 32,
    "stages": [
        {"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 4], "temperature": 0.7}},
        {"fuse": {"layers": 1, "model": "smollm2"}},
    ],
    # smollm2 x1 -> fuse is 2 calls, both models x1 -> fuse is 3; anything with 4 samples is over: infeasible
    "constraints": {"max_calls_per_query": 3},
}


@pytest.fixture(scope="session")
def real_search_dir(real_pool_file, data_dir, tmp_path_factory) -> Path:
    """ONE small real search on the shared pool (budget 4, 3 GSM8K questions, 32-token outputs), run once per
    test session; several tests read its results directory."""
    import subprocess
    import sys

    import yaml

    root = tmp_path_factory.mktemp("real-search")
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(E2E_SPACE, sort_keys=False))
    run = root / "run"
    cmd = [sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", "4", "--subset", "3",
           "--space", str(space), "--pool", str(real_pool_file), "--out", str(run), "--jobs", "2", "--seed", "1",
           "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ, "COLUMNS": "200"})
    print(out.stdout[-3000:], out.stderr[-3000:])
    assert out.returncode == 0, out.stderr[-2000:]
    return run
