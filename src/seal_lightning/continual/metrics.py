"""Continual-learning metrics of a sequential self-edit experiment (the SEAL paper's forgetting study).

An accuracy matrix `acc` has shape (N+1, N): row 0 is the model before any edit, row i the model after
the i-th edit of the stream; column j is the accuracy on the questions of the j-th passage in stream
order, so row j+1 is "right after its own edit". Each function reads only the cells it needs, so the
paper's matrix, whose not-yet-seen cells are left at 0, works as well as ours, where every cell is filled.
"""

from __future__ import annotations

import numpy as np

from seal_lightning.errors import DataError


def check_matrix(acc: np.ndarray) -> np.ndarray:
    """`acc` as a float array, or a DataError when it is not (N+1, N) with N >= 2 (forgetting needs two)."""
    acc = np.asarray(acc, dtype=float)
    if acc.ndim != 2 or acc.shape[1] < 2 or acc.shape[0] != acc.shape[1] + 1:
        raise DataError(f"an accuracy matrix must have shape (N+1, N) with N >= 2, got {acc.shape}")
    return acc


def average_accuracy(acc: np.ndarray) -> float:
    """Mean accuracy over all passages at the end of the stream."""
    return float(check_matrix(acc)[-1].mean())


def forgetting(acc: np.ndarray) -> np.ndarray:
    """Per passage but the last: best accuracy after its own edit and before the end, minus the final one.

    Chaudhry et al. (2018); the last passage has no step between its edit and the end, hence N-1 values.
    Not clamped at 0: a passage that gains at the end shows it as negative forgetting.
    """
    acc = check_matrix(acc)
    n = acc.shape[1]
    return np.array([acc[j + 1 : n, j].max() - acc[n, j] for j in range(n - 1)])


def backward_transfer(acc: np.ndarray) -> float:
    """Mean change from right after a passage's edit to the end (Lopez-Paz & Ranzato); negative = forgetting."""
    acc = check_matrix(acc)
    n = acc.shape[1]
    columns = np.arange(n - 1)
    return float((acc[n, columns] - acc[columns + 1, columns]).mean())


def plasticity(acc: np.ndarray) -> np.ndarray:
    """Accuracy on each passage right after its own edit: how well an edit is learned at all."""
    acc = check_matrix(acc)
    columns = np.arange(acc.shape[1])
    return acc[columns + 1, columns]


def retention(acc: np.ndarray, column: int = 0) -> np.ndarray:
    """Accuracy on one passage from its own edit to the end of the stream."""
    acc = check_matrix(acc)
    return acc[column + 1 :, column]


def per_passage(acc: np.ndarray) -> dict[str, np.ndarray]:
    """Each summary metric's values per stream position, before they are averaged: what an interval over
    passages resamples. `summarize` is their means."""
    acc = check_matrix(acc)
    n = acc.shape[1]
    columns = np.arange(n - 1)
    forgot = forgetting(acc)
    learned = plasticity(acc)
    return {
        "average_accuracy": acc[-1],
        "forgetting": forgot,
        "forgetting_first": forgot[:1],
        "bwt": acc[n, columns] - acc[columns + 1, columns],
        "plasticity": learned,
        "plasticity_first": learned[:1],
        "initial_accuracy": acc[0],
    }


def summarize(acc: np.ndarray) -> dict[str, float]:
    """The scalar metrics of one sequence; `initial_accuracy` is what the untouched model already knew."""
    return {key: float(values.mean()) for key, values in per_passage(acc).items()}


def _stacked(matrices: list[np.ndarray]) -> np.ndarray:
    """The sequences' matrices as one (sequences, N+1, N) array, or a DataError naming what is wrong."""
    if not matrices:
        raise DataError("no accuracy matrices to aggregate")
    checked = [check_matrix(acc) for acc in matrices]
    shapes = sorted({acc.shape for acc in checked})
    if len(shapes) > 1:
        raise DataError(f"accuracy matrices of different shapes cannot be aggregated: {shapes}")
    return np.stack(checked)


def aggregate(matrices: list[np.ndarray]) -> dict:
    """Mean and population std over sequences, in the layout of the paper's forgetting file."""
    stacked = _stacked(matrices)
    return {
        "mean_over_sequences": stacked.mean(axis=0).tolist(),
        "std_over_sequences": stacked.std(axis=0).tolist(),
        "n_sequences": len(stacked),
        "n_datapoints": stacked.shape[2],
    }


def summary_over_sequences(matrices: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """(mean, population std) over sequences of each `summarize` metric, so the spread is reported too."""
    summaries = [summarize(acc) for acc in _stacked(matrices)]
    values = {key: [summary[key] for summary in summaries] for key in summaries[0]}
    return {key: (float(np.mean(column)), float(np.std(column))) for key, column in values.items()}


def per_passage_over_sequences(matrices: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each metric as an (orders, positions) array: the cells a nested bootstrap resamples."""
    cells = [per_passage(acc) for acc in _stacked(matrices)]
    return {key: np.stack([cell[key] for cell in cells]) for key in cells[0]}
