"""``itas run`` end to end with the scripted fake pool and benchmark (no servers)."""

import contextlib
import json
import sys
import types

import pytest

from itas.pool import session as pool_session
from tests.fakes import FakeBenchmark, FakePool


@pytest.fixture
def fakes(monkeypatch):
    """The benchmark loader and the pool opener replaced by fakes; records what they were asked."""
    seen: dict = {"pools": []}
    module = types.ModuleType("itas.benchmarks")

    def load_benchmark(name, data_dir=None):
        seen["benchmark"] = (name, data_dir)
        return FakeBenchmark(n=8, kind="code" if name == "fake-code" else "math", name=name)

    module.load_benchmark = load_benchmark
    monkeypatch.setitem(sys.modules, "itas.benchmarks", module)

    @contextlib.asynccontextmanager
    async def open_pool(pool=None, *, cache=None, report=None, **kw):
        p = FakePool(config=pool)
        seen["pools"].append((p, cache))
        yield p

    monkeypatch.setattr(pool_session, "open_pool", open_pool)
    return seen


def itas(monkeypatch, capsys, *args):
    from itas.cli import main

    monkeypatch.setattr(sys, "argv", ["itas", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_runs_a_shipped_example_and_writes_outputs(fakes, monkeypatch, capsys, tmp_path):
    code, out, err = itas(monkeypatch, capsys, "run", "--arch", "vote5", "--benchmark", "gsm8k", "--limit", "3",
                          "--out", str(tmp_path / "r"), "--seed", "7", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert "accuracy" in out and "latency p50 / p95" in out and "calls per query" in out and "cost per query" in out
    assert fakes["benchmark"] == ("gsm8k", tmp_path)
    pool, cache = fakes["pools"][0]
    assert cache == tmp_path / "r" / "calls.sqlite"
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["metrics"]["calls_per_query"] == 5 and metrics["estimate"]["calls"] == 5
    assert metrics["run"]["seed"] == 7 and len(metrics["run"]["question_ids"]) == 3
    assert metrics["run"]["question_ids"] == [q.id for q in FakeBenchmark(n=8).subset(3, 7)]
    assert len((tmp_path / "r" / "questions.jsonl").read_text().splitlines()) == 3
    assert "name: vote5" in (tmp_path / "r" / "architecture.yaml").read_text()


def test_every_shipped_example_runs(fakes, monkeypatch, capsys, tmp_path):
    from itas.arch.spec import shipped_architectures

    for name in shipped_architectures():
        bench = "fake-code" if "code" in name else "gsm8k"
        code, out, err = itas(monkeypatch, capsys, "run", "--arch", name, "--benchmark", bench, "--limit", "2",
                              "--out", str(tmp_path / name), "--cache", str(tmp_path / "shared.sqlite"))
        assert code == 0, (name, err)
        assert (tmp_path / name / "metrics.json").is_file()
    assert {str(c) for _, c in fakes["pools"]} == {str(tmp_path / "shared.sqlite")}


def test_archon_json_with_a_model_map(fakes, monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "archon.json"
    cfg.write_text(json.dumps({"name": "a", "layers": [
        [{"type": "generator", "model": "Qwen/Qwen2-72B-Instruct", "model_type": "Together_API",
          "temperature": 0.7, "max_tokens": 64, "samples": 2}],
        [{"type": "fuser", "model": "gpt-4o", "model_type": "OpenAI_API", "temperature": 0.7, "max_tokens": 64,
          "samples": 1}]]}))
    code, out, err = itas(monkeypatch, capsys, "run", "--arch", str(cfg), "--benchmark", "gsm8k", "--limit", "1",
                          "--model-map", "Qwen/Qwen2-72B-Instruct=smollm2", "--model-map", "gpt-4o=gemma3",
                          "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "ignored Archon key 'model_type'" in err
    assert "model: gemma3" in (tmp_path / "o" / "architecture.yaml").read_text()


@pytest.mark.parametrize("args,message", [
    (["--arch", "vote", "--benchmark", "gsm8k"], "did you mean 'vote5'"),
    (["--arch", "vote5", "--benchmark", "gsm8k", "--model-map", "nonsense"], "expected NAME=POOL_MODEL"),
])
def test_bad_input_is_one_line_and_exit_2(fakes, monkeypatch, capsys, args, message):
    code, out, err = itas(monkeypatch, capsys, "run", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert fakes["pools"] == []


def test_models_missing_from_the_pool_fail_before_servers_start(fakes, monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("layers: [[{type: generator, model: llama}]]\n")
    code, _, err = itas(monkeypatch, capsys, "run", "--arch", str(cfg), "--benchmark", "gsm8k")
    assert code == 2 and "layers[0][0].model: model 'llama' is not in" in err
    assert fakes["pools"] == [] and "benchmark" not in fakes


def test_failed_questions_are_reported_and_exit_1(monkeypatch, capsys, tmp_path, fakes):
    # every call to one question's prompt fails: the table is still shown, then one line and exit 1
    @contextlib.asynccontextmanager
    async def failing_pool(pool=None, *, cache=None, report=None, **kw):
        yield FakePool(config=pool, fail_on=lambda model, messages: "What is 3 + 4?" in json.dumps(messages))

    monkeypatch.setattr(pool_session, "open_pool", failing_pool)
    code, out, err = itas(monkeypatch, capsys, "run", "--arch", "single", "--benchmark", "gsm8k", "--limit", "8",
                          "--out", str(tmp_path / "r"))
    assert code == 1 and "(1 failed)" in out, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 8 question(s) failed") and "scripted failure" in last, err
    records = [json.loads(x) for x in (tmp_path / "r" / "questions.jsonl").read_text().splitlines()]
    assert sum(1 for r in records if r["error"]) == 1
