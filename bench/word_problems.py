"""The one-step word problems `make bench-table` records its table on (``bench/data/word-problems.jsonl``).

Generated here, seeded, not taken from any dataset: "Tom has 4 pencils. Tom gets 6 more pencils. How many
pencils does Tom have now?" (half additions, half subtractions, numbers under 30). They are chosen because the
default pool's small models get some of them right (SmolLM2 about one in eight with one sample, more with a
vote), so that architectures differ in accuracy and a search has something to find; on GSM8K nearly every
architecture of the space scores 0 with these models. ``word-problems.yaml`` beside the data asks for the bare
number and scores it numerically.

96 problems: ``make bench``'s table is recorded on the first 32, a second table of the same space on all 96
(``bench/record_table.py``; what each shows: ``bench/results/search-efficiency.md``).

    python bench/word_problems.py      # writes the JSONL again (the same file for the same seed)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PATH = Path(__file__).resolve().parent / "data" / "word-problems.jsonl"
NAMES = ["Sam", "Mia", "Leo", "Ava", "Ben", "Zoe", "Tom", "Ivy", "Max", "Eva", "Jay", "Lily"]
THINGS = ["marbles", "apples", "stickers", "coins", "books", "shells", "pencils", "cards", "stamps", "beads"]


def problems(n: int = 96, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(3, 19), rng.randint(2, 9)
        if i % 2 == 0:
            q, answer = f"{name} has {a} {thing}. {name} gets {b} more {thing}. How many {thing} does {name} have now?", a + b
        else:
            q, answer = (f"{name} has {a + b} {thing}. {name} gives away {b} {thing}. How many {thing} does {name} "
                         f"have now?", a)
        rows.append({"id": f"word-problems/{i}", "question": q, "answer": str(answer)})
    return rows


def write(path: Path = PATH) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in problems()))
    return path


if __name__ == "__main__":
    print(write())
