"""A real search on the shared vLLM pool: the results directory is complete and consistent."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from itas.search.pareto import pareto_front

pytestmark = pytest.mark.vllm


def read(run, name):
    with open(run / name) as f:
        return list(csv.DictReader(f))


def test_real_search_results_directory(real_search_dir):
    run = real_search_dir
    trials = read(run, "trials.csv")
    evaluated = [r for r in trials if r["status"] == "evaluated"]
    assert len(evaluated) == 4
    assert {r["description"] for r in evaluated[:2]} == {"smollm2x1", "gemma3x1"}  # baselines first
    assert any(r["status"] == "infeasible" for r in trials)
    multi = [r for r in evaluated if "→" in r["description"]]
    assert multi, "no multi-layer trial was evaluated"
    for r in evaluated:
        folder = run / "trials" / r["trial"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["metrics"]["calls_per_query"] >= 1 and metrics["metrics"]["tokens_per_query"] > 0
        qs = [json.loads(x) for x in (folder / "questions.jsonl").read_text().splitlines()]
        assert len(qs) == 3 and all(q["calls"] >= 1 and q["completion_tokens"] > 0 for q in qs)
        assert float(r["latency_p50"]) > 0 and float(r["cost_per_query"]) > 0
    # pareto.csv holds exactly the non-dominated evaluated trials
    pts = [(float(r["accuracy"]), float(r["latency_p50"]), float(r["cost_per_query"])) for r in evaluated]
    expected = {evaluated[i]["trial"] for i in pareto_front(pts)}
    assert {r["trial"] for r in read(run, "pareto.csv")} == expected


def test_real_search_study_opens_like_optuna_dashboard_would(real_search_dir):
    cfg = json.loads((real_search_dir / "config.json").read_text())
    storage = optuna.storages.RDBStorage(f"sqlite:///{real_search_dir / 'study.db'}")
    study = optuna.load_study(study_name=cfg["study_name"], storage=storage)
    assert study.metric_names == ["accuracy", "latency", "cost"]
    done = [t for t in study.trials if t.user_attrs.get("itas_status") == "evaluated"]
    assert len(done) == 4
    for t in done:  # per-question scores and usage are stored with the trial, for reports from storage alone
        qs = t.user_attrs["questions"]
        assert len(qs) == 3 and sum(q[1] for q in qs) / 3 == pytest.approx(t.values[0])
