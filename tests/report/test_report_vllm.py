"""``itas report`` and ``itas run --from`` on a real search over the shared vLLM pool (budget 4, 3 GSM8K
questions): plots, exact reproduction from the cache, and validation on new questions."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from itas.report.source import load_run
from tests.report.pages import PNGS, plotly_traces, png_size

pytestmark = pytest.mark.vllm


def cache_rows(path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_report_writes_png_and_html(itas, real_search_dir, tmp_path):
    code, out, err = itas("report", real_search_dir, "--out", tmp_path)
    assert code == 0, err
    run = load_run(real_search_dir)
    assert "accuracy [95% CI]" in out and f"best single call: trial {run.best_baseline().number}" in out
    for name in PNGS:
        width, height = png_size(tmp_path / name)
        assert width >= 600 and height >= 400, name
    page = (tmp_path / "report.html").read_text()
    assert "<script src=" not in page
    plotted = {n for tr in plotly_traces(page) for n in tr.get("customdata") or []}
    assert plotted == {t.number for t in run.evaluated()}


def test_a_front_trial_reruns_from_the_cache_with_identical_accuracy(itas, real_search_dir, real_pool_file,
                                                                     tmp_path):
    run = load_run(real_search_dir)
    assert (real_search_dir / "pool.yaml").read_text() == real_pool_file.read_text()
    cache = real_search_dir / "calls.sqlite"
    for t in run.front():
        before = cache_rows(cache)
        out = tmp_path / f"trial-{t.number}"
        code, stdout, err = itas("run", "--from", real_search_dir, "--trial", t.number, "--out", out)
        assert code == 0, err
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["metrics"]["accuracy"] == t.accuracy
        assert metrics["reproduction"]["new_calls"] == 0
        assert cache_rows(cache) == before


def test_validation_on_questions_the_search_never_saw(itas, real_search_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(real_search_dir, run_dir)  # the shared results directory stays as the search left it
    code, out, err = itas("report", run_dir, "--validate", 3, "--format", "json", "--out", tmp_path / "r")
    assert code == 0, err
    data = json.loads(out)["runs"][0]
    config = json.loads((run_dir / "config.json").read_text())
    ids = data["validation"]["question_ids"]
    assert len(ids) == 3 and not set(ids) & set(config["question_ids"])
    record = json.loads((run_dir / "validation" / f"3-{config['seed']}.json").read_text())
    assert record["question_ids"] == ids
    front = {t.number for t in load_run(run_dir).front()}
    assert {r["trial"] for r in data["front"]} == front
    for row in data["front"]:
        val = row["validation"]
        assert val is not None and val["n"] == 3 and 0 <= val["accuracy"]["estimate"] <= 1, row
        assert [q[0] for q in record["architectures"][row["fingerprint"]]["questions"]] == ids
