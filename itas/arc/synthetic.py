"""A seeded family of synthetic grid tasks in ARC's format, simple enough that a 135M model can learn one from
its demonstrations at test time, so the effect of test-time training can be measured with the default pool.

Each task has one hidden rule:

| kind | rule |
|---|---|
| colour_permutation | the colours 1-9 are permuted (0, the background, stays) |
| flip_horizontal, flip_vertical | a mirror image |
| rotate_90, rotate_180, rotate_270 | a rotation (counter-clockwise) |
| transpose | rows become columns |
| composition | a rotation or reflection followed by a colour permutation |

Task ``i`` of seed ``s`` depends only on (s, i, the generation options), so a larger family starts with the
tasks of a smaller one. Its kind is ``kinds[i % len(kinds)]``. The grids of a task use a palette of a few
colours on a background of 0; the demonstrations together show every colour of the palette (so a colour
permutation is learnable from them), and every output differs from its input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from itas.arc.grids import DIHEDRAL_NAMES, IDENTITY_COLOURS, Grid, dihedral, recolour
from itas.arc.task import Pair, Task

KINDS = ("colour_permutation", "flip_horizontal", "flip_vertical", "rotate_90", "rotate_180", "rotate_270",
         "transpose", "composition")


@dataclass(frozen=True)
class SyntheticOptions:
    seed: int = 0
    tasks: int = 40
    demos: int = 3
    tests: int = 2
    min_size: int = 3
    max_size: int = 6
    colours: int = 4  # colours in a task's palette, besides the background
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self):
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"unknown synthetic task kind(s) {unknown}; allowed: {', '.join(KINDS)}")
        if not 1 <= self.min_size <= self.max_size <= 30:
            raise ValueError("sizes must satisfy 1 <= min_size <= max_size <= 30")
        if not 1 <= self.colours <= 9:
            raise ValueError("colours must be 1-9")
        if self.demos < 1 or self.tests < 1 or self.tasks < 1:
            raise ValueError("tasks, demos and tests must be at least 1")


@dataclass(frozen=True)
class Rule:
    kind: str
    dihedral: int = 0
    colours: tuple[int, ...] = IDENTITY_COLOURS

    def __call__(self, grid: Grid) -> Grid:
        return dihedral(recolour(grid, self.colours), self.dihedral)

    @property
    def description(self) -> str:
        parts = [DIHEDRAL_NAMES[self.dihedral]] if self.dihedral else []
        if self.colours != IDENTITY_COLOURS:
            parts.append("colours " + "".join(str(c) for c in self.colours))
        return " then ".join(parts)


def _rule(kind: str, palette: list[int], rng: random.Random) -> Rule:
    def permutation() -> tuple[int, ...]:
        # a permutation of the palette with no fixed colour (a derangement), other colours unchanged
        while True:
            shuffled = palette[:]
            rng.shuffle(shuffled)
            if len(palette) == 1 or all(a != b for a, b in zip(palette, shuffled, strict=True)):
                break
        mapping = list(IDENTITY_COLOURS)
        for a, b in zip(palette, shuffled, strict=True):
            mapping[a] = b
        return tuple(mapping)

    if kind == "colour_permutation":
        return Rule(kind, colours=permutation())
    if kind == "composition":
        return Rule(kind, dihedral=rng.randrange(1, 8), colours=permutation())
    return Rule(kind, dihedral=DIHEDRAL_NAMES.index(kind))


def _grid(rng: random.Random, opts: SyntheticOptions, palette: list[int]) -> Grid:
    h, w = rng.randint(opts.min_size, opts.max_size), rng.randint(opts.min_size, opts.max_size)
    density = rng.uniform(0.3, 0.7)
    return tuple(tuple(rng.choice(palette) if rng.random() < density else 0 for _ in range(w)) for _ in range(h))


def make_task(index: int, opts: SyntheticOptions) -> tuple[Task, Rule]:
    """Task ``index`` of the family (and its hidden rule)."""
    rng = random.Random(f"itas-arc-synthetic:{opts.seed}:{index}:{opts.min_size}:{opts.max_size}:{opts.colours}")
    kind = opts.kinds[index % len(opts.kinds)]
    palette = sorted(rng.sample(range(1, 10), opts.colours))
    rule = _rule(kind, palette, rng)
    tries = 0
    for _ in range(100):
        pairs: list[Pair] = []
        while len(pairs) < opts.demos + opts.tests and tries < 20_000:
            tries += 1
            g = _grid(rng, opts, palette)
            out = rule(g)
            if out != g and all(p.input != g for p in pairs):
                pairs.append(Pair(g, out))
        if len(pairs) < opts.demos + opts.tests:
            break
        train, test = pairs[:opts.demos], pairs[opts.demos:]
        shown = {c for p in train for row in p.input for c in row}
        if set(palette) <= shown:
            name = f"synthetic-{opts.seed}-{index:04d}-{kind}"
            return Task(name, tuple(train), tuple(test)), rule
    raise ValueError(f"could not make synthetic task {index} ({kind}): no set of distinct grids that the rule "
                     f"changes and whose demonstrations show every colour (use larger grids or fewer colours)")


def synthetic_tasks(opts: SyntheticOptions) -> list[Task]:
    return [make_task(i, opts)[0] for i in range(opts.tasks)]
