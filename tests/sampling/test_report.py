"""``report.render``: tables and plots from a results directory alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from itas.errors import InputError
from itas.sampling import store
from itas.sampling.report import is_sampling_run, render
from itas.sampling.store import SampleConfig, SampleRecord


def make_run(directory, questions=6, k=8, reward=True, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"q/{i}" for i in range(questions)]
    config = SampleConfig(benchmark="gsm8k", model="smollm2", k=k, question_ids=tuple(ids), temperature=0.7,
                          max_tokens=64, subset=questions, bootstrap=200,
                          reward={"spec": "judge:gemma3", "temperature": 0.0, "max_tokens": 256} if reward else None)
    store.save_config(directory, config)
    records = {}
    for qi, qid in enumerate(ids):
        p = (qi + 1) / (questions + 1)
        for i in range(k):
            ok = rng.random() < p
            records[(qid, i)] = SampleRecord(
                question=qid, index=i, text=f"text {i}", extracted="42" if ok else str(rng.integers(0, 3)),
                score=float(ok), status="correct" if ok else "wrong",
                reward=float(rng.integers(1, 11)) if reward else None,
                reward_spec="judge:gemma3" if reward else None, completion_tokens=int(rng.integers(5, 50)))
    store.save_samples(directory, records, ids)
    return config


def test_render_writes_tables_and_plots(tmp_path):
    make_run(tmp_path)
    assert is_sampling_run(tmp_path) and not is_sampling_run(tmp_path / "nope")
    result = render(tmp_path)
    for name in ("curves.csv", "curves.json", "fit.json", "winrate.csv", "summary.json", "coverage.png",
                 "curves.png", "winrate.png", "sampling.html"):
        assert (tmp_path / name).is_file() and result["files"][name] == str(tmp_path / name)
    for png in ("coverage.png", "curves.png", "winrate.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "sampling.html").read_text()
    assert "plotly" in html and '<script src="http' not in html and len(html) > 1_000_000  # plotly.js embedded
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert [int(r["k"]) for r in rows] == list(range(1, 9))
    assert float(rows[0]["coverage"]) == pytest.approx(result["curves"][0]["coverage"])
    assert json.loads((tmp_path / "curves.json").read_text()) == result["curves"]
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["form"] == "log(coverage) = a * k^b" and fit["status"] == "ok" and fit["extrapolation"]
    wr = list(csv.DictReader((tmp_path / "winrate.csv").open()))
    assert [int(r["n"]) for r in wr] == list(range(1, 8))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "smollm2" and summary["questions"] == 6 and summary["calibration"]["tie_rate"] > 0
    assert result["config"]["k"] == 8 and result["summary"]["reward"] == "judge:gemma3"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_render_into_another_folder_without_a_reward(tmp_path):
    run, out = tmp_path / "run", tmp_path / "report"
    make_run(run, reward=False)
    result = render(run, out)
    assert (out / "coverage.png").is_file() and not (out / "winrate.csv").exists()
    assert not (run / "curves.csv").exists()
    assert result["winrate"] is None and "best_of_n" not in result["curves"][0]


def test_incomplete_questions_are_left_out(tmp_path):
    make_run(tmp_path, questions=3, k=4)
    records = store.load_samples(tmp_path)
    del records[("q/1", 3)]
    store.save_samples(tmp_path, records, ["q/0", "q/1", "q/2"])
    result = render(tmp_path, plots=False)
    assert result["summary"]["questions"] == 2 and result["summary"]["incomplete_questions"] == ["q/1"]
    assert not (tmp_path / "coverage.png").exists()


def test_render_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a sampling run"):
        render(tmp_path)
    store.save_config(tmp_path, SampleConfig(benchmark="b", model="m", k=2, question_ids=("a",), temperature=0.7,
                                             max_tokens=5))
    with pytest.raises(InputError, match="no question has its 2 samples yet"):
        render(tmp_path)


def test_a_tiny_run_still_renders(tmp_path):
    make_run(tmp_path, questions=1, k=1)  # no fit (one k), no win rate (N + 1 > 1)
    result = render(tmp_path)
    assert result["fit"]["status"] == "too_few_points" and result["winrate"] == []
    assert (tmp_path / "winrate.png").is_file() and (tmp_path / "sampling.html").is_file()


def test_a_sample_not_yet_rewarded_leaves_its_question_out(tmp_path):
    make_run(tmp_path, questions=3, k=4)
    records = store.load_samples(tmp_path)
    records[("q/2", 0)] = SampleRecord(**{**records[("q/2", 0)].__dict__, "reward": None, "reward_spec": None})
    records[("q/0", 1)] = SampleRecord(**{**records[("q/0", 1)].__dict__, "reward": None})  # unparsable judgement
    store.save_samples(tmp_path, records, ["q/0", "q/1", "q/2"])
    result = render(tmp_path, plots=False)
    assert result["summary"]["incomplete_questions"] == ["q/2"]
    assert result["calibration"]["missing_rewards"] == 1
