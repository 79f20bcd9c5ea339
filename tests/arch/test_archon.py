"""Archon JSON configs (the format of ScalingIntelligence/Archon's configs/) in and out."""

import json
from pathlib import Path

import pytest

from itas.arch.archon import from_archon, to_archon
from itas.arch.spec import load_architecture
from itas.errors import ConfigError
from tests.fakes import make_pool_config

CONFIGS = sorted((Path(__file__).parent / "archon_configs").glob("*.json"))


def archon_models(data):
    layers = [layer["models"] if isinstance(layer, dict) else layer for layer in data["layers"]]
    return sorted({spec["model"] for layer in layers for spec in layer if "model" in spec})


def bijection(data):
    return {name: f"m{i}" for i, name in enumerate(archon_models(data))}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_imports_unchanged_configs_with_a_model_map(path):
    data = json.loads(path.read_text())
    model_map = bijection(data)
    arch, notices = from_archon(data, str(path), model_map=model_map)
    assert arch.name == data["name"]
    arch.check_models(make_pool_config(names=tuple(model_map.values())))
    assert any("model_type" in n for n in notices)
    assert all("no meaning in itas" in n for n in notices)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_export_round_trip_keeps_every_meaningful_key(path):
    data = json.loads(path.read_text())
    model_map = bijection(data)
    arch, _ = from_archon(data, str(path), model_map=model_map)
    exported = to_archon(arch, model_map={v: k for k, v in model_map.items()})
    json.dumps(exported)  # JSON-serialisable
    again, _ = from_archon(exported, "exported.json", model_map=model_map)
    assert again == arch
    layers = [layer["models"] if isinstance(layer, dict) else layer for layer in data["layers"]]
    for li, layer in enumerate(layers):
        for ci, spec in enumerate(layer):
            out = exported["layers"][li][ci]
            cls_ignored = type(arch.layers[li][ci]).archon_ignored
            for key, value in spec.items():
                if key not in cls_ignored:
                    assert out[key] == value, (li, ci, key)
            assert out["model_type"] and "samples" in out and "temperature" in out and "max_tokens" in out


def test_archon_keys_map_onto_ours():
    data = json.loads((Path(__file__).parent / "archon_configs" / "unit_tests_then_verifier.json").read_text())
    arch, notices = from_archon(data, "x.json", model_map={"gpt-4o-2024-05-13": "smollm2"})
    utg, gen, ute, ver = (layer[0] for layer in arch.layers)
    assert utg.n_tests == 5 and gen.samples == 5
    assert (ute.top_k, ute.first_k) == (1, 3) and ver.first_k == 1
    joined = " ".join(notices)
    for key in ("model_type", "remove_unit_tests_from_prompt", "samples", "top_k"):
        assert f"'{key}'" in joined


def test_first_pass_means_first_k_1():
    data = {"name": "x", "layers": [
        [{"type": "unit_test_generator", "model": "a", "unit_test_cap": 2}],
        [{"type": "generator", "model": "a", "samples": 2}],
        [{"type": "unit_test_evaluator", "model": "a", "first_pass": True, "remove_unit_tests_from_prompt": True}]]}
    arch, _ = from_archon(data, "x.json")
    assert arch.layers[2][0].first_k == 1


def test_unknown_keys_and_types_are_errors_with_paths():
    data = {"name": "x", "layers": [[{"type": "generator", "model": "a", "tempreature": 0.7}]]}
    with pytest.raises(ConfigError, match=r"x\.json: layers\[0\]\[0\]\.tempreature: unknown key .*did you mean "
                                          r"'temperature'"):
        from_archon(data, "x.json")
    data = {"name": "x", "layers": [[{"type": "generator", "model": "a"}], [{"type": "fuzer", "model": "a"}]]}
    with pytest.raises(ConfigError, match=r"layers\[1\]\[0\]\.type: unknown component type 'fuzer'; did you mean "
                                          r"'fuser'\?"):
        from_archon(data, "x.json")


def test_unmapped_model_not_in_pool_is_named(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"name": "x", "layers": [[{"type": "generator", "model": "gpt-4o",
                                                           "model_type": "OpenAI_API"}]]}))
    notices = []
    arch = load_architecture(path, report=notices.append)
    assert notices and "model_type" in notices[0]
    with pytest.raises(ConfigError, match=r"layers\[0\]\[0\]\.model: model 'gpt-4o' is not in fake pool"):
        arch.check_models(make_pool_config())
    arch = load_architecture(path, model_map={"gpt-4o": "gemma3"})
    arch.check_models(make_pool_config())
    assert arch.layers[0][0].model == "gemma3"


def test_components_archon_lacks_export_as_custom():
    from itas.arch.spec import parse_architecture

    arch = parse_architecture({"layers": [[{"type": "generator", "model": "smollm2", "samples": 3}],
                                          [{"type": "vote"}]]}, "v.yaml")
    exported = to_archon(arch)
    assert exported["custom"] is True and exported["layers"][1] == [{"type": "vote"}]
    again, notices = from_archon(exported, "v.json")
    assert again == arch
    assert any("'custom'" in n for n in notices)


def test_malformed_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"layers": [')
    with pytest.raises(ConfigError, match="bad.json: malformed JSON at line 1"):
        load_architecture(path)
