from __future__ import annotations

import pytest

from seal_lightning.continual.compare import compare
from seal_lightning.errors import DataError
from seal_lightning.tracking import Tracker

pytestmark = pytest.mark.slow


def test_compare_reads_back_what_continual_wrote(continual_run):
    config, store, _, results = continual_run
    table, figure = compare(Tracker(config.tracking, store), store, config.tracking.experiment)
    lines = table.splitlines()
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
