"""``itas sample`` end to end on the shared real vLLM test pool: 4 samples per question, then 8 on the same
directory, which must send only the 4 new samples per question (the call cache in the directory holds the
others), and leave curves, fit and plots that parse."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm


def itas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "itas", *args], capture_output=True, text=True, timeout=900)


def cached_calls(out) -> int:
    with sqlite3.connect(out / "calls.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_sample_then_extend_sends_only_the_new_samples(real_pool_file, data_dir, tmp_path):
    out = tmp_path / "sample"
    common = ["sample", "--benchmark", "gsm8k", "--model", "smollm2", "--subset", "3", "--max-tokens", "48",
              "--pool", str(real_pool_file), "--data-dir", str(data_dir), "--out", str(out)]
    first = itas(*common, "--k", "4")
    assert first.returncode == 0, first.stderr
    assert cached_calls(out) == 3 * 4
    before = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]

    second = itas(*common, "--k", "8")
    assert second.returncode == 0, second.stderr
    assert cached_calls(out) == 3 * 8  # 4 new samples per question, nothing asked twice
    config = json.loads((out / "config.json").read_text())
    assert config["k"] == 8 and len(config["question_ids"]) == 3
    assert [h["samples_sent"] for h in config["history"]] == [12, 12]
    assert config["history"][1]["calls_sent"] == 12

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24
    by_key = {(s["question"], s["index"]): s for s in samples}
    assert sorted({i for _, i in by_key}) == list(range(8))
    for s in before:  # the first four samples are the same samples, not new ones
        assert by_key[(s["question"], s["index"])]["text"] == s["text"]
    for s in samples:
        assert s["status"] in ("correct", "wrong", "no_answer") and 0 <= s["completion_tokens"] <= 48
        assert isinstance(s["text"], str) and "extracted" in s and "score" in s

    curves = json.loads((out / "curves.json").read_text())
    assert [c["k"] for c in curves] == list(range(1, 9))
    cov = [c["coverage"] for c in curves]
    assert all(0 <= c <= 1 for c in cov) and all(b >= a - 1e-12 for a, b in zip(cov, cov[1:], strict=False))
    assert all(c["coverage_lo"] <= c["coverage"] <= c["coverage_hi"] for c in curves)
    assert all(c["vote"] <= c["coverage"] + 1e-12 for c in curves)
    fit = json.loads((out / "fit.json").read_text())
    assert fit["status"] in ("ok", "saturated", "no_coverage") and fit["measured_k_max"] == 8
    if fit["status"] == "ok":
        assert fit["a"] <= 0 and fit["extrapolation"][0]["k"] == 16
    assert (out / "curves.csv").read_text().startswith("k,coverage,")
    for png in ("coverage.png", "curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    html = (out / "sampling.html").read_text()
    assert "plotly" in html and '<script src="http' not in html
    assert "fit" in second.stdout and "12 new" in second.stdout
