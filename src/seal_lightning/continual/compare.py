"""`compare`: the strategies of a continual experiment side by side, read back from MLflow.

Only what `continual` logged is used (metrics and the `matrix.json` artifact of each strategy's
latest finished run), so results from other machines or sessions sharing the store compare too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from seal_lightning.continual import metrics, plots
from seal_lightning.continual.config import STRATEGIES
from seal_lightning.continual.experiment import TABLE_COLUMNS, format_summary
from seal_lightning.errors import DataError
from seal_lightning.stats import nested_bootstrap
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


def compare(
    tracker: Tracker, store: RunStore, experiment: str, reference: str | None = None, resamples: int = 10000
) -> tuple[str, Path]:
    """The printed tables (means ± std over orders; 95% intervals and differences from naive) and the saved
    figure (heatmaps side by side, retention curves), also logged."""
    runs = latest_strategy_runs(tracker, experiment)
    summaries = {
        name: {key: (run.metrics[key], run.metrics[f"{key}_std"]) for key, _ in TABLE_COLUMNS}
        for name, run in runs.items()
    }
    seconds = {name: run.metrics["step_seconds"] for name, run in runs.items()}
    artifacts = {name: tracker.read_json_artifact(run.run_id, "matrix.json") for name, run in runs.items()}
    matrices = {name: np.array(artifact["mean_over_sequences"]) for name, artifact in artifacts.items()}
    reference_matrix = None
    if reference is not None:
        if not Path(reference).is_file():
            raise DataError(f"reference matrix not found: {reference}")
        reference_matrix = np.array(json.loads(Path(reference).read_text())["mean_over_sequences"])
    table = format_summary(summaries, seconds) + "\n\n" + format_intervals(artifacts, resamples)
    folder = "compare/" + re.sub(r"[^\w.-]", "_", experiment).lstrip(".")  # MLflow allows "/" in names
    store.write_text(f"{folder}/table.txt", table + "\n")
    figure = plots.save_comparison_figure(store.path(f"{folder}/comparison.png"), matrices, reference_matrix)
    with tracker.run(folder, "compare", {"strategies": ",".join(runs)}):
        tracker.set_tags({"seal.kind": "compare"})
        tracker.log_artifact(store.path(f"{folder}/table.txt"))
        tracker.log_artifact(figure)
    return table, figure


# The metrics given with intervals, and their column labels.
INTERVAL_COLUMNS = (("forgetting", "forgetting"), ("plasticity", "plasticity"), ("average_accuracy", "avg acc"),
                    ("bwt", "BWT"))  # fmt: skip
BASELINE = "naive"


def format_intervals(artifacts: dict[str, dict], resamples: int) -> str:
    """Each strategy's metrics with 95% intervals, and each one's difference from naive paired by order and
    stream position (the same passage), both from a two-level bootstrap over orders and passages. A strategy
    run on other orders than naive's (or logged before orders were recorded) is not paired."""
    cells = {
        name: metrics.per_passage_over_sequences([np.array(m) for m in artifact["per_sequence"]])
        for name, artifact in artifacts.items()
    }
    orders = {name: artifact.get("orders") for name, artifact in artifacts.items()}
    counts = sorted({len(artifact["per_sequence"]) for artifact in artifacts.values()})
    header = f"{'':<12}" + "".join(f"{label:>26}" for _, label in INTERVAL_COLUMNS)
    lines = [
        f"95% intervals: two-level bootstrap over {'/'.join(map(str, counts))} orders and their passages "
        f"({resamples} resamples)",
        header,
    ]
    for name, cell in cells.items():
        row = [nested_bootstrap(cell[key], resamples) for key, _ in INTERVAL_COLUMNS]
        lines.append(f"{name:<12}" + "".join(f"{value!s:>26}" for value in row))
    if BASELINE not in cells:
        return "\n".join(lines)
    lines += ["", f"difference from {BASELINE}, paired by order and passage (* the interval excludes 0)", header]
    for name, cell in cells.items():
        if name == BASELINE:
            continue
        if orders[name] is None or orders[name] != orders[BASELINE]:
            lines.append(f"{name:<12} not paired: its orders are not {BASELINE}'s (or were not recorded)")
            continue
        row = [nested_bootstrap(cell[key] - cells[BASELINE][key], resamples) for key, _ in INTERVAL_COLUMNS]
        marked = [f"{value}{'*' if value.excludes_zero else ' '}" for value in row]
        lines.append(f"{name:<12}" + "".join(f"{cell_text:>26}" for cell_text in marked))
    return "\n".join(lines)
