"""``itas report`` on a real results directory (a search against the oracle server): the table, the PNG and
HTML files, the formats, the pick, several runs, and reading a study from its storage URL alone."""

from __future__ import annotations

import csv
import io
import json
import re

import optuna
import pytest

from itas.arch.spec import load_architecture
from itas.report.source import load_run
from tests.report.pages import PNGS, plotly_traces, png_size, report_json


@pytest.fixture(scope="module")
def reported(search_dir, tmp_path_factory):
    """One report of the session's search, written to a folder of its own."""
    import asyncio

    from itas.report.make import ReportRequest, make_report

    out = tmp_path_factory.mktemp("report-out")
    result = asyncio.run(make_report(ReportRequest(runs=[search_dir], out=out, picks=["cost<=0.0002"])))
    return out, result


def test_table_shows_the_front_baselines_and_best(itas, search_dir, tmp_path):
    code, out, err = itas("report", search_dir, "--out", tmp_path / "r")
    assert code == 0, err
    run = load_run(search_dir)
    for t in run.front():
        assert re.search(rf"│\s+{t.number}\s+│", out), t.number
        assert t.description in out
    for header in ("accuracy [95% CI]", "Δ vs best single", "latency p50 / p95", "cost/query (USD)", "calls/query",
                   "architecture"):
        assert header in out
    assert "best accuracy: trial" in out and "best latency: trial" in out and "best cost: trial" in out
    assert f"best single call: trial {run.best_baseline().number}" in out
    assert all((tmp_path / "r" / name).is_file() for name in PNGS + ["report.html"])


def test_pngs_are_real_images_of_the_expected_size(reported):
    from PIL import Image

    out, _ = reported
    for name in PNGS:
        path = out / name
        width, height = png_size(path)
        assert (width, height) == ((704, 440) if name == "progress.png" else (704, 506)), name
        with Image.open(path) as im:
            im.load()
            assert im.size == (width, height)
            low, high = im.convert("L").getextrema()
            assert high - low > 100  # drawn, not blank


def test_html_is_self_contained_and_plots_every_trial(reported, search_dir):
    out, result = reported
    page = (out / "report.html").read_text()
    assert "<script src=" not in page  # plotly.js embedded: opens offline
    assert "Plotly.newPlot" in page and len(page) > 1_000_000
    run = load_run(search_dir)
    evaluated = {t.number: t for t in run.evaluated()}
    traces = plotly_traces(page)
    plotted = {n for tr in traces for n in tr.get("customdata") or []}
    assert plotted == set(evaluated)
    # the accuracy-vs-cost points are the trials' own values
    by_kind = [tr for tr in traces if tr.get("name", "").startswith(("baseline (", "sampled ("))]
    assert by_kind
    for tr in by_kind:
        for n, x, y in zip(tr["customdata"], tr["x"], tr["y"], strict=True):
            assert x == pytest.approx(evaluated[n].cost) and y == pytest.approx(evaluated[n].accuracy)
    data = report_json(page)["runs"][0]
    assert {r["trial"] for r in data["front"]} == {t.number for t in run.front()}


def test_front_agrees_with_optuna_best_trials_on_the_real_study(fresh_search_dir):
    run = load_run(fresh_search_dir)
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    # as the search records them: an infeasible trial (a positive constraint violation, accuracy 0, and here a
    # latency and cost that would dominate everything if the constraint were ignored) and a duplicate
    bad = study.ask()
    bad.set_user_attr("itas_status", "infeasible")
    bad.set_constraint("compute", 4.0)
    study.tell(bad, [0.0, 0.0, 0.0])
    original = run.front()[0]
    dup = study.ask()
    for key, value in {"itas_status": "duplicate", "duplicate_of": original.number,
                       "fingerprint": original.fingerprint, "metrics": original.metrics}.items():
        dup.set_user_attr(key, value)
    dup.set_constraint("compute", 0.0)
    study.tell(dup, list(original.values))

    run = load_run(fresh_search_dir)
    optuna_front = {t.number for t in study.best_trials}
    assert bad.number not in optuna_front and dup.number in optuna_front
    # Optuna keeps the duplicate (the same values as its original) on its front; the report lists the original
    assert {t.number for t in run.front()} == optuna_front - {dup.number}
    assert len(optuna_front) >= 3


