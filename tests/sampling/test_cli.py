"""``itas sample`` on the command line, with the scripted fake pool and benchmark (no servers)."""

from __future__ import annotations

import json
import sys

import pytest


def itas(monkeypatch, capsys, *args):
    from itas.cli import main

    monkeypatch.setattr(sys, "argv", ["itas", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_sample_then_extend(fake_env, monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = itas(monkeypatch, capsys, "sample", "--benchmark", "gsm8k", "--model", "smollm2", "--k", "4",
                             "--subset", "3", "--seed", "1", "--out", str(out), "--reward", "judge:gemma3",
                             "--max-tokens", "48")
    assert code == 0, err
    assert "coverage" in stdout and "vote@k" in stdout and "BoN@k" in stdout and "WoN@k" in stdout
    assert "fit: log(coverage) = a·k^b" in stdout and "N/(N+1)" in stdout and str(out) in stdout.replace("\n", "")
    assert "12 new" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["max_tokens"] == 48 and config["reward"]["spec"] == "judge:gemma3"
    for name in ("coverage.png", "curves.png", "winrate.png", "sampling.html", "curves.csv", "fit.json",
                 "winrate.csv", "samples.jsonl"):
        assert (out / name).is_file(), name

    code, stdout, err = itas(monkeypatch, capsys, "sample", "--resume", str(out), "--k", "8")
    assert code == 0, err
    assert "12 new" in stdout and "extending the run from k=4 to k=8" in err
    assert fake_env.pool.samples_made == 2 * (12 + 12)  # per run: 12 new samples and their 12 judgements


def test_bad_input_exits_2(fake_env, monkeypatch, capsys, tmp_path):
    code, _, err = itas(monkeypatch, capsys, "sample", "--benchmark", "gsm8k", "--model", "smollm2", "--k", "2",
                        "--reward", "judge", "--out", str(tmp_path / "x"))
    assert code == 2 and err.startswith("error: --reward 'judge'") and len(err.strip().splitlines()) == 1
    code, _, err = itas(monkeypatch, capsys, "sample", "--model", "smollm2", "--out", str(tmp_path / "y"))
    assert code == 2 and "needs --benchmark, --k" in err
    code, _, err = itas(monkeypatch, capsys, "sample", "--benchmark", "gsm8k", "--model", "smollm2", "--k", "0",
                        "--out", str(tmp_path / "z"))
    assert code == 2 and "--k must be at least 1" in err


def test_failed_questions_exit_1(fake_env, monkeypatch, capsys, tmp_path):
    fake_env.pool.fail_on = lambda model, messages: True
    code, stdout, err = itas(monkeypatch, capsys, "sample", "--benchmark", "gsm8k", "--model", "smollm2", "--k", "2",
                             "--subset", "2", "--out", str(tmp_path / "f"))
    assert code == 1 and "2 question(s) failed" in err and "--resume" in err
    assert "no question has its samples yet" in stdout


def test_itas_report_shows_a_sampling_run(fake_env, monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = itas(monkeypatch, capsys, "sample", "--benchmark", "gsm8k", "--model", "smollm2", "--k", "4",
                        "--subset", "3", "--out", str(out), "--max-tokens", "48")
    assert code == 0, err
    (out / "curves.png").unlink()
    code, stdout, err = itas(monkeypatch, capsys, "report", str(out), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert "repeated sampling" in stdout and "coverage" in stdout
    assert (tmp_path / "rep" / "curves.png").is_file() and (tmp_path / "rep" / "sampling.html").is_file()
    code, stdout, _ = itas(monkeypatch, capsys, "report", str(out), "--format", "json", "--no-plots")
    assert code == 0 and len(json.loads(stdout)["curves"]) == 4
