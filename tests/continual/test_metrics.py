import json
from pathlib import Path

import numpy as np
import pytest

from seal_lightning.continual.metrics import (
    aggregate,
    average_accuracy,
    backward_transfer,
    forgetting,
    per_passage,
    per_passage_over_sequences,
    plasticity,
    retention,
    summarize,
    summary_over_sequences,
)
from seal_lightning.errors import DataError

PAPER_MATRIX = Path(__file__).resolve().parents[3] / "shared" / "data" / "reference" / "paper_forgetting_matrix.json"

# N = 3, columns p0 p1 p2; p0 peaks at 0.8 after step 2 then drops, p1 is learned then lost.
FORGETFUL = np.array(
    [
        [0.1, 0.2, 0.3],  # before
        [0.6, 0.2, 0.3],  # after 1 (edit of p0)
        [0.8, 0.7, 0.3],  # after 2 (edit of p1)
        [0.4, 0.5, 0.9],  # after 3 (edit of p2)
    ]
)

# No column goes down once its passage is edited, and none moves at the last step: nothing is forgotten.
MONOTONE = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.7, 0.6, 0.0],
        [0.7, 0.6, 0.5],
    ]
)


def test_average_accuracy_is_the_mean_of_the_last_row():
    # (0.4 + 0.5 + 0.9) / 3 = 0.6
    assert average_accuracy(FORGETFUL) == pytest.approx(0.6)


def test_forgetting_is_best_after_the_edit_minus_final():
    # p0: max(0.6, 0.8) - 0.4 = 0.4; p1: max(0.7) - 0.5 = 0.2; p2 has no step after its edit.
    np.testing.assert_allclose(forgetting(FORGETFUL), [0.4, 0.2])


def test_backward_transfer_is_negative_when_final_is_below_just_after():
    # p0: 0.4 - 0.6 = -0.2; p1: 0.5 - 0.7 = -0.2; mean -0.2
    assert backward_transfer(FORGETFUL) == pytest.approx(-0.2)


def test_no_forgetting_for_monotone_columns():
    # p0: max(0.5, 0.7) - 0.7 = 0; p1: max(0.6) - 0.6 = 0
    np.testing.assert_allclose(forgetting(MONOTONE), [0.0, 0.0], atol=1e-12)
    # p0: 0.7 - 0.5 = 0.2; p1: 0.6 - 0.6 = 0; mean 0.1
    assert backward_transfer(MONOTONE) == pytest.approx(0.1)
    assert backward_transfer(MONOTONE) >= 0


def test_forgetting_is_negative_when_the_last_edit_helps():
    """Not clamped at 0, as in Chaudhry et al.: a passage that gains at the end shows the gain."""
    acc = MONOTONE.copy()
    acc[3, 0] = 0.8
    # p0: max(0.5, 0.7) - 0.8 = -0.1
    assert forgetting(acc)[0] == pytest.approx(-0.1)


def test_plasticity_is_the_diagonal_below_row_zero():
    np.testing.assert_allclose(plasticity(FORGETFUL), [0.6, 0.7, 0.9])


def test_retention_follows_a_passage_from_its_own_edit():
    np.testing.assert_allclose(retention(FORGETFUL), [0.6, 0.8, 0.4])
    np.testing.assert_allclose(retention(FORGETFUL, column=1), [0.7, 0.5])


def test_summarize():
    summary = summarize(FORGETFUL)
    assert summary == pytest.approx(
        {
            "average_accuracy": 0.6,
            "forgetting": 0.3,  # mean(0.4, 0.2)
            "forgetting_first": 0.4,
            "bwt": -0.2,
            "plasticity": 0.7333333333,  # (0.6 + 0.7 + 0.9) / 3
            "plasticity_first": 0.6,
            "initial_accuracy": 0.2,  # (0.1 + 0.2 + 0.3) / 3
        }
    )


def test_aggregate_mean_and_population_std():
    result = aggregate([FORGETFUL, MONOTONE])
    # cell [1, 0]: 0.6 and 0.5 -> mean 0.55, population std 0.05
    assert result["mean_over_sequences"][1][0] == pytest.approx(0.55)
    assert result["std_over_sequences"][1][0] == pytest.approx(0.05)
    np.testing.assert_allclose(result["mean_over_sequences"], (FORGETFUL + MONOTONE) / 2)
    np.testing.assert_allclose(result["std_over_sequences"], np.abs(FORGETFUL - MONOTONE) / 2)
    assert result["n_sequences"] == 2
    assert result["n_datapoints"] == 3
    json.dumps(result)  # the paper's file layout: plain lists and ints


def test_summary_over_sequences():
    summary = summary_over_sequences([FORGETFUL, MONOTONE])
    assert set(summary) == set(summarize(FORGETFUL))
    # bwt: -0.2 and 0.1 -> mean -0.05, population std 0.15
    assert summary["bwt"] == pytest.approx((-0.05, 0.15))
    # forgetting: 0.3 and 0.0 -> mean 0.15, std 0.15
    assert summary["forgetting"] == pytest.approx((0.15, 0.15))


@pytest.mark.parametrize(
    "shape",
    [(3, 3), (4, 2), (2, 1), (3,), (2, 3, 2)],
    ids=["square", "too-many-rows", "single-passage", "one-dimensional", "three-dimensional"],
)
def test_wrong_shape_is_a_data_error(shape):
    with pytest.raises(DataError, match=r"\(N\+1, N\)"):
        summarize(np.zeros(shape))


def test_matrices_of_different_shapes_are_a_data_error():
    with pytest.raises(DataError, match="different shapes"):
        aggregate([FORGETFUL, np.zeros((5, 4))])
    with pytest.raises(DataError, match="no accuracy matrices"):
        summary_over_sequences([])


def test_the_papers_matrix():
    if not PAPER_MATRIX.is_file():
        pytest.skip(f"{PAPER_MATRIX} is absent (the shared data folder is not beside this checkout)")
    acc = np.array(json.loads(PAPER_MATRIX.read_text())["mean_over_sequences"])
    assert acc.shape == (9, 8)
    assert forgetting(acc)[0] == pytest.approx(acc[1:8, 0].max() - acc[8, 0])
    summary = summarize(acc)
    assert summary["plasticity_first"] == pytest.approx(0.3825)
    assert summary["forgetting_first"] == pytest.approx(acc[1:8, 0].max() - acc[8, 0])


def test_per_passage_values_average_to_the_summary():
    cells = per_passage(FORGETFUL)
    assert {key: float(values.mean()) for key, values in cells.items()} == summarize(FORGETFUL)
    np.testing.assert_allclose(cells["forgetting"], [0.8 - 0.4, 0.7 - 0.5])
    stacked = per_passage_over_sequences([FORGETFUL, MONOTONE])
    assert stacked["plasticity"].shape == (2, 3) and stacked["forgetting_first"].shape == (2, 1)
