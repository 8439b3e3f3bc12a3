"""`compare`: the strategies of a continual experiment side by side, read back from MLflow.

Only what `continual` logged is used (metrics and the `matrix.json` artifact of each strategy's
latest finished run), so results from other machines or sessions sharing the store compare too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from seal_lightning.continual import plots
from seal_lightning.continual.config import STRATEGIES
from seal_lightning.continual.experiment import TABLE_COLUMNS, format_summary
from seal_lightning.errors import DataError
from seal_lightning.store import RunStore
from seal_lightning.tracking import LoggedRun, Tracker


def latest_strategy_runs(tracker: Tracker, experiment: str) -> dict[str, LoggedRun]:
    latest: dict[str, LoggedRun] = {}
    for run in tracker.finished_runs(experiment, "continual_strategy"):
        latest.setdefault(run.tags["seal.strategy"], run)
    if not latest:
        raise DataError(f"MLflow experiment {experiment!r} has no finished continual strategy runs")
    return {name: latest[name] for name in sorted(latest, key=_strategy_rank)}


def _strategy_rank(name: str) -> tuple[int, str]:
    """The built-in strategies in their usual order (naive first, as the baseline), then any others."""
    return (STRATEGIES.index(name) if name in STRATEGIES else len(STRATEGIES), name)


def compare(tracker: Tracker, store: RunStore, experiment: str, reference: str | None = None) -> tuple[str, Path]:
    """The printed table and the saved figure (heatmaps side by side, retention curves), also logged."""
    runs = latest_strategy_runs(tracker, experiment)
    summaries = {
        name: {key: (run.metrics[key], run.metrics[f"{key}_std"]) for key, _ in TABLE_COLUMNS}
        for name, run in runs.items()
    }
    seconds = {name: run.metrics["step_seconds"] for name, run in runs.items()}
    matrices = {
        name: np.array(tracker.read_json_artifact(run.run_id, "matrix.json")["mean_over_sequences"])
        for name, run in runs.items()
    }
    reference_matrix = None
    if reference is not None:
        if not Path(reference).is_file():
            raise DataError(f"reference matrix not found: {reference}")
        reference_matrix = np.array(json.loads(Path(reference).read_text())["mean_over_sequences"])
    table = format_summary(summaries, seconds)
    folder = "compare/" + re.sub(r"[^\w.-]", "_", experiment).lstrip(".")  # MLflow allows "/" in names
    store.write_text(f"{folder}/table.txt", table + "\n")
    figure = plots.save_comparison_figure(store.path(f"{folder}/comparison.png"), matrices, reference_matrix)
    with tracker.run(folder, "compare", {"strategies": ",".join(runs)}):
        tracker.set_tags({"seal.kind": "compare"})
        tracker.log_artifact(store.path(f"{folder}/table.txt"))
        tracker.log_artifact(figure)
    return table, figure
