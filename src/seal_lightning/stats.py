"""Summaries over items: mean and standard error, and the paired bootstrap interval of a difference.

Every claim that one model, round or row beats another is a paired comparison over the same items
(passages, tasks): the per-item differences are resampled with replacement and the interval is read
off the percentiles of their means. Where items sit in groups (the continual stream's passages in
orders), both levels are resampled (`nested_bootstrap`); where every run scored the same items (seeds of
one setting), runs and items are resampled apart (`crossed_bootstrap`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


@dataclass(frozen=True)
class PairedDifference:
    """Mean of `after - before` over n paired items, with its percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int
    resamples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(
    after: Sequence[float], before: Sequence[float], resamples: int = 10000, seed: int = 0
) -> PairedDifference:
    """The mean paired difference and its 95% interval: resample the items (with replacement) `resamples`
    times, take the mean difference of each resample, and read the 2.5th and 97.5th percentiles."""
    if len(after) != len(before):
        raise ValueError(f"paired samples differ in length: {len(after)} and {len(before)}")
    if not after:
        raise ValueError("no paired items to compare")
    differences = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    low, high = _interval(differences[picks].mean(axis=1))
    return PairedDifference(float(differences.mean()), low, high, len(differences), resamples)


def nested_bootstrap(values: np.ndarray, resamples: int = 10000, seed: int = 0) -> PairedDifference:
    """The mean of a (groups, items) array and its 95% interval from a two-level bootstrap: each resample
    draws the groups (orders) with replacement, then the items (stream positions) within each drawn group,
    so both the orders and the passages vary. For a paired comparison pass the per-cell differences."""
    values = _table(values)
    low, high = _interval(_nested_means(values, resamples, seed))
    return PairedDifference(float(values.mean()), low, high, values.size, resamples)


def crossed_bootstrap(values: np.ndarray, resamples: int = 10000, seed: int = 0) -> PairedDifference:
    """The mean of a (runs, items) array in which every run scored the same items (seeds of one setting on
    one set of passages), with its 95% interval: each resample draws the runs with replacement and, apart,
    the items, one draw for every run. An item's effect is shared by all runs, so it is resampled as one;
    drawing items within each run (`nested_bootstrap`) would average it away and narrow the interval."""
    values = _table(values)
    runs, items = values.shape
    rng = np.random.default_rng(seed)
    picked_runs = rng.integers(0, runs, size=(resamples, runs, 1))
    picked_items = rng.integers(0, items, size=(resamples, 1, items))
    low, high = _interval(values[picked_runs, picked_items].mean(axis=(1, 2)))
    return PairedDifference(float(values.mean()), low, high, values.size, resamples)


def nested_bootstrap_ratio(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int = 10000, seed: int = 0
) -> PairedDifference:
    """mean(numerator) / mean(denominator) for paired (groups, items) arrays, with the 95% interval of the
    same two-level bootstrap applied to both (the same cells drawn for each): a strategy's metric as a
    share of the baseline's, e.g. half of naive's forgetting."""
    numerator, denominator = _table(numerator), _table(denominator)
    if numerator.shape != denominator.shape:
        raise ValueError(f"paired tables differ in shape: {numerator.shape} and {denominator.shape}")
    ratios = _nested_means(numerator, resamples, seed) / _nested_means(denominator, resamples, seed)
    low, high = _interval(ratios)
    return PairedDifference(float(numerator.mean() / denominator.mean()), low, high, numerator.size, resamples)


def _table(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a two-level bootstrap takes a non-empty (groups, items) array, got shape {values.shape}")
    return values


def _nested_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of each two-level resample; the draws depend only on the shape and the seed."""
    groups, items = values.shape
    rng = np.random.default_rng(seed)
    picked_groups = rng.integers(0, groups, size=(resamples, groups, 1))
    picked_items = rng.integers(0, items, size=(resamples, groups, items))
    return values[picked_groups, picked_items].mean(axis=(1, 2))


def _interval(estimates: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)
