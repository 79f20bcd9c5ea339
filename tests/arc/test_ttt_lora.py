"""Which models a run serves with LoRA (from a search space's ``ttt`` stage, an architecture's ``ttt`` components),
the checks against the pool, and a search and a run on ``arc-synthetic`` through managed servers (the scripted
fake server, which loads adapters only when started as vLLM must be for it) with a fake trainer."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from itas.arch.spec import load_architecture, parse_architecture
from itas.errors import ConfigError, InputError
from itas.pool import state
from itas.pool.config import load_pool, parse_pool
from itas.search.space import load_space, parse_space
from itas.ttt import services as ttt_services
from itas.ttt.lora import (
    lora_for_architectures,
    lora_for_search,
    lora_models,
    needs_of_architecture,
    needs_of_space,
)
from itas.ttt.serving import LoraServing
from tests.arc.ttt_fakes import FakeTrainer

REPO = Path(__file__).resolve().parents[2]


# ---- what needs LoRA -------------------------------------------------------------------------------------------
def space(stages) -> object:
    return parse_space({"name": "s", "stages": stages}, "space.yaml")


def test_the_shipped_arc_spaces_need_lora_for_both_models():
    for name in ("arc", "arc-synthetic"):
        assert needs_of_space(load_space(name)) == {"smollm2": 16, "gemma3": 16}, name
    assert needs_of_space(load_space("gsm8k")) == {}
    assert lora_for_search(load_pool(None), load_space("arc-synthetic")) == {"smollm2", "gemma3"}
    assert lora_for_search(load_pool(None), load_space("default")) == frozenset()


def test_a_space_needs_lora_for_the_models_its_generate_stage_may_use_at_the_largest_rank():
    gen = {"generate": {"models": ["a", "b", "c"], "count": [1, 2]}}
    assert needs_of_space(space([gen, {"ttt": {"optional": True, "rank": [8, 32]}}])) == {"a": 32, "b": 32}
    assert needs_of_space(space([gen, {"ttt": {"steps": 4}}])) == {"a": 16, "b": 16}  # the component's default
    assert needs_of_space(space([{"generate": {"models": ["a", "b"]}}, {"ttt": {"rank": 8}}])) == {"a": 8, "b": 8}
    assert needs_of_space(space([gen, {"augment_vote": {"optional": True}}])) == {}


def test_an_architecture_needs_lora_for_its_ttt_models():
    assert needs_of_architecture(load_architecture("arc-ttt")) == {"smollm2": 16}
    assert needs_of_architecture(load_architecture("arc-augment-vote")) == {}
    mixed = parse_architecture({"layers": [[{"type": "ttt", "model": "gemma3", "rank": 8},
                                            {"type": "ttt", "model": "gemma3", "rank": 32},
                                            {"type": "generator", "model": "smollm2"}]]}, "a.yaml")
    assert needs_of_architecture(mixed) == {"gemma3": 32}
    assert lora_for_architectures(load_pool(None), [load_architecture("arc-ttt")]) == {"smollm2"}


def fake_pool_data(lora: bool = True, managed: bool = True) -> dict:
    if not managed:
        return {"models": {"fake": {"model": "fake-model", "endpoints": ["http://127.0.0.1:9/v1"]}}}
    serve = {"args": [sys.executable, "-m", "tests.fake_openai", "--port", "{port}", "--model", "fake-model"],
             "env": {"PYTHONPATH": str(REPO)}, "ready_timeout": 30}
    if lora:
        serve["lora"] = {"max_rank": 16, "max_loras": 4}
    return {"models": {"fake": {"model": "fake-model", "context_length": 2048, "serve": serve}}}


def test_the_pool_must_be_able_to_serve_the_adapters():
    with pytest.raises(ConfigError) as e:
        lora_models(parse_pool(fake_pool_data(lora=False), "pool.yaml"), {"fake": 16}, source="arch.yaml")
    assert str(e.value).startswith("pool.yaml: models.fake.serve.lora: test-time training (ttt) on 'fake' (asked "
                                   "by arch.yaml) needs a server that loads LoRA adapters; add lora: {max_rank: 16")
    with pytest.raises(ConfigError) as e:
        lora_models(parse_pool(fake_pool_data(), "pool.yaml"), {"fake": 32})
    assert str(e.value).startswith("pool.yaml: models.fake.serve.lora.max_rank: 16 is less than the LoRA rank 32")
    # endpoints itas does not start are left as they are (a server without LoRA fails the ttt questions)
    assert lora_models(parse_pool(fake_pool_data(managed=False), "p"), {"fake": 16}) == frozenset()
    assert lora_models(parse_pool(fake_pool_data(), "p"), {}) == frozenset()


# ---- a search and a run through managed fake servers -------------------------------------------------------------
SPACE = {"name": "ttt-lora", "max_tokens": 16,
         "stages": [{"generate": {"models": ["fake"], "samples": [1], "temperature": [0.0]}},
                    {"ttt": {"optional": True, "steps": 4, "rank": 8, "learning_rate": 0.001,
                             "train_augmentations": 1, "transforms": "geometric"}}],
         "constraints": {"max_calls_per_query": 10}}
TTT = {"type": "ttt", "model": "fake", "samples": 1, "temperature": 0.0, "max_tokens": 16, "steps": 4, "rank": 8,
       "learning_rate": 0.001, "train_augmentations": 1, "transforms": "geometric"}


class LocalWeights(LoraServing):
    """Real runtime loading over HTTP; only the base weights' folder is made up (the trainer is fake)."""

    async def base_weights(self, model: str) -> str:
        return "/fake/weights"


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("ITAS_STATE_DIR", str(tmp_path / "state"))
    trainer = FakeTrainer(tokens=1000, seconds=12.5)
    asked: list = []
    from itas.pool import serving

    real = serving.start_pool

    def spy(config, **kw):
        asked.append(set(kw.get("lora", ())))
        return real(config, **kw)

    monkeypatch.setattr(serving, "start_pool", spy)
    with ttt_services.use(ttt_services.Services(trainer=trainer, serving=LocalWeights)):
        yield trainer, asked
    for rec in state.read():
        try:
            os.killpg(rec["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def files(tmp_path, lora: bool = True) -> tuple[Path, Path, Path]:
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump(fake_pool_data(lora=lora)))
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    arch = tmp_path / "ttt.yaml"
    arch.write_text(yaml.safe_dump({"name": "fake-ttt", "layers": [[TTT]]}, sort_keys=False))
    return pool, space_file, arch


def test_a_search_with_a_ttt_stage_serves_its_model_with_lora_and_trains(tmp_path, fakes):
    from itas.search.runner import SearchRequest, run_search

    trainer, asked = fakes
    pool, space_file, arch = files(tmp_path)
    req = SearchRequest(benchmark="arc-synthetic", budget=2, out=tmp_path / "run", space=str(space_file),
                        pool=str(pool), subset=3, seed=0, jobs=1, enqueue=[str(arch)])
    outcome = asyncio.run(run_search(req))
    assert outcome.counted == 2 and asked == [{"fake"}]
    rows = list(csv.DictReader((outcome.run_dir / "trials.csv").open()))
    assert [(r["kind"], r["status"]) for r in rows] == [("baseline", "evaluated"), ("enqueued", "evaluated")], rows
    assert trainer.jobs, "the ttt trial trained (its adapter was loaded into the server, which has LoRA)"
    assert list((outcome.run_dir / "adapters").rglob("adapter_config.json"))
    assert state.read() == [], "the servers it started are stopped"
    from itas.report.source import load_run

    ttt_trial = next(t for t in load_run(outcome.run_dir).evaluated() if t.kind == "enqueued")
    assert ttt_trial.metrics["train_cost_per_query"] == pytest.approx(3000)  # 3 x 1000 tokens, unpriced pool
    assert ttt_trial.metrics["train_latency_per_query"] == pytest.approx(12.5)


def test_a_search_whose_pool_cannot_serve_adapters_is_bad_input_before_anything(tmp_path, fakes):
    from itas.search.runner import SearchRequest, run_search

    _, asked = fakes
    pool, space_file, _ = files(tmp_path, lora=False)
    for dry_run in (True, False):
        req = SearchRequest(benchmark="arc-synthetic", budget=2, out=tmp_path / "run", space=str(space_file),
                            pool=str(pool), subset=3, dry_run=dry_run)
        with pytest.raises(InputError, match=r"models\.fake\.serve\.lora: test-time training \(ttt\)"):
            asyncio.run(run_search(req))
    assert not (tmp_path / "run").exists() and asked == []


def test_itas_run_serves_lora_only_for_an_architecture_with_ttt(tmp_path, fakes):
    from itas.arch.evaluate import RunRequest, evaluate

    trainer, asked = fakes
    pool, _, arch = files(tmp_path)
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"layers": [[{"type": "generator", "model": "fake", "max_tokens": 16}]]}))
    out = asyncio.run(evaluate(RunRequest(arch=str(plain), benchmark="arc-synthetic", limit=2, pool=str(pool),
                                          out=tmp_path / "plain-run")))
    assert asked == [set()] and not any(q.failed for q in out.result.questions)
    out = asyncio.run(evaluate(RunRequest(arch=str(arch), benchmark="arc-synthetic", limit=2, pool=str(pool),
                                          out=tmp_path / "ttt-run")))
    assert asked == [set(), {"fake"}] and not any(q.failed for q in out.result.questions)
    m = out.result.metrics()
    assert m.train_cost_per_query == pytest.approx(3000) and m.train_latency_per_query == pytest.approx(12.5)
    assert trainer.jobs


def test_without_lora_the_adapter_is_refused_with_what_to_do(tmp_path, fakes, monkeypatch):
    """What the lora set prevents: a managed server started without LoRA refuses the adapter (HTTP 404)."""
    from itas.arch.evaluate import RunRequest, evaluate
    from itas.errors import ServingError
    from itas.ttt import lora

    monkeypatch.setattr(lora, "lora_models", lambda *a, **k: frozenset())
    pool, _, arch = files(tmp_path)
    with pytest.raises(ServingError, match="does not load LoRA adapters at runtime .* serve.lora in the pool"):
        asyncio.run(evaluate(RunRequest(arch=str(arch), benchmark="arc-synthetic", limit=1, pool=str(pool),
                                        out=tmp_path / "run")))
