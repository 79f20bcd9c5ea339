"""The components an architecture is built from, one module each, registered by their YAML ``type``.

| type | calls per query (c = incoming candidates) |
|---|---|
| generator | samples |
| fuser | 1 (samples, if given) |
| ranker | 1 |
| critic | 1 |
| verifier | 2c |
| unit_test_generator | 1 |
| unit_test_evaluator | c when judged by a model, 0 when the tests are executed (code benchmarks) |
| vote | 0 |
| best_of_n | c |
| augment_vote | augmentations x samples |
| ttt | 1 (the training) + samples, x augmentations when it votes |
"""

from itas.components import (  # noqa: F401  (importing registers them)
    augment_vote,
    best_of_n,
    critic,
    fuser,
    generator,
    ranker,
    ttt,
    unit_test_evaluator,
    unit_test_generator,
    verifier,
    vote,
)
from itas.components.base import Component, EstimateEnv, Flow, ModelUsage, Step
from itas.components.registry import component_class, component_types, register, unregister

__all__ = ["Component", "EstimateEnv", "Flow", "ModelUsage", "Step", "component_class", "component_types",
           "register", "unregister"]
