"""A small real continual experiment, run once for the tests that read its results back."""

from __future__ import annotations

from pathlib import Path

import pytest

from seal_lightning.configure import load_config
from seal_lightning.continual.config import STRATEGIES
from seal_lightning.continual.experiment import ContinualExperiment
from seal_lightning.knowledge.data import load_passages
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.runtime import Runtime
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker

REPO = Path(__file__).resolve().parents[2]


def make_small_config(run_dir: Path, *overrides: str):
    """Two passages, every strategy, short updates: each strategy runs two real steps, the least that can
    forget (the second edit can overwrite the first)."""
    return load_config(
        str(REPO / "conf" / "continual.yaml"),
        [
            f"run_dir={run_dir}",
            f"continual.strategy_dir={REPO / 'conf' / 'strategies'}",
            "continual.passages=2",
            "continual.sequences=1",
            f"continual.strategy={','.join(STRATEGIES)}",
            # Measured: 2 epochs at 3e-3 move no answer token of 2 passages; at 6e-3 (or 4 epochs at 3e-3, twice
            # the training) the first edit is learnt and the second makes it forgotten.
            "inner.epochs=2",
            "inner.lr=6e-3",
            "sampler.max_new_tokens=48",
            *overrides,
        ],
        strategy_files=True,
    )


@pytest.fixture(scope="session")
def small_config():
    return make_small_config


@pytest.fixture(scope="session")
def build_experiment(tokenizer):
    """`build_experiment(config, passages=None)`: the experiment over `config.data` (or `passages`)."""

    def build(config, passages=None) -> ContinualExperiment:
        store = RunStore(config.run_dir)
        passages = load_passages(config.data) if passages is None else passages
        runtime = Runtime(config, KnowledgeDomain(config, tokenizer), tokenizer, store, Tracker(config.tracking, store))
        return ContinualExperiment(runtime, config.continual, passages)

    return build


@pytest.fixture(scope="session")
def continual_run(tmp_path_factory, build_experiment):
    config = make_small_config(tmp_path_factory.mktemp("continual"))
    experiment = build_experiment(config)
    return config, experiment.store, experiment, experiment.run()
