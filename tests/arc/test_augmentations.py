import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seal_lightning.arc.augmentations import (
    FAMILIES,
    FLIP_LR,
    ROTATE90,
    SCALE2,
    TILE_LR,
    compose,
    fits,
    transforms_for,
)

ALL = [transform for group in FAMILIES.values() for transform in group]


@st.composite
def grids(draw, max_side=15):
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    return tuple(tuple(draw(st.lists(st.integers(0, 9), min_size=cols, max_size=cols))) for _ in range(rows))


@pytest.mark.parametrize("transform", ALL, ids=lambda t: t.name)
@given(grid=grids())
def test_inverse_undoes_forward(transform, grid):
    out = transform(grid)
    assert fits(out)
    assert all(isinstance(row, tuple) and len(row) == len(out[0]) for row in out)
    assert transform.inverse(out) == grid


# No symmetry at all: every basic transform moves some cell.
ASYMMETRIC = ((1, 2, 3), (4, 5, 6))


@pytest.mark.parametrize("transform", FAMILIES["basic"], ids=lambda t: t.name)
def test_basic_transforms_change_an_asymmetric_grid(transform):
    assert transform(ASYMMETRIC) != ASYMMETRIC


def test_basic_transforms_are_the_seven_non_identity_symmetries():
    square = ((1, 2), (3, 4))
    assert len({t(square) for t in FAMILIES["basic"]} | {square}) == 8


def test_known_outputs():
    assert ROTATE90(ASYMMETRIC) == ((4, 1), (5, 2), (6, 3))
    assert SCALE2(((1, 2),)) == ((1, 1, 2, 2), (1, 1, 2, 2))
    assert TILE_LR(((1, 2),)) == ((1, 2, 1, 2),)
    assert FAMILIES["repeat"][2](((1,), (2,))) == ((1, 1), (2, 2), (1, 1), (2, 2))


def test_compose_applies_in_order_and_inverts_in_reverse():
    chained = compose(ROTATE90, SCALE2)
    assert chained.name == "rotate90+scale2"
    assert chained(ASYMMETRIC) == SCALE2(ROTATE90(ASYMMETRIC))
    # Order matters for the inverse: rotate90's inverse before unscaling would give a different grid.
    assert chained.inverse(chained(ASYMMETRIC)) == ASYMMETRIC
    flipped = compose(ROTATE90, FLIP_LR)
    assert flipped.inverse(flipped(ASYMMETRIC)) == ASYMMETRIC
    assert ROTATE90.inverse(FLIP_LR.inverse(flipped(ASYMMETRIC))) == ASYMMETRIC
    assert FLIP_LR.inverse(ROTATE90.inverse(flipped(ASYMMETRIC))) != ASYMMETRIC


def test_transforms_pickle():
    grid = ((1, 2), (3, 4))
    for transform in ALL:
        assert pickle.loads(pickle.dumps(transform))(grid) == transform(grid)


def test_transforms_for_keeps_family_order_without_duplicates():
    assert list(FAMILIES) == ["basic", "size", "chain", "repeat"]
    assert transforms_for(["repeat", "basic", "repeat"]) == [*FAMILIES["basic"], *FAMILIES["repeat"]]
    assert transforms_for([]) == []
    names = [t.name for t in transforms_for(list(FAMILIES))]
    assert len(names) == len(set(names)) == len(ALL)
    with pytest.raises(ValueError, match="unknown augmentation families"):
        transforms_for(["basic", "colour"])


def test_fits():
    assert fits(((0,) * 30,) * 30)
    assert not fits(SCALE2(((0,) * 16,)))
    assert not fits(((0,),) * 31)
