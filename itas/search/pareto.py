"""The Pareto front: a pure function over points and directions."""

from __future__ import annotations

from collections.abc import Sequence

MAXIMIZE, MINIMIZE = "maximize", "minimize"
DIRECTIONS = (MAXIMIZE, MINIMIZE, MINIMIZE)  # accuracy, latency, cost
OBJECTIVES = ("accuracy", "latency", "cost")


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str] = DIRECTIONS) -> bool:
    """``a`` is at least as good as ``b`` in every objective and strictly better in one."""
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if d == MAXIMIZE:
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str] = DIRECTIONS) -> list[int]:
    """Indices of the non-dominated points, in input order. Equal points are all kept (none dominates another)."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)]
