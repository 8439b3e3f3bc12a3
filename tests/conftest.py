"""Shared fixtures: the real built-in model, loaded once per session, and paths to ../shared data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from seal_lightning.cli import quiet_libraries
from seal_lightning.config import ModelConfig, SealConfig
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.models import load_model, load_tokenizer
from seal_lightning.sampling.vllm import usable_cores

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

quiet_libraries()


def share_the_cores() -> None:
    """Under pytest-xdist the workers split the cores: each worker, and every process a test starts (which
    inherits the variables), computes with its share, instead of each taking all of them."""
    if "PYTEST_XDIST_WORKER_COUNT" not in os.environ:  # one process (-n 0): the user's thread settings stand
        return
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    threads = str(max(1, usable_cores() // workers))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = threads
    torch.set_num_threads(int(threads))


share_the_cores()


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
def free_port():
    """`free_port()`: a local port nothing listens on now, for a server a test starts (or a client that must
    find no one there). A fixture, not an import, as `shared_file` is."""

    def find() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For pytest-xdist's `--dist loadgroup`: a file's tests go to one worker, so a module's fixture (a fit,
    a vLLM engine) is built once, unless a test names a group of its own; the files that read the continual
    experiment fixture share one group for the same reason. The slow (end-to-end) tests go first, so the
    two workers are not left waiting on one long test at the end."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = "continual_run" if "continual_run" in item.fixturenames else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


UNGROUPED = pytest.StashKey[str | None]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Notice split groups: pytest-xdist appends each test's group to its node id (`...@group`) and schedules
    by that suffix; where it cannot (pytest 9.2 with xdist 3.8), every test is scheduled alone, the module
    fixtures above are built once per worker, and the suite silently takes minutes longer."""
    if session.config.getoption("loadgroup", default=False):
        split = (item.nodeid for item in session.items if "@" not in item.nodeid.rpartition("]")[2])
        session.config.stash[UNGROUPED] = next(split, None)


@pytest.fixture(scope="session", autouse=True)
def grouped_by_xdist(request: pytest.FixtureRequest) -> None:
    """Every test fails, naming the cause, rather than run with the groups split (see above); a worker
    crash would hide the message."""
    split = request.config.stash.get(UNGROUPED, None)
    if split is not None:
        pytest.fail(f"pytest-xdist did not group {split}: see the pytest pin in pyproject.toml", pytrace=False)
