"""Figures of a forgetting experiment: accuracy-matrix heatmaps and the retention curve of the first passage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless machines: no display, PNG files only

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from seal_lightning.continual.metrics import check_matrix, retention
from seal_lightning.errors import DataError
from seal_lightning.stats import PairedDifference

REFERENCE_LABEL = "paper (Qwen2.5-7B)"


def heatmap(ax: Axes, acc: np.ndarray, title: str, vmin: float, vmax: float) -> AxesImage:
    """Draw an (N+1, N) accuracy matrix with each cell's value; returns the image for a colorbar."""
    acc = check_matrix(acc)
    n = acc.shape[1]
    image = ax.imshow(acc, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n), [f"p{j}" for j in range(n)])
    ax.set_yticks(range(n + 1), ["before", *(f"after {i}" for i in range(1, n + 1))])
    ax.set_xlabel("passage (stream order)")
    ax.set_ylabel("step")
    ax.set_title(title)
    middle = (vmin + vmax) / 2
    for (row, column), value in np.ndenumerate(acc):
        # Dark text on the bright (high) half of viridis, light text on the dark half, so every value reads.
        color = "black" if value > middle else "white"
        ax.text(column, row, f"{value:.2f}", ha="center", va="center", color=color, fontsize=8)
    return image


def _plot_retention(ax: Axes, acc: np.ndarray, label: str, **style: str) -> None:
    """The first passage's accuracy against the number of edits since its own."""
    curve = retention(acc, column=0)
    ax.plot(np.arange(len(curve)), curve, marker="o", label=label, **style)


def _label_retention(ax: Axes) -> None:
    ax.set_xlabel("steps since the edit of passage 0")
    ax.set_ylabel("accuracy on passage 0")
    ax.set_title("retention of passage 0")
    ax.legend()


def _save(fig: Figure, path: str | Path) -> Path:
    """Write the figure as PNG and free it, since a long experiment draws many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=120)
    finally:
        plt.close(fig)
    return path


def save_strategy_figure(path: str | Path, acc: np.ndarray, title: str) -> Path:
    """One strategy: its accuracy matrix beside the retention curve of its first passage."""
    acc = check_matrix(acc)
    n = acc.shape[1]
    fig, (matrix_ax, curve_ax) = plt.subplots(1, 2, figsize=(4 + 0.8 * n, 0.5 * n + 3), layout="constrained")
    image = heatmap(matrix_ax, acc, title, vmin=float(acc.min()), vmax=float(acc.max()))
    fig.colorbar(image, ax=matrix_ax)
    _plot_retention(curve_ax, acc, title)
    _label_retention(curve_ax)
    return _save(fig, path)


def save_comparison_figure(
    path: str | Path, matrices: dict[str, np.ndarray], reference: np.ndarray | None = None
) -> Path:
    """Strategies side by side on one color scale, and their first-passage retention curves on one axis.

    `reference` (e.g. the paper's mean matrix) adds its curve dashed; its scale may differ from ours.
    """
    if not matrices:
        raise DataError("no accuracy matrices to compare")
    checked = {name: check_matrix(acc) for name, acc in matrices.items()}
    vmin = min(float(acc.min()) for acc in checked.values())
    vmax = max(float(acc.max()) for acc in checked.values())
    n = max(acc.shape[1] for acc in checked.values())
    fig = plt.figure(figsize=(max(6.0, (0.8 * n + 1) * len(checked)), 0.5 * n + 7), layout="constrained")
    grid = fig.add_gridspec(2, len(checked), height_ratios=[0.5 * n + 1, 4])
    matrix_axes = [fig.add_subplot(grid[0, i]) for i in range(len(checked))]
    images = [heatmap(ax, acc, name, vmin, vmax) for ax, (name, acc) in zip(matrix_axes, checked.items(), strict=True)]
    fig.colorbar(images[0], ax=matrix_axes)  # one scale for all, so one colorbar
    curve_ax = fig.add_subplot(grid[1, :])
    for name, acc in checked.items():
        _plot_retention(curve_ax, acc, name)
    if reference is not None:
        _plot_retention(curve_ax, reference, REFERENCE_LABEL, linestyle="--", color="gray")
    _label_retention(curve_ax)
    return _save(fig, path)


def save_tradeoff_figure(
    path: str | Path, points: dict[str, tuple[PairedDifference, ...]], target: tuple[float, float]
) -> Path:
    """Forgetting against plasticity, each as a share of naive's in its own setting, one point per strategy
    and setting with its 95% intervals as error bars; the target region (at most target[0] of naive's
    forgetting, at least target[1] of its plasticity) shaded. Naive sits at (1, 1)."""
    fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    most_forgetting = max([1.2, *(forgetting.high for forgetting, _ in points.values())]) * 1.05
    ax.fill_between([0, target[0]], target[1], 10, color="tab:green", alpha=0.12, label="target")
    for label, (forgetting, plasticity) in points.items():
        ax.errorbar(
            forgetting.mean,
            plasticity.mean,
            xerr=[[forgetting.mean - forgetting.low], [forgetting.high - forgetting.mean]],
            yerr=[[plasticity.mean - plasticity.low], [plasticity.high - plasticity.mean]],
            marker="o",
            capsize=3,
            label=label,
        )
    highest = max([1.2, *(plasticity.high for _, plasticity in points.values())]) * 1.05
    ax.set_xlim(0, most_forgetting)
    ax.set_ylim(0, highest)
    ax.set_xlabel("mean forgetting / naive's (lower is better)")
    ax.set_ylabel("plasticity / naive's (higher is better)")
    ax.set_title("forgetting against plasticity, 95% intervals")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
