"""The synthetic family: deterministic from a seed, valid ARC format, and the rule holds on every pair."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from itas.arc.grids import as_grid
from itas.arc.synthetic import KINDS, SyntheticOptions, make_task, synthetic_tasks
from itas.arc.task import Task


def test_the_same_seed_gives_the_same_tasks_and_another_seed_others():
    a = synthetic_tasks(SyntheticOptions(seed=5, tasks=16))
    assert a == synthetic_tasks(SyntheticOptions(seed=5, tasks=16))
    b = synthetic_tasks(SyntheticOptions(seed=6, tasks=16))
    assert all(x.train != y.train for x, y in zip(a, b, strict=True))


def test_a_larger_family_starts_with_the_smaller_one():
    assert synthetic_tasks(SyntheticOptions(seed=1, tasks=20))[:8] == synthetic_tasks(SyntheticOptions(seed=1, tasks=8))


def test_tasks_are_valid_arc_json_and_follow_their_rule():
    opts = SyntheticOptions(seed=3, tasks=48, demos=3, tests=4, min_size=2, max_size=7, colours=5)
    kinds = Counter()
    for i in range(opts.tasks):
        task, rule = make_task(i, opts)
        data = json.loads(json.dumps(task.to_json()))  # ARC's JSON layout survives a round trip
        assert set(data) == {"train", "test"} and all(set(p) == {"input", "output"} for p in data["train"] + data["test"])
        assert Task.from_json(task.id, data) == task
        assert len(task.train) == 3 and len(task.test) == 4
        palette = set()
        for p in task.train + task.test:
            assert as_grid(p.input) == p.input and as_grid(p.output) == p.output
            assert 2 <= len(p.input) <= 7 and 2 <= len(p.input[0]) <= 7
            assert rule(p.input) == p.output != p.input
            palette |= {c for row in p.input for c in row if c}
        shown = {c for p in task.train for row in p.input for c in row if c}
        assert palette <= shown, "the demonstrations show every colour the tests use"
        assert len(palette) <= 5
        kind = task.id.rsplit("-", 1)[-1]
        assert kind == KINDS[i % len(KINDS)] == rule.kind
        kinds[kind] += 1
    assert set(kinds) == set(KINDS) and len(set(kinds.values())) == 1


def test_options_are_checked():
    for bad in (dict(kinds=("rotate_45",)), dict(min_size=5, max_size=3), dict(colours=0), dict(tests=0)):
        with pytest.raises(ValueError):
            SyntheticOptions(**bad)
    with pytest.raises(ValueError, match="could not make"):
        make_task(1, SyntheticOptions(min_size=1, max_size=1, kinds=("flip_horizontal",)))
