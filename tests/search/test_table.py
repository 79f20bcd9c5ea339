"""The recorded table: every architecture of a space enumerated once, and a damaged last line survived."""
import json
from pathlib import Path

import pytest

from itas.arch.spec import parse_architecture
from itas.errors import DataError
from itas.search.space import load_space, parse_space
from itas.search.table import enumerate_space, load_table

REPO = Path(__file__).resolve().parents[2]


def test_the_bench_space_enumerates_432_distinct_architectures_with_conditional_choices():
    space = load_space(REPO / "bench" / "table_space.yaml")
    items = list(enumerate_space(space))
    fps = {parse_architecture(a, "t").fingerprint() for _, a in items}
    assert len(items) == len(fps) == 432
    # conditional parameters appear only under their parent
    assert all(("ranker.top_k" in p) == p["ranker.enabled"] for p, _ in items)
    assert all(("generate.gemma3.samples" in p) == (p["generate.count"] == 2) for p, _ in items)


def test_enumeration_matches_a_hand_count():
    space = parse_space({"stages": [{"generate": {"models": ["a", "b"], "count": [1, 2], "samples": [1, 3]}},
                                     {"fuse": {"layers": [0, 1, 2], "model": ["a", "b"]}}]}, "s.yaml")
    # generators: count 1 -> 2 options, count 2 -> 4; fusion: 0 layers -> 1, 1 -> 2, 2 -> 4
    assert len(list(enumerate_space(space))) == (2 + 4) * (1 + 2 + 4)


def _write(path: Path, rows: list[str]) -> None:
    header = {"kind": "header", "space": "stages: [generate: {models: [a]}]", "question_ids": ["q1", "q2"]}
    path.write_text("\n".join([json.dumps(header), *rows]))


def test_a_damaged_last_line_is_dropped_but_a_damaged_middle_line_is_an_error(tmp_path):
    row = json.dumps({"kind": "arch", "fingerprint": "f1", "status": "evaluated",
                      "questions": [[1, 1, 10, 5, 0.5, 15], [0, 1, 10, 5, 1.5, 15]]})
    path = tmp_path / "t.jsonl"
    _write(path, [row, '{"kind": "arch", "finger'])
    table = load_table(path)
    assert list(table.rows) == ["f1"]
    assert table.metrics("f1") == (0.5, 1.0, 15.0)
    assert table.metrics("f1", 1) == (1.0, 0.5, 15.0)
    _write(path, ['{"kind": "arch", "finger', row])
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_table(path)
