import pytest
from hypothesis import given
from hypothesis import strategies as st

from seal_lightning.arc.grids import MAX_SIZE, as_grid, grid_to_text, text_to_grid
from seal_lightning.errors import DataError


@st.composite
def grids(draw, max_side=MAX_SIZE):
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    cell = st.integers(0, 9)
    return tuple(tuple(draw(st.lists(cell, min_size=cols, max_size=cols))) for _ in range(rows))


@given(grids())
def test_grid_text_grid_round_trip(grid):
    assert text_to_grid(grid_to_text(grid)) == grid


@given(grids())
def test_text_grid_text_round_trip_and_one_char_per_cell(grid):
    text = grid_to_text(grid)
    assert grid_to_text(text_to_grid(text)) == text
    assert len(text) == len(grid) * (len(grid[0]) + 1) - 1


def test_format_is_one_digit_per_cell_one_line_per_row():
    assert grid_to_text(((0, 1, 2), (3, 4, 0))) == "012\n340"


# Prose without line breaks of any kind (str.splitlines also breaks at \r, \x1c, \u2028 ...).
PROSE = st.text(st.characters(exclude_categories=["Cc", "Zl", "Zp"]))


@given(grids(max_side=10), PROSE, st.text())
def test_grid_is_found_in_noisy_model_output(grid, before, after):
    text = f"Here is the output grid:\n{before}:\n  {grid_to_text(grid)}  \nDone{after}"
    assert text_to_grid(text) == grid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```\n12\n34\n```\nand later\n99", ((1, 2), (3, 4))),
        ("  7  ", ((7,),)),
        ("12\n\n34", ((1, 2),)),
        ("no grid here", None),
        ("", None),
        ("12\n345", None),
        ("1 2\n3 4", None),
        ("²³\n¹⁰", None),
        ("١٢", None),
        ("1" * (MAX_SIZE + 1), None),
        ("1\n" * (MAX_SIZE + 1), None),
    ],
)
def test_text_to_grid_examples(text, expected):
    assert text_to_grid(text) == expected


@given(st.text())
def test_text_to_grid_never_raises(text):
    grid = text_to_grid(text)
    assert grid is None or as_grid([list(row) for row in grid], "parsed") == grid


@given(grids())
def test_as_grid_accepts_valid_json_grids(grid):
    assert as_grid([list(row) for row in grid], "x") == grid


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12", "expected a list of rows, got str"),
        (None, "expected a list of rows, got NoneType"),
        ([], "has 0 rows"),
        ([[1]] * 31, "has 31 rows"),
        ([[]], "row 0 has 0 cells"),
        ([[1] * 31], "row 0 has 31 cells"),
        ([[1, 2, 3], [1, 2]], "row 1 has 2 cells, row 0 has 3"),
        ([[1], 2], "row 1 is not a list but int"),
        ([[1, 10]], "row 0, column 1: 10 is not a colour 0-9"),
        ([[1, -1]], "column 1: -1 is not"),
        ([[True]], "row 0, column 0: True is not"),
        ([[1.0]], "1.0 is not"),
        ([["1"]], "'1' is not"),
    ],
)
def test_as_grid_errors_name_where_and_why(value, message):
    with pytest.raises(DataError) as info:
        as_grid(value, "f.json: task t: train[0].input")
    assert str(info.value).startswith("f.json: task t: train[0].input: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
