"""Invertible augmentations: every augmentation and its inverse give back the original grid (a seeded random
property test over many grids and augmentations), and the seeded augmentation lists."""

from __future__ import annotations

import random

import pytest

from itas.arc.augment import IDENTITY, TRANSFORMS, Augmentation, augmentation_list
from itas.arc.task import Pair
from tests.arc.test_grids import random_grid


def random_augmentation(rng: random.Random) -> Augmentation:
    perm = list(range(1, 10))
    rng.shuffle(perm)
    return Augmentation(dihedral=rng.randrange(8), colours=(0, *perm) if rng.random() < 0.7 else tuple(range(10)),
                        order_seed=rng.choice([None, rng.randrange(1000)]))


def test_every_augmentation_inverts_on_many_random_grids():
    rng = random.Random(2024)
    for _ in range(3000):
        g = random_grid(rng, 12)
        aug = random_augmentation(rng)
        assert aug.invert(aug.apply(g)) == g, aug.name
        assert aug.apply(aug.invert(g)) == g, aug.name


def test_every_listed_augmentation_inverts_and_keeps_background():
    rng = random.Random(7)
    for transforms in TRANSFORMS:
        for key in range(20):
            for aug in augmentation_list(16, seed=3, key=str(key), transforms=transforms):
                g = random_grid(rng)
                assert aug.invert(aug.apply(g)) == g
                assert aug.colours[0] == 0  # the background stays
                zeros = sum(row.count(0) for row in g)
                assert sum(row.count(0) for row in aug.apply(g)) == zeros


def test_augmented_demonstrations_are_the_same_pairs_transformed_and_reordered():
    rng = random.Random(3)
    pairs = tuple(Pair(random_grid(rng), random_grid(rng)) for _ in range(4))
    aug = Augmentation(dihedral=5, colours=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9), order_seed=11)
    out = aug.apply_pairs(pairs)
    assert sorted((aug.invert(p.input), aug.invert(p.output)) for p in out) == sorted((p.input, p.output) for p in pairs)
    assert IDENTITY.apply_pairs(pairs) == pairs


def test_lists_start_with_the_identity_extend_each_other_and_are_seeded():
    a8 = augmentation_list(8, seed=0, key="task-1")
    assert a8[0].is_identity and len(set(a8)) == 8
    assert augmentation_list(4, seed=0, key="task-1") == a8[:4]
    assert augmentation_list(8, seed=0, key="task-1") == a8
    assert augmentation_list(8, seed=1, key="task-1") != a8
    assert augmentation_list(8, seed=0, key="task-2") != a8
    geo = augmentation_list(8, seed=0, key="t", transforms="geometric", reorder=False)
    assert sorted(a.dihedral for a in geo) == list(range(8)) and all(a.colours == tuple(range(10)) for a in geo)
    col = augmentation_list(5, seed=0, key="t", transforms="colours")
    assert all(a.dihedral == 0 for a in col) and len({a.colours for a in col}) == 5
    with pytest.raises(ValueError):
        augmentation_list(2, 0, "t", transforms="rotations")


def test_augmentation_values_are_checked():
    with pytest.raises(ValueError):
        Augmentation(dihedral=8)
    with pytest.raises(ValueError):
        Augmentation(colours=(0, 0, 2, 3, 4, 5, 6, 7, 8, 9))
    assert IDENTITY.name == "identity" and "rotate_90" in Augmentation(dihedral=1).name
