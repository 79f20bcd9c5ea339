"""Search space YAML: validation with named keys, conditional suggestions, and the shipped spaces."""

from __future__ import annotations

import optuna
import pytest

from itas.arch.spec import parse_architecture
from itas.errors import ConfigError
from itas.paths import shipped_dir
from itas.search.space import load_space, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
GEN = {"generate": {"models": ["a", "b"], "count": [1, 2], "samples": [1, 4]}}


def err(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_space(data, "space.yaml")
    return str(e.value)


def sample(space, n=60, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        arch = space.suggest(t)
        out.append((t.params, arch))
        study.tell(t, 0.0)
    return out


def test_unknown_stage_and_keys_are_named_with_suggestions():
    assert "unknown stage 'fuser'; did you mean 'fuse'" in err({"stages": [GEN, {"fuser": {"model": "a"}}]})
    msg = err({"stages": [GEN, {"ranker": {"model": "a", "topk": 2}}]})
    assert "stages[1].ranker.topk" in msg and "did you mean 'top_k'" in msg
    assert "missing required key 'model'" in err({"stages": [GEN, {"critic": {}}]})


def test_structure_errors():
    assert "first stage must be 'generate'" in err({"stages": [{"vote": {}}, GEN]})
    assert "expected at least 1" in err({"stages": []})
    assert "between 1 and 2" in err({"stages": [{"generate": {"models": ["a", "b"], "count": [3]}}]})
    assert "allowed: best, worst" in err({"stages": [GEN, {"best_of_n": {"model": "a", "mode": "median"}}]})
    assert "expected an integer" in err({"stages": [{"generate": {"models": ["a"], "samples": ["many"]}}]})
    assert "constraints.max_calls" in err({"stages": [GEN], "constraints": {"max_calls": 3}})


def test_models_are_checked_against_the_pool():
    space = parse_space({"stages": [GEN, {"critic": {"model": "c"}}]}, "space.yaml")
    with pytest.raises(ConfigError, match="model 'c' is not in the pool"):
        space.check_models(["a", "b"])


def test_conditional_parameters_are_suggested_only_under_their_parent():
    space = parse_space({"stages": [GEN, {"critic": {"optional": True, "model": ["a", "b"]}},
                                    {"fuse": {"layers": [0, 1, 2], "model": ["a", "b"], "fusers": [1, 2]}}]},
                        "space.yaml")
    seen_layers = set()
    for params, arch in sample(space, 120):
        if params["generate.count"] == 1:
            assert "generate.b.samples" not in params
        else:
            assert "generate.b.samples" in params
        assert ("critic.model" in params) == params["critic.enabled"]
        n = params["fuse.layers"]
        seen_layers.add(n)
        for i in (1, 2):
            assert (f"fuse.{i}.model" in params) == (i <= n)
        parse_architecture(arch, "x")  # every suggestion is a valid architecture
    assert seen_layers == {0, 1, 2}


def test_archon_fusion_layers_are_each_preceded_by_critic_and_ranker():
    space = load_space("archon")
    for params, arch in sample(space, 40):
        types = [[c["type"] for c in layer] for layer in arch["layers"]]
        n = params["fuse.layers"]
        assert types[0] == ["generator"] * params["generate.count"]
        expected = [t for i in range(1, n + 1) for t in (["critic"], ["ranker"], ["fuser"] * params[f"fuse.{i}.fusers"])]
        assert types[1:1 + 3 * n] == expected
        assert types[-1] == ["fuser"]  # the final fuser


@pytest.mark.parametrize("name", sorted(p.stem for p in shipped_dir("search_spaces").glob("*.yaml")))
def test_every_shipped_space_builds_valid_architectures(name):
    space = load_space(name)
    space.check_models(["smollm2", "gemma3"])
    fps = {parse_architecture(a, name).fingerprint() for _, a in sample(space, 80)}
    assert len(fps) > 20


def test_spaces_beyond_archon_use_selectors_and_per_layer_models():
    types = {c["type"] for _, a in sample(load_space("beyond-archon"), 150) for layer in a["layers"] for c in layer}
    assert {"vote", "best_of_n", "verifier", "unit_test_generator", "unit_test_evaluator", "fuser"} <= types


def test_unknown_shipped_space_name_is_a_clear_error():
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        load_space("defualt")
