"""The hierarchical vote of augmented inference (as in Akyürek et al., "The Surprising Effectiveness of
Test-Time Training for Abstract Reasoning", 2024).

Answers come in groups, one group per augmentation (already mapped back to the original frame; None where a
sample had no answer). First, within each group, the ``within`` most frequent answers are kept (ties: the one
seen first in the group). Then, across groups, an answer's votes are the number of groups that kept it; the
answers with the most votes win, ties broken by the number of samples that gave the answer in all groups,
then by first appearance (group order, then sample order). The top ``keep`` answers are returned with their
votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Ranked(Generic[K]):
    answer: K
    votes: int  # groups that kept it
    samples: int  # samples that gave it, over all groups
    first: tuple[int, int]  # (group, sample) where it first appeared


def hierarchical_vote(groups: Sequence[Sequence[K | None]], *, within: int = 3, keep: int = 2) -> list[Ranked[K]]:
    """The top ``keep`` answers of the two-level vote (fewer if fewer answers exist; empty if none)."""
    votes: Counter = Counter()
    samples: Counter = Counter()
    first: dict = {}
    for gi, group in enumerate(groups):
        counts: Counter = Counter()
        seen: dict = {}
        for si, answer in enumerate(group):
            if answer is None:
                continue
            counts[answer] += 1
            seen.setdefault(answer, si)
            first.setdefault(answer, (gi, si))
        samples.update(counts)
        kept = sorted(counts, key=lambda a: (-counts[a], seen[a]))[:within]
        votes.update(kept)
    ranked = sorted(votes, key=lambda a: (-votes[a], -samples[a], first[a]))
    return [Ranked(a, votes[a], samples[a], first[a]) for a in ranked[:keep]]
