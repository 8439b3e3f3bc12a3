"""Invertible grid transforms for test-time training, in the four families SEAL's ARC tool names.

Training on transformed copies of the demonstrations teaches the same rule seen from other angles;
a prediction made on a transformed test input is mapped back with the inverse before voting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from seal_lightning.arc.grids import MAX_SIZE, Grid


@dataclass(frozen=True)
class Transform:
    name: str
    forward: Callable[[Grid], Grid]
    inverse: Callable[[Grid], Grid]

    def __call__(self, grid: Grid) -> Grid:
        return self.forward(grid)


def rotate90(grid: Grid) -> Grid:
    """Clockwise."""
    return tuple(zip(*reversed(grid), strict=True))


def rotate180(grid: Grid) -> Grid:
    return tuple(tuple(reversed(row)) for row in reversed(grid))


def rotate270(grid: Grid) -> Grid:
    return tuple(reversed(tuple(zip(*grid, strict=True))))


def flip_lr(grid: Grid) -> Grid:
    return tuple(tuple(reversed(row)) for row in grid)


def flip_ud(grid: Grid) -> Grid:
    return tuple(reversed(grid))


def transpose(grid: Grid) -> Grid:
    return tuple(zip(*grid, strict=True))


def anti_transpose(grid: Grid) -> Grid:
    """The mirror along the other diagonal."""
    return rotate180(transpose(grid))


def scale2(grid: Grid) -> Grid:
    """Each cell becomes a 2x2 block."""
    return tuple(tuple(cell for cell in row for _ in range(2)) for row in grid for _ in range(2))


def unscale2(grid: Grid) -> Grid:
    return tuple(row[::2] for row in grid[::2])


def tile_lr(grid: Grid) -> Grid:
    return tuple(row + row for row in grid)


def untile_lr(grid: Grid) -> Grid:
    return tuple(row[: len(row) // 2] for row in grid)


def tile_ud(grid: Grid) -> Grid:
    return grid + grid


def untile_ud(grid: Grid) -> Grid:
    return grid[: len(grid) // 2]


def tile_2x2(grid: Grid) -> Grid:
    return tile_ud(tile_lr(grid))


def untile_2x2(grid: Grid) -> Grid:
    return untile_lr(untile_ud(grid))


def _then(first: Callable[[Grid], Grid], second: Callable[[Grid], Grid], grid: Grid) -> Grid:
    return second(first(grid))


def compose(a: Transform, b: Transform) -> Transform:
    """`a` then `b`; undone by b's inverse then a's. Built from partials, so transforms stay picklable."""
    return Transform(f"{a.name}+{b.name}", partial(_then, a.forward, b.forward), partial(_then, b.inverse, a.inverse))


ROTATE90 = Transform("rotate90", rotate90, rotate270)
ROTATE180 = Transform("rotate180", rotate180, rotate180)
ROTATE270 = Transform("rotate270", rotate270, rotate90)
FLIP_LR = Transform("flip_lr", flip_lr, flip_lr)
FLIP_UD = Transform("flip_ud", flip_ud, flip_ud)
TRANSPOSE = Transform("transpose", transpose, transpose)
ANTI_TRANSPOSE = Transform("anti_transpose", anti_transpose, anti_transpose)
SCALE2 = Transform("scale2", scale2, unscale2)
TILE_LR = Transform("tile_lr", tile_lr, untile_lr)
TILE_UD = Transform("tile_ud", tile_ud, untile_ud)
TILE_2X2 = Transform("tile_2x2", tile_2x2, untile_2x2)

FAMILIES: dict[str, tuple[Transform, ...]] = {
    "basic": (ROTATE90, ROTATE180, ROTATE270, FLIP_LR, FLIP_UD, TRANSPOSE, ANTI_TRANSPOSE),
    "size": (SCALE2,),
    # Two basic transforms compose to a third basic one, so every chain pairs a basic with a size or
    # repeat transform.
    "chain": (
        compose(ROTATE90, SCALE2),
        compose(ROTATE270, SCALE2),
        compose(FLIP_LR, SCALE2),
        compose(TRANSPOSE, SCALE2),
        compose(ROTATE180, TILE_2X2),
        compose(FLIP_UD, TILE_LR),
    ),
    "repeat": (TILE_LR, TILE_UD, TILE_2X2),
}


def transforms_for(families: Sequence[str]) -> list[Transform]:
    """The transforms of the named families, in FAMILIES order whatever order they are named in."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown augmentation families {unknown}; known: {', '.join(FAMILIES)}")
    return [transform for name, group in FAMILIES.items() if name in families for transform in group]


def fits(grid: Grid) -> bool:
    """Scaled and tiled grids can exceed ARC's 30x30; examples with such grids are dropped."""
    return 1 <= len(grid) <= MAX_SIZE and 1 <= len(grid[0]) <= MAX_SIZE
