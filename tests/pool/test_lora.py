"""LoRA for test-time training on managed servers: the pool key ``serve.lora``, the exact command line and
environment of a server with and without it, the record that says whether it is on, and what a run that needs it
does with a server already running without it (restart it when it is its own, else a one-line error)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from itas.errors import ConfigError, ServingError
from itas.paths import models_dir, serving_python
from itas.pool import state
from itas.pool.config import LORA_ENV, LoraSpec, load_pool, parse_pool
from itas.pool.serving import cpu_dtype, server_command, start_pool

REPO = Path(__file__).resolve().parents[2]
LORA_FLAGS = ["--enable-lora", "--max-lora-rank", "16", "--max-loras", "4"]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("ITAS_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    for rec in state.read():  # never leave a test server behind
        try:
            os.killpg(rec["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def fake_pool(lora: object = "default", args_extra: tuple = ()) -> dict:
    serve = {"args": [sys.executable, "-m", "tests.fake_openai", "--port", "{port}", "--model", "fake-model",
                      *args_extra],
             "env": {"PYTHONPATH": str(REPO)}, "ready_timeout": 30}
    if lora == "default":
        serve["lora"] = {"max_rank": 16, "max_loras": 4}
    elif lora is not None:
        serve["lora"] = lora
    return {"models": {"fake": {"model": "fake-model", "serve": serve}}}


def err(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_pool(data, "pool.yaml")
    return str(e.value)


def lora_of(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/lora", timeout=5).json()


# ---- the pool key -------------------------------------------------------------------------------------------------
def test_the_default_pool_serves_both_models_with_lora_settings_but_the_same_spec_hash():
    pool = load_pool(None)
    assert [m.serve.lora for m in pool.models] == [LoraSpec(16, 4), LoraSpec(16, 4)]
    assert all(m.serve.lora_in_args is None for m in pool.models), "no hand-added LoRA flags any more"
    # the key does not change which running servers a pool matches (servers of `itas pool up` stay adoptable)
    data = fake_pool()
    plain = fake_pool(lora=None)
    assert (parse_pool(data, "p")["fake"].serve.spec_hash("fake")
            == parse_pool(plain, "p")["fake"].serve.spec_hash("fake"))
    assert parse_pool(data, "p").to_dict()["models"]["fake"]["serve"]["lora"] == {"max_rank": 16, "max_loras": 4}


def test_defaults_and_valid_values():
    assert parse_pool(fake_pool(lora={}), "p")["fake"].serve.lora == LoraSpec(16, 4)
    assert parse_pool(fake_pool(lora={"max_rank": 64, "max_loras": 1}), "p")["fake"].serve.lora == LoraSpec(64, 1)
    assert parse_pool(fake_pool(lora=None), "p")["fake"].serve.lora is None


@pytest.mark.parametrize("lora, key, says", [
    ({"max_rank": 12}, "models.fake.serve.lora.max_rank", "12 is not a LoRA rank vLLM serves; allowed: 1, 8, 16, 32"),
    ({"max_rank": "16"}, "models.fake.serve.lora.max_rank", "expected an integer"),
    ({"max_loras": 0}, "models.fake.serve.lora.max_loras", "must be at least 1"),
    ({"rank": 16}, "models.fake.serve.lora.rank", "unknown key 'rank'"),
    (True, "models.fake.serve.lora", "expected a mapping"),
])
def test_bad_lora_settings_are_one_line_naming_the_key(lora, key, says):
    message = err(fake_pool(lora=lora))
    assert message.startswith(f"pool.yaml: {key}: ") and says in message and "\n" not in message


def test_a_lora_key_outside_serve_is_refused():
    data = fake_pool(lora=None)
    data["models"]["fake"]["lora"] = {"max_rank": 16}
    assert err(data).startswith("pool.yaml: models.fake.lora: unknown key 'lora'")


def test_a_bad_lora_key_is_exit_2_from_the_command_line(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(fake_pool(lora={"max_rank": 12})))
    out = subprocess.run([sys.executable, "-m", "itas", "pool", "status", "--pool", str(path)], capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "ITAS_STATE_DIR": str(tmp_path / "state")})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "models.fake.serve.lora.max_rank" in out.stderr


# ---- the command line ----------------------------------------------------------------------------------------------
def test_the_default_pools_server_command_without_and_with_lora():
    m = load_pool(None)["smollm2"]
    base = [str(serving_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", f"{models_dir()}/smollm2-135m-instruct", "--served-model-name", "smollm2-135m-instruct",
            "--host", "127.0.0.1", "--port", "4321", "--max-model-len", "2048", "--enforce-eager",
            "--max-num-seqs", "256", "--dtype", cpu_dtype()]
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_SERVER_DEV_MODE": "1"}
    assert server_command(m, 4321) == (base, env)
    assert server_command(m, 4321, lora=False) == (base, env)
    assert server_command(m, 4321, lora=True) == (base + LORA_FLAGS, {**env, LORA_ENV: "True"})


def test_the_pools_own_lora_settings_are_used_and_hand_added_flags_not_doubled():
    m = parse_pool(fake_pool(lora={"max_rank": 32, "max_loras": 2}), "p")["fake"]
    args, env = server_command(m, 9)
    assert "--enable-lora" not in args and LORA_ENV not in env
    args, env = server_command(m, 9, lora=True)
    assert args[-5:] == ["--enable-lora", "--max-lora-rank", "32", "--max-loras", "2"] and env[LORA_ENV] == "True"
    by_hand = parse_pool(fake_pool(lora=None, args_extra=("--enable-lora", "--max-lora-rank", "8")), "p")["fake"]
    assert by_hand.serve.lora_available == LoraSpec(8, 1)
    args, env = server_command(by_hand, 9, lora=True)
    assert args.count("--enable-lora") == 1 and env[LORA_ENV] == "True"
    with pytest.raises(ServingError, match="no serve.lora"):
        server_command(parse_pool(fake_pool(lora=None), "p")["fake"], 9, lora=True)


# ---- managed servers -----------------------------------------------------------------------------------------------
def test_lora_only_when_the_run_needs_it():
    config = parse_pool(fake_pool(), "pool.yaml")
    plain = start_pool(config, calibrate=False)
    (rec,) = plain.started
    url = plain.config["fake"].endpoints[0].url
    try:
        assert rec["lora"] is None and state.read()[0]["lora"] is None
        info = lora_of(url)
        assert info["runtime"] is False and "--enable-lora" not in info["argv"]
        assert httpx.post(url + "/load_lora_adapter", json={"lora_name": "a", "lora_path": "/x"}).status_code == 404
    finally:
        plain.stop()
    with_lora = start_pool(config, calibrate=False, lora={"fake"})
    (rec,) = with_lora.started
    url = with_lora.config["fake"].endpoints[0].url
    try:
        assert rec["lora"] == {"max_rank": 16, "max_loras": 4} and state.read()[0]["lora"] == rec["lora"]
        info = lora_of(url)
        assert info["runtime"] is True and info["max_rank"] == 16 and info["max_loras"] == 4
        assert httpx.post(url + "/load_lora_adapter", json={"lora_name": "a", "lora_path": "/x"}).status_code == 200
    finally:
        with_lora.stop()


def test_a_model_without_lora_settings_cannot_be_asked_for_lora():
    config = parse_pool(fake_pool(lora=None), "pool.yaml")
    with pytest.raises(ServingError, match=r"add lora: \{max_rank: 16, max_loras: 4\} under models.fake.serve"):
        start_pool(config, calibrate=False, lora={"fake"})
    assert state.read() == []


def test_a_pool_up_server_without_lora_is_an_error_for_a_run_and_restarted_by_pool_up_lora():
    config = parse_pool(fake_pool(), "pool.yaml")
    up = start_pool(config, detached=True, calibrate=False)  # itas pool up
    (first,) = up.started + up.reused
    assert first["owner"] is None and first["lora"] is None
    with pytest.raises(ServingError) as e:
        start_pool(config, calibrate=False, lora={"fake"})
    message = str(e.value)
    assert "\n" not in message and f"port {first['port']}" in message and "started by itas pool up" in message
    assert "itas pool down, then itas pool up --lora" in message
    assert [r["id"] for r in state.read()] == [first["id"]], "not stopped: it is not this command's"
    # a run that does not need LoRA uses it as it is
    plain = start_pool(config, calibrate=False)
    assert [r["id"] for r in plain.reused] == [first["id"]] and plain.started == []
    plain.stop()
    again = start_pool(config, detached=True, calibrate=False, lora={"fake"})  # itas pool up --lora
    (second,) = again.started + again.reused
    assert second["id"] != first["id"] and second["lora"] == {"max_rank": 16, "max_loras": 4}
    assert not state.alive(first["pid"], first["pid_start"])
    assert lora_of(second["url"])["runtime"] is True
    # now a run that needs LoRA uses the pool-up server
    run = start_pool(config, calibrate=False, lora={"fake"})
    assert [r["id"] for r in run.reused] == [second["id"]] and run.started == []
    run.stop()
    assert [r["id"] for r in state.read()] == [second["id"]]


def test_an_orphan_without_lora_is_restarted_with_it():
    config = parse_pool(fake_pool(), "pool.yaml")
    first = start_pool(config, calibrate=False)
    (rec,) = first.started
    with state.locked() as records:  # its owner died (a killed search)
        records[0]["owner"] = {"pid": 2 ** 22 + 12345, "start": "1"}
    second = start_pool(config, calibrate=False, lora={"fake"})
    try:
        (new,) = second.started
        assert new["id"] != rec["id"] and new["lora"] and not state.alive(rec["pid"], rec["pid_start"])
        assert lora_of(second.config["fake"].endpoints[0].url)["runtime"] is True
    finally:
        second.stop()
    assert state.read() == []


def test_a_server_this_process_uses_without_lora_is_not_restarted_under_it():
    config = parse_pool(fake_pool(), "pool.yaml")
    first = start_pool(config, calibrate=False)
    try:
        with pytest.raises(ServingError, match="in use by this process"):
            start_pool(config, calibrate=False, lora={"fake"})
        assert len(state.read()) == 1
    finally:
        first.stop()


def test_pool_up_lora_and_status_from_the_command_line(tmp_path, isolated_state):
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(fake_pool()))
    env = {**os.environ, "ITAS_STATE_DIR": str(isolated_state), "COLUMNS": "250"}

    def itas(*args):
        return subprocess.run([sys.executable, "-m", "itas", *args, "--pool", str(path)], capture_output=True,
                              text=True, env=env, cwd=REPO)

    up = itas("pool", "up", "--lora")
    assert up.returncode == 0, up.stderr
    (rec,) = state.read()
    assert rec["owner"] is None and rec["lora"] == {"max_rank": 16, "max_loras": 4}
    from itas.pool.serving import pool_status

    (status,) = pool_status(parse_pool(fake_pool(), "p"))
    assert status.answers and "LoRA on (rank <= 16)" in status.detail
    assert "LoRA" in itas("pool", "status").stdout
    assert itas("pool", "down").returncode == 0
    assert state.read() == []
