"""Choosing an architecture under constraints: ``--pick 'cost<=0.002' --pick 'latency<3'``.

A constraint is ``OBJECTIVE OP NUMBER`` with OBJECTIVE one of accuracy, latency (p50 seconds), cost (per
query) or calls (per query) and OP one of <=, <, >=, >, ==. The pick is the evaluated trial of highest accuracy
meeting every constraint; ties go to the cheaper, then the faster, then the earlier trial.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

from itas.errors import InputError

OBJECTIVES = ("accuracy", "latency", "cost", "calls")
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt}
_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_EXAMPLE = "e.g. 'cost<=0.002', 'accuracy>=0.6', 'latency<3', 'calls<=8'"


@dataclass(frozen=True)
class Constraint:
    objective: str
    op: str
    value: float

    def holds(self, trial) -> bool:
        return OPERATORS[self.op](trial.objective(self.objective), self.value)

    def __str__(self) -> str:
        return f"{self.objective}{self.op}{self.value:g}"


def parse_constraint(text: str) -> Constraint:
    """``'cost<=0.002'`` -> Constraint('cost', '<=', 0.002); anything else is an InputError naming the value."""
    m = _PATTERN.match(text)
    if not m:
        raise InputError(f"--pick '{text}': expected OBJECTIVE OP NUMBER with OBJECTIVE one of "
                         f"{', '.join(OBJECTIVES)} and OP one of {', '.join(OPERATORS)} ({_EXAMPLE})")
    name, op, number = m.groups()
    if name.lower() not in OBJECTIVES:
        from itas.config import did_you_mean

        raise InputError(f"--pick '{text}': unknown objective '{name}'{did_you_mean(name.lower(), OBJECTIVES)}")
    return Constraint(objective=name.lower(), op=op, value=float(number))


def pick(trials: Sequence, constraints: Sequence[Constraint]):
    """The trial of highest accuracy meeting every constraint (ties: cheaper, faster, earlier), or None."""
    ok = [t for t in trials if all(c.holds(t) for c in constraints)]
    if not ok:
        return None
    return min(ok, key=lambda t: (-t.accuracy, t.cost, t.latency_p50, t.number))


def nearest_miss(trials: Sequence, constraints: Sequence[Constraint]) -> str:
    """Why nothing was picked, in one phrase: the range each constrained objective took."""
    parts = []
    for c in constraints:
        values = [t.objective(c.objective) for t in trials]
        if values:
            parts.append(f"{c.objective} ranged {min(values):.4g} to {max(values):.4g}")
    return "; ".join(parts)
