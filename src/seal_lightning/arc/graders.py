"""Grading a generated ARC answer: the first grid in it against the gold grid."""

from __future__ import annotations

from seal_lightning.arc.grids import text_to_grid


def grid_match(prediction: str, gold: str) -> float:
    """1.0 when the first grid in the answer is the gold grid, cell for cell."""
    predicted = text_to_grid(prediction)
    return float(predicted is not None and predicted == text_to_grid(gold))


def cell_accuracy(prediction: str, gold: str) -> float:
    """Share of the gold grid's cells the predicted grid has right; 0.0 for a grid of another shape."""
    predicted, expected = text_to_grid(prediction), text_to_grid(gold)
    if (
        predicted is None
        or expected is None
        or len(predicted) != len(expected)
        or len(predicted[0]) != len(expected[0])
    ):
        return 0.0
    cells = [
        p == e for row_p, row_e in zip(predicted, expected, strict=True) for p, e in zip(row_p, row_e, strict=True)
    ]
    return sum(cells) / len(cells)
