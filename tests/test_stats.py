import math

import numpy as np
import pytest

from seal_lightning.stats import (
    crossed_bootstrap,
    mean_stderr,
    nested_bootstrap,
    nested_bootstrap_ratio,
    paired_bootstrap,
)


def test_mean_and_standard_error():
    mean, stderr = mean_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert stderr == pytest.approx(math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3 / 4))
    assert math.isnan(mean_stderr([1.0])[1])


def test_paired_bootstrap_against_a_hand_computed_case():
    """Differences (0, 0, 3): a resample's mean is the number k of 3s drawn, k ~ Binomial(3, 1/3), so
    P(mean 0) = 8/27, P(1) = 12/27, P(2) = 6/27, P(3) = 1/27 = 3.7%. The 2.5th percentile is 0, and since
    P(mean <= 2) = 26/27 = 96.3% < 97.5%, the 97.5th is 3: the interval is [0, 3] around the mean 1."""
    difference = paired_bootstrap([1.0, 5.0, 7.0], [1.0, 5.0, 4.0], resamples=20000, seed=1)
    assert (difference.mean, difference.low, difference.high) == (1.0, 0.0, 3.0)
    assert difference.n == 3 and not difference.excludes_zero


def test_paired_bootstrap_pairs_items_rather_than_pooling_them():
    """Large spread between items, a constant +0.1 within each pair: the paired interval is exactly +0.1."""
    before = [-9.0, -1.0, -5.0, -3.0]
    difference = paired_bootstrap([b + 0.1 for b in before], before)
    assert difference.low == pytest.approx(0.1) and difference.high == pytest.approx(0.1)
    assert difference.excludes_zero and str(difference) == "+0.100 [+0.100, +0.100]"


def test_paired_bootstrap_needs_pairs():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no paired items"):
        paired_bootstrap([], [])


def test_nested_bootstrap_resamples_both_the_groups_and_their_items():
    """Orders that agree but passages that differ, and the reverse: either spread gives a wide interval."""
    same_orders = nested_bootstrap(np.array([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]]))
    same_passages = nested_bootstrap(np.array([[0.0, 0.0], [2.0, 2.0], [2.0, 2.0]]))
    for result in (same_orders, same_passages):
        assert result.low < result.mean < result.high and result.high - result.low > 0.5
    constant = nested_bootstrap(np.full((4, 3), 0.25))
    assert (constant.mean, constant.low, constant.high) == (0.25, 0.25, 0.25)
    assert nested_bootstrap(np.array([[0.1, 0.3], [0.2, 0.2]])).excludes_zero


def test_crossed_bootstrap_resamples_a_shared_item_as_one():
    """Three seeds that agree on two passages worth 0 and 3: one draw of passages serves every seed, so a
    resample's mean is 0, 1.5 or 3 with probabilities 1/4, 1/2, 1/4 and the interval is [0, 3]. Drawing the
    passages within each seed instead averages six draws and narrows the interval."""
    seeds_agree = np.array([[0.0, 3.0], [0.0, 3.0], [0.0, 3.0]])
    crossed = crossed_bootstrap(seeds_agree, resamples=20000, seed=1)
    assert (crossed.mean, crossed.low, crossed.high) == (1.5, 0.0, 3.0)
    nested = nested_bootstrap(seeds_agree, resamples=20000, seed=1)
    assert crossed.low < nested.low and nested.high < crossed.high
    seeds_differ = crossed_bootstrap(np.array([[0.0, 0.0], [2.0, 2.0]]), resamples=20000, seed=1)
    assert (seeds_differ.mean, seeds_differ.low, seeds_differ.high) == (1.0, 0.0, 2.0)
    assert crossed_bootstrap(np.array([[0.1, 0.3], [0.2, 0.2]])).excludes_zero
    with pytest.raises(ValueError, match="non-empty"):
        crossed_bootstrap(np.zeros((0, 3)))


def test_nested_bootstrap_needs_a_table():
    with pytest.raises(ValueError, match="non-empty"):
        nested_bootstrap(np.array([1.0, 2.0]))


def test_nested_bootstrap_ratio_pairs_the_cells_of_both_tables():
    baseline = np.array([[0.2, 0.4], [0.1, 0.3], [0.3, 0.5]])
    half = nested_bootstrap_ratio(baseline / 2, baseline)
    # The same cells are drawn for both tables, so an exact half stays an exact half in every resample.
    assert (half.mean, half.low, half.high) == pytest.approx((0.5, 0.5, 0.5))
    noisy = nested_bootstrap_ratio(np.array([[0.1, 0.3], [0.05, 0.2], [0.2, 0.2]]), baseline)
    assert noisy.low < noisy.mean < noisy.high
    with pytest.raises(ValueError, match="differ in shape"):
        nested_bootstrap_ratio(baseline, baseline[:2])
