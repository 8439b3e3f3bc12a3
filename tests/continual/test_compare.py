from __future__ import annotations

import pytest

from seal_lightning.continual.compare import compare, format_intervals, format_target, shares_of_baseline
from seal_lightning.errors import DataError
from seal_lightning.tracking import Tracker

pytestmark = pytest.mark.slow


def test_compare_reads_back_what_continual_wrote(continual_run):
    config, store, _, results = continual_run
    table, figures = compare(Tracker(config.tracking, store), store, [config.tracking.experiment])
    lines = table.split("\n\n")[0].splitlines()  # the mean ± std table; the intervals follow it
    assert [line.split()[0] for line in lines[1:]] == [r.strategy for r in results]
    for result, line in zip(results, lines[1:], strict=True):
        mean, _ = result.summary["average_accuracy"]
        assert f"{mean:+.3f}" in line
    assert [figure.name for figure in figures] == ["comparison.png", "tradeoff.png"]
    assert all(figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for figure in figures)
    target = table.split("\n\n")[-1].splitlines()
    assert target[0].startswith("target: forgetting at most 50% of naive's and plasticity at least 90%")
    assert [line.split()[0] for line in target[2:]] == [r.strategy for r in results if r.strategy != "naive"]
    assert store.path(f"compare/{config.tracking.experiment}/table.txt").read_text().strip() == table


def test_compare_names_a_missing_experiment(continual_run):
    config, store, _, _ = continual_run
    with pytest.raises(DataError, match="no MLflow experiment named 'nope'"):
        compare(Tracker(config.tracking, store), store, ["nope"])


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


def test_the_target_is_reached_only_where_both_shares_clear_it():
    orders = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"], ["a", "c", "b"]]
    shares = shares_of_baseline(
        {
            "naive": artifact(0.3, 0.8, orders),
            "replay": artifact(0.1, 0.8, orders),  # a third of naive's forgetting, all of its plasticity
            "ewc": artifact(0.1, 0.4, orders),  # forgets little, but learns half as much
            "lwf": artifact(0.1, 0.8, None),  # not paired: no share
        },
        resamples=2000,
    )
    assert set(shares) == {"naive", "replay", "ewc"}
    forgetting, plasticity = shares["replay"]
    assert forgetting.high < 0.5 and plasticity.low > 0.9
    rows = {line.split()[0]: line for line in format_target(shares).splitlines()[2:]}
    assert rows["replay"].endswith("reached") and rows["ewc"].endswith("missed") and set(rows) == {"replay", "ewc"}


def test_naive_alone_gets_no_difference_section():
    orders = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"], ["a", "c", "b"]]
    text = format_intervals({"naive": artifact(0.3, 0.8, orders)}, resamples=200)
    assert "difference from" not in text and text.splitlines()[-1].startswith("naive")


def test_a_run_on_fewer_of_the_same_orders_is_paired_on_those():
    """More `continual.sequences` extend the same seeded orders: a strategy run on naive's first two orders
    pairs with naive on those two, and its row says so."""
    orders = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"], ["a", "c", "b"]]
    shorter = artifact(0.1, 0.8, orders)
    shorter = {"per_sequence": shorter["per_sequence"][:2], "orders": orders[:2]}
    artifacts = {"naive": artifact(0.3, 0.8, orders), "replay": shorter}
    lines = format_intervals(artifacts, resamples=500).splitlines()
    replay = [line for line in lines if line.startswith("replay")][-1]
    assert replay.endswith("on the first 2 orders") and "not paired" not in replay
    assert set(shares_of_baseline(artifacts, resamples=500)) == {"naive", "replay"}
