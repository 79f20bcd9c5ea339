"""Pool YAML validation: every error names the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from itas.errors import ConfigError
from itas.pool.config import load_pool, parse_pool

OK = {"model": "m-1", "endpoints": ["http://127.0.0.1:8000/v1"]}


def err(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_pool(data, "pool.yaml")
    return str(e.value)


def test_the_embedded_default_pool_has_two_managed_models():
    pool = load_pool(None)
    assert pool.names == ["smollm2", "gemma3"]
    assert all(m.managed and "{port}" in " ".join(m.serve.args) for m in pool.models)
    assert not pool.priced and pool.cost_unit == "tokens"


def test_a_full_pool_parses_into_frozen_values(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text("""
models:
  big:
    model: meta-llama/Llama-3.1-8B-Instruct
    context_length: 8192
    max_concurrency: 32
    endpoints: [{url: "http://10.0.0.1:8000/v1"}, {url: "http://10.0.0.2:8000/v1", max_concurrency: 8}]
    price: {input: 0.2, output: 0.6}
  hosted:
    model: gpt-4o-mini
    endpoints: ["https://api.openai.com/v1"]
    api_key_env: OPENAI_API_KEY
    price: {input: 0.15, output: 0.6}
""")
    pool = load_pool(path)
    big = pool["big"]
    assert [e.max_concurrency for e in big.endpoints] == [32, 8]
    assert pool.priced and pool.cost("big", 1_000_000, 1_000_000) == pytest.approx(0.8)
    with pytest.raises(AttributeError):
        big.model = "x"  # frozen


def test_unknown_key_suggests_the_right_one():
    msg = err({"models": {"a": {**OK, "endpoint": []}}})
    assert "pool.yaml" in msg and "models.a.endpoint" in msg and "did you mean 'endpoints'" in msg


def test_prices_must_be_all_or_none():
    msg = err({"models": {"a": {**OK, "price": {"input": 1, "output": 2}}, "b": OK}})
    assert "models.b.price" in msg and "every model has a price or none" in msg


def test_a_model_needs_endpoints_or_serve():
    assert "needs 'endpoints'" in err({"models": {"a": {"model": "x"}}})


def test_endpoints_and_serve_are_exclusive():
    msg = err({"models": {"a": {**OK, "serve": {"args": ["x", "{port}"]}}}})
    assert "not both" in msg


def test_serve_args_need_a_port_placeholder():
    msg = err({"models": {"a": {"model": "x", "serve": {"args": ["python", "-m", "server"]}}}})
    assert "models.a.serve.args" in msg and "{port}" in msg


def test_bad_url_and_bad_types_are_named():
    assert "models.a.endpoints[0].url" in err({"models": {"a": {"model": "x", "endpoints": ["localhost:8000"]}}})
    assert "expected an integer" in err({"models": {"a": {**OK, "max_concurrency": "many"}}})
    assert "at least 1" in err({"models": {"a": {**OK, "max_concurrency": 0}}})


def test_api_key_env_must_be_a_variable_name_not_a_key():
    msg = err({"models": {"a": {**OK, "api_key_env": "sk-abc123-xyz"}}})
    assert "NAME of an environment variable" in msg


def test_empty_and_malformed_files(tmp_path):
    assert "no models" in err({"models": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_pool(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_pool(tmp_path / "missing.yaml")
