from __future__ import annotations

import json

import numpy as np
import pytest

from seal_lightning.continual.config import STRATEGIES
from seal_lightning.errors import DataError
from seal_lightning.knowledge.data import load_passages

pytestmark = pytest.mark.slow


def test_every_strategy_runs_two_steps_and_fills_the_matrix(continual_run):
    _, store, _, results = continual_run
    assert [r.strategy for r in results] == list(STRATEGIES)
    for result in results:
        (matrix,) = result.matrices
        assert matrix.shape == (3, 2)
        assert np.all((matrix >= 0) & (matrix <= 1))
        record = store.read_json(f"continual/{result.strategy}/sequence_0.json")
        assert len(record["steps"]) == 2 and record["matrix"] == matrix.tolist()
        saved = json.loads(store.path(f"continual/{result.strategy}/matrix.json").read_text())
        assert saved["n_datapoints"] == 2 and saved["n_sequences"] == 1
        assert store.path(f"continual/{result.strategy}/heatmap.png").stat().st_size > 0
    # The same self-edits and order for everyone: the matrices start from the same row.
    first_rows = {tuple(r.matrices[0][0]) for r in results}
    assert len(first_rows) == 1


def test_edits_change_the_model(continual_run):
    _, _, _, results = continual_run
    naive = next(r for r in results if r.strategy == "naive").matrices[0]
    assert not np.allclose(naive[0], naive[-1])


def test_a_rerun_repeats_nothing(continual_run, build_experiment):
    config, store, _, results = continual_run
    stamps = {p: p.stat().st_mtime_ns for p in store.path("continual").rglob("sequence_*.json")}
    again = build_experiment(config).run()
    assert {p: p.stat().st_mtime_ns for p in store.path("continual").rglob("sequence_*.json")} == stamps
    for before, after in zip(results, again, strict=True):
        assert np.array_equal(before.matrices[0], after.matrices[0])


def test_orders_are_seeded_permutations(continual_run):
    config, _, experiment, _ = continual_run
    orders = experiment.orders()
    assert orders == experiment.orders()
    assert all(sorted(order) == list(range(config.continual.passages)) for order in orders)


def test_too_few_passages_is_a_data_error(continual_run, build_experiment):
    config, _, _, _ = continual_run
    with pytest.raises(DataError, match=r"continual.passages=2 but the data has only 1"):
        build_experiment(config, load_passages(config.data)[:1])


def test_runs_on_a_squad_format_file(tmp_path, build_experiment, small_config):
    items = [
        {
            "title": f"Place {name}",
            "context": f"Place {name} was founded in {year} by {founder}.",
            "questions": [{"question": f"Who founded Place {name}?", "answer": founder}],
        }
        for name, year, founder in (("Alpha", 1801, "Ona Vell"), ("Beta", 1902, "Ike Darro"))
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(items))
    config = small_config(tmp_path / "run", f"data.path={path}", "continual.strategy=naive", "inner.epochs=1")
    experiment = build_experiment(config)
    (result,) = experiment.run()
    assert result.matrices[0].shape == (3, 2)
    assert experiment.store.read_json("continual/naive/sequence_0.json")["titles"][0].startswith("Place ")


def test_resample_has_the_current_model_write_each_steps_self_edit(tmp_path, build_experiment, small_config, policy):
    """The paper's protocol: step 0's self-edit is what the starting model writes with that step's seed; a
    later step's is not, because the edits before it changed the model that writes it."""
    config = small_config(tmp_path / "run", "continual.strategy=naive", "continual.resample=true")
    experiment = build_experiment(config)
    experiment.run()
    record = experiment.store.read_json("continual/naive/sequence_0.json")
    fixed = experiment.store.read_json("continual/selfedits.json")
    stream = {p.key: p for p in experiment.passages}
    seed = experiment.seed  # order 0's seed; step i samples with seed + i
    starting = [experiment.resampled(policy, stream[key], seed + i) for i, key in enumerate(record["order"][:2])]
    assert len(record["selfedits"]) == 2
    assert record["selfedits"][0] == starting[0]
    assert record["selfedits"][1] != starting[1]
    assert record["selfedits"] != [fixed[key] for key in record["order"]]


def test_routed_merges_nothing_and_records_its_gate(continual_run):
    _, store, _, _ = continual_run
    steps = store.read_json("continual/routed/sequence_0.json")["steps"]
    assert [step["scale"] for step in steps] == [0.0, 0.0]
    assert all(0 <= step["plugins"]["routed_accuracy"] <= 1 for step in steps)
