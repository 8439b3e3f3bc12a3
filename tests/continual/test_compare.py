from __future__ import annotations

import pytest

from seal_lightning.continual.compare import compare, format_intervals
from seal_lightning.errors import DataError
from seal_lightning.tracking import Tracker

pytestmark = pytest.mark.slow


def test_compare_reads_back_what_continual_wrote(continual_run):
    config, store, _, results = continual_run
    table, figure = compare(Tracker(config.tracking, store), store, config.tracking.experiment)
    lines = table.split("\n\n")[0].splitlines()  # the mean ± std table; the intervals follow it
    assert [line.split()[0] for line in lines[1:]] == [r.strategy for r in results]
    for result, line in zip(results, lines[1:], strict=True):
        mean, _ = result.summary["average_accuracy"]
        assert f"{mean:+.3f}" in line
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert store.path(f"compare/{config.tracking.experiment}/table.txt").read_text().strip() == table


def test_compare_names_a_missing_experiment(continual_run):
    config, store, _, _ = continual_run
    with pytest.raises(DataError, match="no MLflow experiment named 'nope'"):
        compare(Tracker(config.tracking, store), store, "nope")


def matrix(forget: float, learn: float) -> list[list[float]]:
    """A 3-passage stream: each edit teaches `learn`, and each later edit takes `forget` off earlier ones."""
    rows = [[0.0, 0.0, 0.0]]
    for step in range(3):
        row = [max(0.0, learn - forget * (step - j)) if j <= step else 0.0 for j in range(3)]
        rows.append(row)
    return rows


def artifact(forget: float, learn: float, orders: list[list[str]] | None) -> dict:
    # Four orders whose passages differ a little, so the intervals have width.
    return {
        "per_sequence": [matrix(forget + 0.01 * i, learn - 0.01 * i) for i in range(4)],
        "orders": orders,
    }


def test_intervals_and_paired_differences_from_naive():
    orders = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"], ["a", "c", "b"]]
    text = format_intervals(
        {
            "naive": artifact(0.3, 0.8, orders),
            "replay": artifact(0.1, 0.8, orders),
            "ewc": artifact(0.1, 0.8, [*orders[1:], orders[0]]),
            "lwf": artifact(0.1, 0.8, None),
        },
        resamples=2000,
    )
    lines = text.splitlines()
    assert lines[0].startswith("95% intervals: two-level bootstrap over 4 orders and their passages")
    naive_row = next(line for line in lines if line.startswith("naive"))
    assert naive_row.split()[1] == "+0.472"  # forgetting: 2f on the first passage, f on the second; f = 0.315
    differences = lines[lines.index(next(line for line in lines if line.startswith("difference from naive"))) :]
    replay = next(line for line in differences if line.startswith("replay"))
    forgetting_cell = replay.split("]")[0]
    assert "-" in forgetting_cell and replay.split("]")[1].startswith("*")  # forgets less, and the interval says so
    assert "not paired" in next(line for line in differences if line.startswith("ewc"))
    assert "not paired" in next(line for line in differences if line.startswith("lwf"))
