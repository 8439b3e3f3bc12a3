"""`compare`: the strategies of continual experiments side by side, read back from MLflow.

Only what `continual` logged is used (metrics and the `matrix.json` artifact of each strategy's
latest finished run), so results from other machines or sessions sharing the store compare too.
Several experiments (settings: streams, protocols) compare at once; the trade-off figure holds one
point per strategy and setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seal_lightning.continual import metrics, plots
from seal_lightning.continual.config import STRATEGIES
from seal_lightning.continual.experiment import TABLE_COLUMNS, format_summary, name_width
from seal_lightning.errors import DataError, not_found
from seal_lightning.stats import PairedDifference, nested_bootstrap, nested_bootstrap_ratio
from seal_lightning.store import RunStore
from seal_lightning.tracking import LoggedRun, Tracker

# The metrics given with intervals, and their column labels.
INTERVAL_COLUMNS = (("forgetting", "forgetting"), ("plasticity", "plasticity"), ("average_accuracy", "avg acc"),
                    ("bwt", "BWT"))  # fmt: skip
BASELINE = "naive"
# Issue 15's target: at most this share of naive's mean forgetting, at least this share of its plasticity.
FORGETTING_TARGET = 0.5
PLASTICITY_TARGET = 0.9


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
    tracker: Tracker,
    store: RunStore,
    experiments: Sequence[str],
    reference: str | None = None,
    resamples: int = 10000,
) -> tuple[str, list[Path]]:
    """Per experiment: the printed tables (means ± std over orders; 95% intervals, differences from naive
    and the target) and the saved figure (heatmaps side by side, retention curves). Over all of them: the
    trade-off figure (forgetting and plasticity as shares of naive's). All are logged to one run."""
    reference_matrix = None
    if reference is not None:
        if not Path(reference).is_file():
            raise DataError(not_found("reference matrix", Path(reference)))
        reference_matrix = np.array(json.loads(Path(reference).read_text())["mean_over_sequences"])
    texts, figures, points = [], [], {}
    folder = "compare/" + re.sub(r"[^\w.-]", "_", "+".join(experiments)).lstrip(".")  # MLflow allows "/"
    for experiment in experiments:
        runs = latest_strategy_runs(tracker, experiment)
        summaries = {
            name: {key: (run.metrics[key], run.metrics[f"{key}_std"]) for key, _ in TABLE_COLUMNS}
            for name, run in runs.items()
        }
        seconds = {name: run.metrics["step_seconds"] for name, run in runs.items()}
        artifacts = {name: tracker.read_json_artifact(run.run_id, "matrix.json") for name, run in runs.items()}
        shares = shares_of_baseline(artifacts, resamples)
        texts.append(
            (f"== {experiment}\n" if len(experiments) > 1 else "")
            + format_summary(summaries, seconds)
            + "\n\n"
            + format_intervals(artifacts, resamples)
            + ("\n\n" + format_target(shares) if len(shares) > 1 else "")
        )
        if BASELINE in shares:  # (1, 1) in every setting, by definition: drawn once
            points.setdefault(BASELINE, shares[BASELINE])
        points |= {
            f"{name} ({experiment})" if len(experiments) > 1 else name: share
            for name, share in shares.items()
            if name != BASELINE
        }
        matrices = {name: np.array(artifact["mean_over_sequences"]) for name, artifact in artifacts.items()}
        figure = store.path(f"{folder}/comparison{'_' + experiment if len(experiments) > 1 else ''}.png")
        figures.append(plots.save_comparison_figure(figure, matrices, reference_matrix))
    if points:
        tradeoff = (FORGETTING_TARGET, PLASTICITY_TARGET)
        figures.append(plots.save_tradeoff_figure(store.path(f"{folder}/tradeoff.png"), points, tradeoff))
    table = "\n\n".join(texts)
    store.write_text(f"{folder}/table.txt", table + "\n")
    with tracker.run(folder, "compare", {"experiments": ",".join(experiments)}):
        tracker.set_tags({"seal.kind": "compare"})
        for path in [store.path(f"{folder}/table.txt"), *figures]:
            tracker.log_artifact(path)
    return table, figures


def _cells(artifacts: dict[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: metrics.per_passage_over_sequences([np.array(m) for m in artifact["per_sequence"]])
        for name, artifact in artifacts.items()
    }


def _shared_orders(artifacts: dict[str, dict], name: str) -> int:
    """How many of the first orders `name` ran are naive's, recorded (0: its cells do not pair with naive's).
    Orders are drawn from one seeded stream, so a run with more `continual.sequences` extends a shorter one."""
    mine, naive = artifacts[name].get("orders"), artifacts[BASELINE].get("orders")
    shared = 0
    for order, baseline_order in zip(mine or [], naive or [], strict=False):
        if order != baseline_order:
            break
        shared += 1
    return shared


def _paired_cells(
    artifacts: dict[str, dict], cells: dict[str, dict[str, np.ndarray]], name: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """`name`'s cells and naive's on the orders both ran, or None where they share none."""
    shared = _shared_orders(artifacts, name)
    if not shared:
        return None
    return {k: v[:shared] for k, v in cells[name].items()}, {k: v[:shared] for k, v in cells[BASELINE].items()}


def format_intervals(artifacts: dict[str, dict], resamples: int) -> str:
    """Each strategy's metrics with 95% intervals, and each one's difference from naive paired by order and
    stream position (the same passage), both from a two-level bootstrap over orders and passages. A strategy
    run on other orders than naive's (or logged before orders were recorded) is not paired; one that ran
    fewer or more orders than naive is paired on the orders both ran, and its row says how many."""
    cells = _cells(artifacts)
    counts = sorted({len(artifact["per_sequence"]) for artifact in artifacts.values()})
    width = name_width(cells)
    header = f"{'':<{width}}" + "".join(f"{label:>26}" for _, label in INTERVAL_COLUMNS)
    lines = [
        f"95% intervals: two-level bootstrap over {'/'.join(map(str, counts))} orders and their passages "
        f"({resamples} resamples)",
        header,
    ]
    for name, cell in cells.items():
        row = [nested_bootstrap(cell[key], resamples) for key, _ in INTERVAL_COLUMNS]
        lines.append(f"{name:<{width}}" + "".join(f"{value!s:>26}" for value in row))
    if BASELINE not in cells or len(cells) == 1:
        return "\n".join(lines)
    lines += ["", f"difference from {BASELINE}, paired by order and passage (* the interval excludes 0)", header]
    for name, cell in cells.items():
        if name == BASELINE:
            continue
        paired = _paired_cells(artifacts, cells, name)
        if paired is None:
            lines.append(f"{name:<{width}} not paired: its orders are not {BASELINE}'s (or were not recorded)")
            continue
        mine, naive = paired
        row = [nested_bootstrap(mine[key] - naive[key], resamples) for key, _ in INTERVAL_COLUMNS]
        marked = [f"{value}{'*' if value.excludes_zero else ' '}" for value in row]
        shared = len(mine["forgetting"])
        note = (
            f"  on the first {shared} orders"
            if shared < max(len(cell["forgetting"]), len(cells[BASELINE]["forgetting"]))
            else ""
        )
        lines.append(f"{name:<{width}}" + "".join(f"{cell_text:>26}" for cell_text in marked) + note)
    return "\n".join(lines)


def shares_of_baseline(artifacts: dict[str, dict], resamples: int) -> dict[str, tuple[PairedDifference, ...]]:
    """(forgetting, plasticity) of each strategy paired with naive, as shares of naive's, with 95% intervals
    (naive itself is 1, 1). Empty without a naive run."""
    if BASELINE not in artifacts:
        return {}
    cells = _cells(artifacts)
    shares = {}
    for name in cells:
        paired = _paired_cells(artifacts, cells, name)
        if paired is not None:
            mine, naive = paired
            shares[name] = tuple(
                nested_bootstrap_ratio(mine[k], naive[k], resamples) for k in ("forgetting", "plasticity")
            )
    return shares


def format_target(shares: dict[str, tuple[PairedDifference, ...]]) -> str:
    """Whether each strategy reaches the target: reached where both intervals clear it, missed where either
    interval excludes it, undecided otherwise."""
    width = name_width(shares)
    lines = [
        f"target: forgetting at most {FORGETTING_TARGET:.0%} of {BASELINE}'s and plasticity at least "
        f"{PLASTICITY_TARGET:.0%} of it (shares of {BASELINE}'s, paired, 95% intervals)",
        f"{'':<{width}}{'forgetting / naive':>26}{'plasticity / naive':>26}{'target':>12}",
    ]
    for name, (forgetting, plasticity) in shares.items():
        if name == BASELINE:
            continue
        if forgetting.high < FORGETTING_TARGET and plasticity.low > PLASTICITY_TARGET:
            verdict = "reached"
        elif forgetting.low > FORGETTING_TARGET or plasticity.high < PLASTICITY_TARGET:
            verdict = "missed"
        else:
            verdict = "undecided"
        lines.append(f"{name:<{width}}{_share(forgetting):>26}{_share(plasticity):>26}{verdict:>12}")
    return "\n".join(lines)


def _share(value: PairedDifference) -> str:
    return f"{value.mean:.2f} [{value.low:.2f}, {value.high:.2f}]"
