"""Test-time training's parts outside the component: job keys, the adapter cache, the training process's
environment check, and runtime LoRA loading (against a mock HTTP server)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path

import httpx
import pytest

from itas.errors import CallError, ServingError
from itas.pool.config import Endpoint, ModelSpec, PoolConfig, ServeSpec
from itas.pool.types import SamplingParams
from itas.ttt import services as ttt_services
from itas.ttt.job import TrainingJob, TrainingReport, TrainingSequence
from itas.ttt.serving import LoraServing, adapter_params
from itas.ttt.store import AdapterStore
from itas.ttt.trainer import SubprocessTrainer, TrainingError
from tests.arc.ttt_fakes import FakeTrainer


def job(**changes) -> TrainingJob:
    seq = TrainingSequence(({"role": "user", "content": "Input:\n01\nOutput:\n10\n\nTest input:\n02\nTest output:"},),
                           "20")
    values = dict(task="abc/def", served_model="smollm2-135m-instruct", sequences=(seq,), steps=10, rank=8,
                  alpha=16.0, learning_rate=1e-4, seed=0, max_length=2048)
    return TrainingJob(**{**values, **changes})


def test_the_key_covers_model_data_and_parameters_but_not_the_weights_path():
    base = job()
    assert base.key() == job().key() and base.adapter_name.startswith("ttt-") and len(base.adapter_name) == 20
    for change in (dict(steps=11), dict(rank=16), dict(learning_rate=2e-4), dict(seed=1), dict(max_length=1024),
                   dict(served_model="gemma-3-270m"), dict(sequences=())):
        assert job(**change).key() != base.key(), change
    assert job(task="other").key() == base.key(), "the content is the key; the task only names the folder"
    assert base.to_json("/a")["sequences"] == base.to_json("/b")["sequences"]
    assert base.folder_name().startswith("abc_def-")


def test_the_store_trains_once_and_keeps_complete_folders_only(tmp_path):
    store, trainer = AdapterStore(tmp_path), FakeTrainer()
    assert store.lookup(job()) is None
    first = store.obtain(job(), "/w", trainer)
    assert not first.cached and first.report == TrainingReport(1000, 100, 10, 12.5, 1, 0, 0.1)
    assert (first.path / "train.log").read_text() == "fake training\n"
    again = store.obtain(job(), "/w", trainer)
    assert again.cached and again.path == first.path and len(trainer.jobs) == 1
    assert json.loads((first.path / "job.json").read_text())["weights"] == "/w"
    failing = FakeTrainer(fail=True)
    with pytest.raises(TrainingError):
        store.obtain(job(steps=3), "/w", failing)
    assert store.lookup(job(steps=3)) is None
    assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name], "no temporary folder left"
    assert any(p.read_text() == "fake training\n" for p in (tmp_path / ".logs").iterdir())


def test_concurrent_questions_of_one_task_train_it_once(tmp_path):
    store, trainer = AdapterStore(tmp_path), FakeTrainer()
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.obtain(job(), "/w", trainer))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trainer.jobs) == 1 and sorted(a.cached for a in results) == [False, True, True, True]


def test_an_environment_without_torch_or_peft_is_a_serving_error(tmp_path):
    # this test environment has neither torch nor peft: the script says so with its own exit status
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ServingError, match="pip install peft"):
        SubprocessTrainer(python=Path(sys.executable)).train(job().to_json("/w"), out, tmp_path / "log")
    with pytest.raises(ServingError, match="itas models prepare"):
        SubprocessTrainer(python=tmp_path / "missing").train(job().to_json("/w"), out, tmp_path / "log")


def test_a_bad_job_file_is_a_training_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "job.json").write_text("{}")
    with pytest.raises(TrainingError, match="exit 2"):
        SubprocessTrainer(python=Path(sys.executable)).train({"task": "t"}, out, tmp_path / "log")


def test_adapter_params_name_the_adapter_and_change_the_cache_key():
    p = adapter_params(SamplingParams(temperature=0.0, max_tokens=9, extra=(("min_tokens", 1),)), "ttt-abc")
    assert dict(p.extra) == {"model": "ttt-abc", "min_tokens": 1} and p.max_tokens == 9
    assert p.key() != SamplingParams(temperature=0.0, max_tokens=9, extra=(("min_tokens", 1),)).key()


# ---- runtime loading -----------------------------------------------------------------------------------------
class FakeVllm:
    """The LoRA routes of a vLLM server that allows runtime loading (or not)."""

    def __init__(self, lora: bool = True, root: str = "/models/smol"):
        self.lora, self.root = lora, root
        self.loaded: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "smol", "root": self.root}]})
        if not self.lora:
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        name = body["lora_name"]
        self.log.append((request.url.path.rsplit("/", 1)[-1], f"{port}:{name}"))
        if request.url.path.endswith("/load_lora_adapter"):
            if f"{port}:{name}" in self.loaded:
                return httpx.Response(400, json={"error": {"message": f"The lora adapter '{name}' has already "
                                                                      f"been loaded."}})
            self.loaded.add(f"{port}:{name}")
            return httpx.Response(200, text="Success")
        self.loaded.discard(f"{port}:{name}")
        return httpx.Response(200, text="Success")


class PoolOf:
    def __init__(self, *urls: str, serve: ServeSpec | None = None):
        eps = tuple(Endpoint(u, 8) for u in urls)
        self.config = PoolConfig((ModelSpec("smollm2", "smol", 2048, 8, endpoints=eps, serve=serve),))


def test_loads_on_every_replica_once_while_in_use(tmp_path):
    server = FakeVllm()
    pool = PoolOf("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    serving = LoraServing(pool, transport=httpx.MockTransport(server))

    async def main():
        async def use():
            async with serving.loaded("smollm2", "ttt-1", tmp_path):
                assert server.loaded == {"8001:ttt-1", "8002:ttt-1"}
                await asyncio.sleep(0.01)

        await asyncio.gather(use(), use(), use())

    asyncio.run(main())
    assert [op for op, _ in server.log] == ["load_lora_adapter"] * 2 + ["unload_lora_adapter"] * 2
    assert server.loaded == set()


def test_an_adapter_loaded_by_an_earlier_process_is_fine(tmp_path):
    server = FakeVllm()
    server.loaded.add("8001:ttt-1")
    serving = LoraServing(PoolOf("http://127.0.0.1:8001/v1"), transport=httpx.MockTransport(server))

    async def main():
        async with serving.loaded("smollm2", "ttt-1", tmp_path):
            pass

    asyncio.run(main())


def test_a_server_without_runtime_lora_says_how_to_start_it(tmp_path):
    serving = LoraServing(PoolOf("http://127.0.0.1:8001/v1"), transport=httpx.MockTransport(FakeVllm(lora=False)))

    async def main():
        async with serving.loaded("smollm2", "ttt-1", tmp_path):
            pass

    with pytest.raises(ServingError, match="--enable-lora .* VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        asyncio.run(main())


def test_an_unreachable_server_is_a_call_error(tmp_path):
    def refuse(request):
        raise httpx.ConnectError("refused")

    serving = LoraServing(PoolOf("http://127.0.0.1:8001/v1"), transport=httpx.MockTransport(refuse))

    async def main():
        async with serving.loaded("smollm2", "ttt-1", tmp_path):
            pass

    with pytest.raises(CallError, match="refused"):
        asyncio.run(main())


def test_base_weights_from_the_managed_server_or_the_served_root(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "smol"
    folder.mkdir(parents=True)
    monkeypatch.setenv("ITAS_MODELS_DIR", str(tmp_path / "models"))
    serve = ServeSpec(args=("{python}", "-m", "vllm", "--model", "{models_dir}/smol", "--port", "{port}"))
    managed = LoraServing(PoolOf("http://127.0.0.1:8001/v1", serve=serve),
                          transport=httpx.MockTransport(FakeVllm(root="/nowhere")))
    assert asyncio.run(managed.base_weights("smollm2")) == str(folder)
    reported = LoraServing(PoolOf("http://127.0.0.1:8001/v1"), transport=httpx.MockTransport(FakeVllm(root=str(folder))))
    assert asyncio.run(reported.base_weights("smollm2")) == str(folder)
    remote = LoraServing(PoolOf("http://127.0.0.1:8001/v1"), transport=httpx.MockTransport(FakeVllm(root="/nowhere")))
    with pytest.raises(ServingError, match="not on this machine"):
        asyncio.run(remote.base_weights("smollm2"))


def test_where_adapters_are_kept(tmp_path, monkeypatch):
    class Cache:
        path = tmp_path / "run" / "calls.sqlite"

    class WithCache:
        cache = Cache()

    monkeypatch.delenv(ttt_services.ADAPTER_DIR_ENV, raising=False)
    services = ttt_services.Services()
    assert services.adapter_root(WithCache()) == tmp_path / "run" / "adapters"
    monkeypatch.setenv("ITAS_HOME", str(tmp_path / "home"))
    assert services.adapter_root(object()) == tmp_path / "home" / "adapters"
    monkeypatch.setenv(ttt_services.ADAPTER_DIR_ENV, str(tmp_path / "env"))
    assert services.adapter_root(WithCache()) == tmp_path / "env"
    assert ttt_services.Services(adapter_dir=tmp_path / "x").adapter_root(WithCache()) == tmp_path / "x"
    pool = WithCache()
    assert services.serving_for(pool) is services.serving_for(pool)
