import os
import socket

import pytest

from seal_lightning.cli import main
from seal_lightning.config import TrackingConfig
from seal_lightning.errors import SealError
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker


@pytest.fixture
def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_that_cannot_be_reached_fails_at_start_in_one_line(tmp_path, closed_port):
    uri = f"http://127.0.0.1:{closed_port}"
    retries = {
        name: os.environ.get(name) for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    with pytest.raises(SealError, match=f"MLflow store {uri} cannot be used: no server answers; check tracking"):
        Tracker(TrackingConfig(tracking_uri=uri), RunStore(tmp_path))
    assert {name: os.environ.get(name) for name in retries} == retries  # MLflow's retry settings as they were


def test_a_command_with_an_unreachable_server_exits_2_and_frees_the_run(tmp_path, closed_port, capsys):
    argv = ["evaluate", f"run_dir={tmp_path}", f"tracking.tracking_uri=http://127.0.0.1:{closed_port}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no server answers" in err
    with RunStore(tmp_path).hold("evaluate"):  # the failed command let go of the run directory
        pass