def test_pick_writes_an_architecture_that_itas_run_loads(reported, search_dir, itas, data_dir, tmp_path):
    out, result = reported
    rr = result.runs[0]
    run = load_run(search_dir)
    cheap = [t for t in run.evaluated() if t.cost <= 0.0002]
    best = max(cheap, key=lambda t: (t.accuracy, -t.cost))
    assert rr.picked.trial.number == best.number
    arch = load_architecture(out / "pick.yaml")
    assert arch.fingerprint() == best.fingerprint
    assert "picked by itas report" in arch.description and arch.name == f"{run.label}-trial-{best.number}"
    code, stdout, err = itas("run", "--arch", out / "pick.yaml", "--benchmark", "gsm8k", "--limit", 2,
                             "--pool", search_dir / "pool.yaml", "--data-dir", data_dir, "--out", tmp_path / "r")
    assert code == 0, err
    assert "accuracy" in stdout and (tmp_path / "r" / "metrics.json").is_file()


def test_pick_through_the_cli_and_an_unmeetable_pick(itas, search_dir, tmp_path):
    code, out, err = itas("report", search_dir, "--out", tmp_path, "--pick", "accuracy>=0.5", "--pick", "calls<=5",
                          "--no-plots")
    assert code == 0, err
    assert "pick (accuracy>=0.5 and calls<=5): trial" in out
    assert (tmp_path / "pick.yaml").is_file() and not (tmp_path / "progress.png").exists()
    code, out, err = itas("report", search_dir, "--out", tmp_path / "x", "--pick", "cost<0", "--no-plots")
    assert code == 2 and "no evaluated architecture meets cost<0" in err and len(err.strip().splitlines()) == 1
    assert "│" in out  # the table is still shown


@pytest.mark.parametrize("args,message", [
    (["--pick", "price<1"], "unknown objective 'price'"),
    (["--pick", "cost=0.1"], "expected OBJECTIVE OP NUMBER"),
    (["--format", "xml"], "allowed: table, json, csv, markdown"),
    (["--validate", "0"], "at least 1"),
])
def test_bad_options_are_one_line_and_exit_2(itas, search_dir, tmp_path, args, message):
    code, out, err = itas("report", search_dir, "--out", tmp_path, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_bad_sources_are_one_line_and_exit_2(itas, tmp_path):
    code, _, err = itas("report")
    assert code == 2 and "give one or more results directories" in err
    code, _, err = itas("report", tmp_path / "nope")
    assert code == 2 and "no such results directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = itas("report", tmp_path / "empty")
    assert code == 2 and "not a search results directory" in err


def test_machine_readable_formats(itas, search_dir, tmp_path):
    run = load_run(search_dir)
    front = sorted(t.number for t in run.front())
    code, out, err = itas("report", search_dir, "--format", "json", "--no-plots", "--out", tmp_path)
    assert code == 0, err
    data = json.loads(out)["runs"][0]
    assert sorted(r["trial"] for r in data["front"]) == front
    assert data["benchmark"] == "gsm8k" and data["questions"] == len(run.question_ids())
    assert all(0 <= r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] <= 1 for r in data["front"])
    code, out, _ = itas("report", search_dir, "--format", "csv", "--no-plots", "--out", tmp_path)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(int(r["trial"]) for r in rows if r["on_front"] == "True") == front
    assert {r["cost_unit"] for r in rows} == {"USD"}
    code, out, _ = itas("report", search_dir, "--format", "markdown", "--no-plots", "--out", tmp_path)
    assert out.startswith("# itas report") and f"## {run.label}" in out and "| trial |" in out


def test_several_runs_in_one_report(itas, search_dir, fresh_search_dir, tmp_path):
    code, out, err = itas("report", search_dir, fresh_search_dir, "--out", tmp_path, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [r["run"] for r in data["runs"]] == ["run", "run-2"]  # the same folder name twice: told apart
    assert (tmp_path / "comparison.png").is_file() and (tmp_path / "report.html").is_file()
    assert all((tmp_path / label / "progress.png").is_file() for label in ("run", "run-2"))
    page = (tmp_path / "report.html").read_text()
    assert page.count("<script type=\"text/javascript\">/**") <= 1  # plotly.js once
    assert [r["run"] for r in report_json(page)["runs"]] == ["run", "run-2"]


def test_a_study_from_its_storage_url_alone(itas, search_dir, tmp_path):
    run = load_run(search_dir)
    code, out, err = itas("report", "--storage", run.storage, "--study", run.study_name, "--format", "json",
                          "--out", tmp_path)
    assert code == 0, err
    data = json.loads(out)["runs"][0]
    assert sorted(r["trial"] for r in data["front"]) == sorted(t.number for t in run.front())
    assert data["questions"] == len(run.question_ids())
    code, _, err = itas("report", "--storage", run.storage, "--study", "nope")
    assert code == 2 and "no study named 'nope'" in err and run.study_name in err
