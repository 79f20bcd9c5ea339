"""Grids: text form, reading grids out of model output, two attempts, and the geometry of the square."""

from __future__ import annotations

import random

import pytest

from itas.arc.grids import (
    DIHEDRAL,
    GridError,
    as_grid,
    dihedral,
    dihedral_inverse,
    flip_lr,
    parse_attempts,
    parse_grid,
    render_attempts,
    render_grid,
    rot90,
    text_tokens,
    transpose,
)

G = ((0, 1, 2), (3, 4, 5))


def random_grid(rng: random.Random, max_side: int = 8) -> tuple:
    h, w = rng.randint(1, max_side), rng.randint(1, max_side)
    return tuple(tuple(rng.randrange(10) for _ in range(w)) for _ in range(h))


def test_render_and_parse_round_trip_on_many_random_grids():
    rng = random.Random(0)
    for _ in range(500):
        g = random_grid(rng, 30)
        assert parse_grid(render_grid(g)) == g
        assert parse_grid(f"Here it is:\n```\n{render_grid(g)}\n```\nDone.") == g


def test_as_grid_validates():
    assert as_grid([[1, 2], [3, 4]]) == ((1, 2), (3, 4))
    for bad in ([], [[]], [[1, 2], [3]], [[10]], [[-1]], [[0] * 31]):
        with pytest.raises(GridError):
            as_grid(bad)


@pytest.mark.parametrize("text", [
    "012\n345",
    "The output grid:\n012\n345\n\nI applied the rule.",
    "0 1 2\n3 4 5",
    "[0, 1, 2],\n[3, 4, 5]",
    "[[0, 1, 2], [3, 4, 5]]",
    "012\n345\n6789\n0000",  # a wider row ends the grid: the model did not stop
    "012\n345\n\n999\n999",  # a blank line ends it too
])
def test_the_first_grid_is_read_from_model_output(text):
    assert parse_grid(text) == G


@pytest.mark.parametrize("text", ["", "I do not know.", "12 34\n56 78", "[[1, 2], [3]]", None])
def test_no_grid_is_none(text):
    assert parse_grid(text) is None


def test_two_attempts_are_written_and_read_back():
    other = ((7, 7), (7, 7))
    text = render_attempts([G, other])
    assert parse_attempts(text) == (G, other)
    assert parse_attempts(render_attempts([G])) == (G, None)
    # a second grid without the marker is not a second attempt
    assert parse_attempts("012\n345\n\n77\n77") == (G, None)
    with pytest.raises(ValueError):
        render_attempts([])


def test_the_dihedral_group_and_its_inverses_on_many_random_grids():
    rng = random.Random(1)
    for _ in range(300):
        g = random_grid(rng)
        for i in range(8):
            assert dihedral(dihedral(g, i), dihedral_inverse(i)) == g, DIHEDRAL[i][0]
        assert {dihedral(g, i) for i in range(8)} >= {g, rot90(g), flip_lr(g), transpose(g)}
        assert rot90(rot90(rot90(rot90(g)))) == g


def test_rotation_is_counter_clockwise_like_numpy():
    assert rot90(((1, 2), (3, 4))) == ((2, 4), (1, 3))


def test_text_tokens_count_one_per_digit_and_line_break():
    assert text_tokens("012\n345") == 7
    assert text_tokens("abc") == 1
