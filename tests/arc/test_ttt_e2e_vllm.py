"""End to end with a real vLLM server: on 16 held-out test inputs of one synthetic colour-permutation task, the
``ttt`` architecture (a LoRA adapter trained on the task's 3 demonstrations in the serving environment, loaded into
the running server) scores higher than the same architecture without ``ttt``.

The shared test pool's servers run without LoRA, so this test starts its own SmolLM2 server with runtime LoRA
loading (the default pool's arguments plus ``--enable-lora``), next to them if they run. About 4-6 minutes on two
cores: the server's start (~40 s), one training of 50 steps (~2-3 minutes), and 2 x 16 greedy answers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import pytest
import yaml

from itas.arch.executor import run_architecture
from itas.arch.spec import parse_architecture
from itas.benchmarks import load_benchmark
from itas.pool.client import Pool
from itas.pool.config import ModelSpec, PoolConfig, ServeSpec, load_pool
from itas.ttt import TRAIN_COST_FACTOR
from itas.ttt import services as ttt_services
from tests.conftest import REPO

pytestmark = pytest.mark.vllm

GENERATE = {"model": "smollm2", "samples": 1, "temperature": 0.0, "max_tokens": 64}
TTT = {"steps": 50, "rank": 16, "learning_rate": 0.001, "train_augmentations": 7, "transforms": "geometric"}


def lora_pool() -> PoolConfig:
    """The default pool's SmolLM2 server, with runtime LoRA loading."""
    base = load_pool(None)["smollm2"]
    args = (*base.serve.args, "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2")
    env = {**dict(base.serve.env), "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}
    spec = ModelSpec(name="smollm2", model=base.model, context_length=base.context_length, max_concurrency=64,
                     serve=ServeSpec(args=args, env=tuple(sorted(env.items())), ready_timeout=600))
    return PoolConfig(models=(spec,), source="ttt e2e pool (SmolLM2 with runtime LoRA)")


def one_task_benchmark(tmp_path):
    definition = yaml.safe_load((REPO / "benchmarks" / "arc_synthetic.yaml").read_text())
    definition["name"] = "arc-synthetic-one-task"
    definition["data"]["loader"].update(seed=7, tasks=1, demos=3, tests=16, kinds=["colour_permutation"])
    definition.pop("stratify")
    path = tmp_path / "one-task.yaml"
    path.write_text(yaml.safe_dump(definition))
    return load_benchmark(str(path))


def test_ttt_scores_higher_than_the_same_architecture_without_it(tmp_path):
    from itas.paths import serving_python
    from itas.pool.serving import start_pool

    python = serving_python()
    if not python.exists():
        pytest.fail("the serving environment is missing: run `make models` (or `itas models prepare`) first")
    import subprocess

    if subprocess.run([str(python), "-c", "import peft"], capture_output=True).returncode != 0:
        pytest.fail(f"peft is missing from the serving environment: {python} -m pip install peft")

    bench = one_task_benchmark(tmp_path)
    questions = bench.questions()
    assert len(questions) == 16 and len({q.meta["task"] for q in questions}) == 1
    plain = parse_architecture({"name": "plain", "layers": [[{"type": "generator", **GENERATE}]]}, "plain.yaml")
    trained = parse_architecture({"name": "ttt", "layers": [[{"type": "ttt", **GENERATE, **TTT}]]}, "ttt.yaml")
    adapters = tmp_path / "adapters"

    async def evaluate(config):
        from itas.pool.cache import CallCache

        cache = CallCache(tmp_path / "calls.sqlite")
        try:
            async with Pool(config, cache) as pool:
                t = time.perf_counter()
                base = await run_architecture(plain, bench, questions, pool)
                t_base = time.perf_counter() - t
                t = time.perf_counter()
                ttt = await run_architecture(trained, bench, questions, pool)
                t_ttt = time.perf_counter() - t
                again = await run_architecture(trained, bench, questions, pool)  # all from the caches
                return base, ttt, again, t_base, t_ttt
        finally:
            cache.close()

    t0 = time.perf_counter()
    running = start_pool(lora_pool(), report=lambda m: print(f"[lora pool] {m}", flush=True), calibrate=False)
    try:
        print(f"server ready after {time.perf_counter() - t0:.0f} s", flush=True)
        with ttt_services.use(ttt_services.Services(adapter_dir=adapters)):
            base, ttt, again, t_base, t_ttt = asyncio.run(evaluate(running.config))
        with httpx.Client() as http:  # the adapter was unloaded once no question used it
            served = [d["id"] for d in http.get(running.config["smollm2"].endpoints[0].url + "/models").json()["data"]]
    finally:
        running.stop()

    b, t = base.metrics(), ttt.metrics()
    trains = [c for q in ttt.questions for c in q.calls if c.kind == "train"]
    folders = list((adapters / "smollm2-135m-instruct").iterdir())
    report = json.loads((folders[0] / "training.json").read_text())
    print(f"\nheld-out test inputs of {questions[0].meta['task']}: without ttt {b.accuracy:.3f} "
          f"({sum(q.score for q in base.questions):.0f}/16, {t_base:.0f} s), with ttt {t.accuracy:.3f} "
          f"({sum(q.score for q in ttt.questions):.0f}/16, {t_ttt:.0f} s including training)")
    print(f"training: {report['steps']} steps, {report['sequences']} sequences, {report['tokens']} tokens, "
          f"{report['seconds']:.0f} s, final loss {report['final_loss']}; cost per query without ttt "
          f"{b.cost_per_query:.0f}, with ttt {t.cost_per_query:.0f} tokens; latency p50 {b.latency_p50:.1f} s "
          f"vs {t.latency_p50:.1f} s", flush=True)

    assert b.n_failed == 0 and t.n_failed == 0, [q.error for q in ttt.questions if q.failed]
    assert t.accuracy > b.accuracy
    # one adapter for the task, trained once, counted in every question's cost and latency
    assert len(folders) == 1 and len(trains) == 16 and sum(not c.cached for c in trains) == 1
    assert all(c.prompt_tokens == round(TRAIN_COST_FACTOR * report["tokens"]) for c in trains)
    assert t.latency_p50 > report["seconds"] and t.cost_per_query > b.cost_per_query + 2 * report["tokens"]
    # the samples came from the adapter served by vLLM: the requests named it as their model
    with sqlite3.connect(tmp_path / "calls.sqlite") as db:
        requests = [json.loads(r[0]) for r in db.execute("SELECT request FROM requests")]
    names = {dict(map(tuple, r["params"].get("extra", []))).get("model") for r in requests}
    assert names == {None, f"ttt-{folders[0].name.rsplit('-', 1)[-1]}"}
    assert not any(s.startswith("ttt-") for s in served)
    # a second run finds the adapter and every sample in the caches: same scores, no training, no call
    assert [q.score for q in again.questions] == [q.score for q in ttt.questions]
    assert all(c.cached for q in again.questions for c in q.calls)
