"""ARC grids: validation of JSON grids, and the compact text the model reads and writes.

A grid is written one line per row and one digit (colour 0-9) per cell, without spaces, rows joined
by "\\n" and no trailing newline; the 2x3 grid [[0, 1, 2], [3, 4, 0]] is "012\\n340". The built-in
tokenizer gives every digit and every "\\n" a token of its own, so a grid costs one token per cell
(and per row break), and the model cannot merge cells into multi-digit tokens.
"""

from __future__ import annotations

from seal_lightning.errors import DataError

# Tuples, not lists: grids are hashable, so predictions for the same test input can be voted on.
Grid = tuple[tuple[int, ...], ...]

# ARC's limit on rows and columns.
MAX_SIZE = 30
DIGITS = frozenset("0123456789")


def as_grid(value: object, where: str) -> Grid:
    """Validate a grid read from JSON, or raise DataError naming `where` and the first bad row or cell."""
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list of rows, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_SIZE:
        raise DataError(f"{where}: has {len(value)} rows, expected 1 to {MAX_SIZE}")
    rows = []
    for r, row in enumerate(value):
        if not isinstance(row, list):
            raise DataError(f"{where}: row {r} is not a list but {type(row).__name__}")
        if r == 0 and not 1 <= len(row) <= MAX_SIZE:
            raise DataError(f"{where}: row 0 has {len(row)} cells, expected 1 to {MAX_SIZE}")
        if len(row) != len(value[0]):
            raise DataError(f"{where}: row {r} has {len(row)} cells, row 0 has {len(value[0])}")
        for c, cell in enumerate(row):
            # bool is an int subclass, but `true` in a grid is a malformed file, not colour 1.
            if type(cell) is not int or not 0 <= cell <= 9:
                raise DataError(f"{where}: row {r}, column {c}: {cell!r:.40} is not a colour 0-9")
        rows.append(tuple(row))
    return tuple(rows)


def grid_to_text(grid: Grid) -> str:
    return "\n".join("".join(str(cell) for cell in row) for row in grid)


def text_to_grid(text: str) -> Grid | None:
    """The first block of consecutive all-digit lines in a model's output, or None when there is no
    such block or it is ragged or too large. Never raises: the text is whatever the model wrote."""
    block: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line and DIGITS.issuperset(line):
            block.append(line)
        elif block:
            break
    if not block or len(block) > MAX_SIZE or len(block[0]) > MAX_SIZE:
        return None
    if any(len(line) != len(block[0]) for line in block):
        return None
    return tuple(tuple(int(char) for char in line) for line in block)
