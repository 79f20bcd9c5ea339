"""``itas benchmarks list | show | score`` and grading predictions made elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from itas.benchmarks.predictions import read_predictions, score_predictions
from itas.cli.benchmarks import register
from itas.errors import InputError


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:  # a group needs a callback to keep "benchmarks" as a subcommand
        pass

    return app


def write_predictions(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_list_and_show(app, data_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["benchmarks", "list"])
    assert result.exit_code == 0
    for name in ("gsm8k", "math", "math500", "humaneval", "humanevalplus", "mbpp"):
        assert name in result.output
    result = runner.invoke(app, ["benchmarks", "show", "math500", "--data-dir", str(data_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "math_verify" in result.output and "500 from" in result.output and "\\boxed{}" in result.output


def test_score_predictions_report(app, data_dir, tmp_path):
    preds = write_predictions(tmp_path / "p.jsonl", [
        {"id": "gsm8k/test/0", "output": "She makes 18 dollars. The answer is 18."},
        {"id": "gsm8k/test/1", "output": "#### 4"},
        {"id": "gsm8k/test/2", "output": "I am not sure."},
    ])
    result = CliRunner().invoke(app, ["benchmarks", "score", "gsm8k", "--predictions", str(preds), "--data-dir",
                                      str(data_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "accuracy 33.3%" in result.output and "3 of 1319 questions" in result.output
    assert "no_answer" in result.output and "gsm8k/test/2" in result.output


def test_score_predictions_library(data_dir, tmp_path):
    from itas.benchmarks import load_benchmark

    bench = load_benchmark("math", data_dir)
    q = bench.questions()[0]
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": q.id, "output": bench.reference_output(q)}])
    report = score_predictions(bench, preds)
    assert report.accuracy == 1.0 and report.counts == {"correct": 1} and report.questions == 500


@pytest.mark.parametrize("rows, message", [
    (['{"id": "gsm8k/test/0", "output": "1"}', "{not json"], r"p.jsonl:2: malformed JSON"),
    ([{"id": "gsm8k/test/0"}], r"p.jsonl:1: missing key 'output'"),
    ([{"id": "gsm8k/test/0", "output": 5}], r"p.jsonl:1: key 'output': expected a string"),
    ([{"id": ["x"], "output": "5"}], r"p.jsonl:1: key 'id': expected a string"),
    ([{"id": "a", "output": "1"}, {"id": "a", "output": "2"}], r"p.jsonl:2: key 'id': 'a' appears twice"),
    ([[1, 2]], r"p.jsonl:1: expected an object"),
    ([], r"p.jsonl: no predictions"),
])
def test_bad_predictions_name_file_line_and_key(tmp_path, rows, message):
    with pytest.raises(InputError, match=message):
        read_predictions(write_predictions(tmp_path / "p.jsonl", rows))


def test_unknown_question_id_in_predictions(data_dir, tmp_path):
    from itas.benchmarks import load_benchmark

    preds = write_predictions(tmp_path / "p.jsonl", [{"id": "gsm8k/test/0", "output": "1"},
                                                     {"id": "gsm8k/tset/1", "output": "1"}])
    with pytest.raises(InputError, match=r"p.jsonl:2: key 'id': benchmark 'gsm8k' has no question 'gsm8k/tset/1'"):
        score_predictions(load_benchmark("gsm8k", data_dir), preds)


def test_the_itas_command_reports_bad_input_in_one_line_with_exit_code_2(data_dir, tmp_path):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": "gsm8k/test/0"}])
    done = subprocess.run([sys.executable, "-m", "itas", "benchmarks", "score", "gsm8k", "--predictions", str(preds),
                           "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {preds}:1: missing key 'output'"
    assert "Traceback" not in done.stderr
    missing = subprocess.run([sys.executable, "-m", "itas", "benchmarks", "score", "nope", "--predictions", str(preds)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "unknown benchmark 'nope'" in missing.stderr
