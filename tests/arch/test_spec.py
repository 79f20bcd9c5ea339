"""Architecture YAML: parsing into frozen values, errors with file and key path, shipped examples."""

import dataclasses

import pytest
import yaml

from itas.arch.spec import (
    Architecture,
    load_architecture,
    parse_architecture,
    resolve_architecture,
    shipped_architectures,
)
from itas.components.generator import Generator
from itas.errors import ConfigError, InputError
from tests.fakes import make_pool_config


def parse(text: str) -> Architecture:
    return parse_architecture(yaml.safe_load(text), "arch.yaml")


def test_parses_layers_of_components_into_frozen_values():
    arch = parse("""
name: demo
layers:
  - - {type: generator, model: smollm2, samples: 3, temperature: 0.9}
    - {type: generator, model: gemma3}
  - type: fuser            # a single mapping is a one-component layer
    model: smollm2
""")
    assert arch.name == "demo" and len(arch.layers) == 2
    gen = arch.layers[0][0]
    assert isinstance(gen, Generator) and (gen.samples, gen.temperature, gen.max_tokens) == (3, 0.9, 512)
    assert arch.models == ("gemma3", "smollm2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gen.samples = 4  # type: ignore[misc]
    assert isinstance(arch.layers, tuple) and isinstance(arch.layers[0], tuple)


def test_name_defaults_to_the_file_name():
    assert parse_architecture({"layers": [[{"type": "generator", "model": "a"}]]}, "dir/my-arch.yaml").name == \
        "my-arch"


@pytest.mark.parametrize("text,message", [
    ("layers: [[{type: fuzer, model: a}]]",
     r"arch.yaml: layers\[0\]\[0\]\.type: unknown component type 'fuzer'; did you mean 'fuser'\? Allowed: "
     r"augment_vote, best_of_n, critic"),
    ("layers: [[{type: generator, model: a}], [{type: fuser, model: a, temprature: 1}]]",
     r"layers\[1\]\[0\]\.temprature: unknown key 'temprature'; did you mean 'temperature'\?"),
    ("layers: [[{type: generator, model: a, samples: 0}]]", r"layers\[0\]\[0\]\.samples: 0 is too small"),
    ("layers: [[{type: generator, model: a, samples: two}]]", r"samples: expected an integer, got a string"),
    ("layers: [[{type: generator}]]", r"layers\[0\]\[0\]: a generator needs 'model'"),
    ("layers: [[{model: a}]]", r"layers\[0\]\[0\]: missing required key 'type'"),
    ("layers: []", r"layers: expected at least 1 item"),
    ("layers: [[]]", r"layers\[0\]: expected at least 1 item"),
    ("name: x\nlayer: []", r"\(top level\): unknown key 'layer'|layer: unknown key 'layer'; did you mean 'layers'"),
    ("layers: [[{type: best_of_n, model: a, mode: bestest}]]", r"mode: 'bestest' is not allowed; did you mean 'best'"),
])
def test_errors_name_file_key_path_and_what_is_allowed(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_structure_errors():
    with pytest.raises(ConfigError, match=r"layers\[1\]: a ranker selects among the candidates, so it must be alone"):
        parse("layers: [[{type: generator, model: a}], [{type: ranker, model: a}, {type: fuser, model: a}]]")
    with pytest.raises(ConfigError, match=r"layers\[0\]\[0\]\.type: a vote needs candidates"):
        parse("layers: [[{type: vote}], [{type: generator, model: a}]]")
    with pytest.raises(ConfigError, match=r"layers\[1\]\[0\]\.type: a unit_test_evaluator needs unit tests"):
        parse("layers: [[{type: generator, model: a}], [{type: unit_test_evaluator, model: a}]]")
    with pytest.raises(ConfigError, match=r"layers: the last layer leaves no candidate"):
        parse("layers: [[{type: unit_test_generator, model: a}]]")
    with pytest.raises(ConfigError, match=r"evaluate: judge\) needs 'model'"):
        parse("layers: [[{type: generator, model: a}, {type: unit_test_generator, model: a}], "
              "[{type: unit_test_evaluator, evaluate: judge}]]")


def test_unit_tests_alongside_generators_is_fine():
    arch = parse("layers: [[{type: generator, model: a}, {type: unit_test_generator, model: a}], "
                 "[{type: unit_test_evaluator}]]")
    assert arch.layers[1][0].model is None


def test_models_must_be_in_the_pool_with_key_path():
    arch = parse("layers: [[{type: generator, model: smollm2}], [{type: fuser, model: gemma}]]")
    with pytest.raises(ConfigError, match=r"arch.yaml: layers\[1\]\[0\]\.model: model 'gemma' is not in fake pool; "
                                          r"did you mean 'gemma3'\?"):
        arch.check_models(make_pool_config())


def test_yaml_round_trip_and_fingerprint():
    arch = parse("""
name: x
description: d
layers:
  - [{type: generator, model: smollm2, samples: 2, system: "Be brief."}]
  - [{type: ranker, model: gemma3, top_k: 1}]
""")
    again = parse_architecture(yaml.safe_load(arch.to_yaml()), "again.yaml")
    assert again == arch and again.fingerprint() == arch.fingerprint()
    assert parse_architecture(yaml.safe_load(arch.to_yaml(full=False)), "short.yaml") == arch
    renamed = dataclasses.replace(arch, name="other")
    assert renamed.fingerprint() == arch.fingerprint()
    other = parse("layers: [[{type: generator, model: smollm2, samples: 3}]]")
    assert other.fingerprint() != arch.fingerprint()


def test_identical_components_take_consecutive_sample_ranges():
    arch = parse("""
layers:
  - - {type: generator, model: smollm2, samples: 3}
    - {type: generator, model: smollm2, samples: 3}
    - {type: generator, model: smollm2, samples: 3, temperature: 0.1}
    - {type: generator, model: gemma3, samples: 3}
  - - {type: fuser, model: smollm2}
    - {type: fuser, model: smollm2}
  - - {type: generator, model: smollm2, samples: 3}
""")
    starts = arch.sample_starts()
    assert [starts[(0, i)] for i in range(4)] == [0, 3, 0, 0]
    assert [starts[(1, 0)], starts[(1, 1)]] == [0, 1]
    assert starts[(2, 0)] == 6
    # across architectures the same component starts at the same index (so they share cached samples)
    assert parse("layers: [[{type: generator, model: smollm2, samples: 5}]]").sample_starts()[(0, 0)] == 0


def test_shipped_examples_load_and_use_the_default_pool_names():
    shipped = shipped_architectures()
    assert {"single", "vote5", "archon-rank-critic-fuse", "moa", "code-unit-tests"} <= set(shipped)
    for name in shipped:
        arch = load_architecture(name)
        assert set(arch.models) <= {"smollm2", "gemma3"}
        arch.check_models(make_pool_config())
    assert len(load_architecture("single").layers) == 1
    assert "vote" in [c.type for _, _, c in load_architecture("vote5").components()]


def test_unknown_name_suggests_a_shipped_example(tmp_path):
    with pytest.raises(InputError, match="no architecture file or shipped example named 'vote'; did you mean 'vote5'"):
        resolve_architecture("vote")
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_architecture(tmp_path / "missing.yaml")


def test_model_map_applies_to_yaml_too(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("layers: [[{type: generator, model: big}]]\n")
    assert load_architecture(path, model_map={"big": "smollm2"}).models == ("smollm2",)
