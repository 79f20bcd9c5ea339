"""Invertible augmentations of a grid task: one of the eight rotations and reflections of the square, a
permutation of the colours 1-9 (0, the background, stays), and a reordering of the demonstrations.

Applied to a task, an augmentation transforms every grid the same way, so the augmented task has the same rule
seen in another frame; a prediction made in that frame is mapped back with ``invert``. The demonstrations'
order does not change what the answer is, so it needs no inverse.

``augmentation_list(n, seed, key, transforms)`` gives n augmentations for one task: the identity first, then
augmentations drawn with a seed from (``seed``, ``key``); a longer list starts with a shorter one, so
architectures that differ only in n share their first samples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from itas.arc.grids import (
    DIHEDRAL_NAMES,
    IDENTITY_COLOURS,
    Grid,
    dihedral,
    dihedral_inverse,
    inverse_colours,
    recolour,
)
from itas.arc.task import Pair

TRANSFORMS = ("geometric", "colours", "all")


@dataclass(frozen=True)
class Augmentation:
    dihedral: int = 0  # index into grids.DIHEDRAL
    colours: tuple[int, ...] = IDENTITY_COLOURS  # colour c becomes colours[c]; colours[0] == 0
    order_seed: int | None = None  # demonstrations reordered by a permutation drawn from this seed

    def __post_init__(self):
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral index {self.dihedral} is not 0-7")
        if sorted(self.colours) != list(range(10)):
            raise ValueError(f"{self.colours} is not a permutation of the colours 0-9")

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colours == IDENTITY_COLOURS and self.order_seed is None

    @property
    def name(self) -> str:
        parts = [DIHEDRAL_NAMES[self.dihedral]] if self.dihedral else []
        if self.colours != IDENTITY_COLOURS:
            parts.append("colours " + "".join(str(c) for c in self.colours))
        if self.order_seed is not None:
            parts.append("reordered")
        return " + ".join(parts) or "identity"

    def apply(self, grid: Grid) -> Grid:
        return dihedral(recolour(grid, self.colours), self.dihedral)

    def invert(self, grid: Grid) -> Grid:
        return recolour(dihedral(grid, dihedral_inverse(self.dihedral)), inverse_colours(self.colours))

    def apply_pairs(self, pairs: Sequence[Pair]) -> tuple[Pair, ...]:
        """The demonstrations transformed and (if the augmentation reorders) reordered."""
        out = [Pair(self.apply(p.input), self.apply(p.output)) for p in pairs]
        if self.order_seed is not None and len(out) > 1:
            order = random.Random(self.order_seed).sample(range(len(out)), len(out))
            out = [out[i] for i in order]
        return tuple(out)


IDENTITY = Augmentation()


def augmentation_list(n: int, seed: int, key: str, transforms: str = "all", *,
                      reorder: bool = True) -> list[Augmentation]:
    """``n`` augmentations, the identity first. ``transforms``: ``geometric`` (rotations and reflections),
    ``colours`` (colour permutations) or ``all`` (both at once); ``reorder`` also shuffles the demonstrations.
    The seven non-identity rotations and reflections are used in a seeded order before any repeats."""
    if transforms not in TRANSFORMS:
        raise ValueError(f"transforms must be one of {', '.join(TRANSFORMS)}, got {transforms!r}")
    rng = random.Random(f"itas-arc-augment:{seed}:{key}")
    geometric = list(range(1, 8))
    rng.shuffle(geometric)
    out = [IDENTITY]
    i = 0
    while len(out) < n:
        # every draw is made whatever ``transforms`` is, so lists stay aligned across settings
        d = geometric[i % 7]
        perm = list(range(1, 10))
        rng.shuffle(perm)
        order_seed = rng.randrange(2 ** 31)
        i += 1
        aug = Augmentation(
            dihedral=d if transforms in ("geometric", "all") else 0,
            colours=(0, *perm) if transforms in ("colours", "all") else IDENTITY_COLOURS,
            order_seed=order_seed if reorder else None)
        if aug not in out:
            out.append(aug)
        elif i > 1000:  # no new distinct augmentation can be found (cannot happen for n <= 8)
            raise ValueError(f"cannot draw {n} distinct augmentations")
    return out[:n]
