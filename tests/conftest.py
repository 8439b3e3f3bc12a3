"""Shared fixtures: the real built-in model, loaded once per session, and paths to ../shared data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seal_lightning.cli import quiet_libraries
from seal_lightning.config import ModelConfig, SealConfig
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.models import load_model, load_tokenizer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

quiet_libraries()


@pytest.fixture(scope="session")
def shared_file():
    """`shared_file(relative)`: a file from ../shared/data, or a skip with the reason when this checkout
    has none beside it. A fixture, not an import: tests in subfolders have conftest modules of their own."""

    def find(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.is_file():
            pytest.skip(f"{path} is absent (the shared data folder is not beside this checkout)")
        return path

    return find


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer(ModelConfig())


@pytest.fixture(scope="session")
def policy():
    """The built-in model. Tests that adapt it must leave it as they found it (the inner loop does)."""
    torch.manual_seed(0)
    return load_model(ModelConfig())


@pytest.fixture(scope="session")
def knowledge(tokenizer):
    """`knowledge(**sections)`: the knowledge domain under the default config with these sections
    replaced (for example `inner=InnerConfig(epochs=2)`)."""
    return lambda **sections: KnowledgeDomain(SealConfig(**sections), tokenizer)
