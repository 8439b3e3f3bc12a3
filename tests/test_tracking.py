import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seal_lightning.cli import main
from seal_lightning.config import TrackingConfig
from seal_lightning.errors import DataError, SealError
from seal_lightning.store import RunStore
from seal_lightning.tracking import OUTBOX, Tracker, empty_store, seed_sqlite_store

TINY_FIT = [
    "data.limit=2", "heldout.enabled=false", "sampler.k=2", "sampler.max_new_tokens=16", "inner.epochs=1",
    "inner.seeds=1", "outer.rounds=1", "outer.epochs=1",
]  # fmt: skip


@pytest.fixture
def closed_port(free_port):
    """A local port nothing listens on."""
    return free_port()


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


class MlflowServer:
    """A real `mlflow server` on a local port, which a test can kill (the whole process group) and restart on
    the same store."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
            "1", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination", str(self.folder / "artifacts"),
        ]  # fmt: skip
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-2000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def server(tmp_path, closed_port):
    folder = tmp_path / "server"
    folder.mkdir()
    seed_sqlite_store(f"sqlite:///{folder / 'mlflow.db'}")  # as a run's own store starts: no migrations to wait on
    running = MlflowServer(folder, closed_port)
    running.start()
    yield running
    if running.process.poll() is None:
        running.kill()


def test_calls_made_while_the_server_is_down_wait_and_are_sent_when_the_next_run_starts(tmp_path, server, capsys):
    store = RunStore(tmp_path / "run")
    tracker = Tracker(TrackingConfig(tracking_uri=server.uri, experiment="outbox"), store)
    with tracker.run("fit", "fit", {"seed": 0}):
        tracker.log_metrics({"before": 1.0})
        server.kill()
        tracker.log_metrics({"during": 2.0}, step=1)
        assert "does not answer" in capsys.readouterr().err
        assert [c["op"] for c in store.read_jsonl(OUTBOX)] == ["metrics"]
        server.start()
        with tracker.run("round_1", "round_1"):  # a run start retries the waiting calls first
            tracker.log_metrics({"after": 3.0})
        assert not store.path(OUTBOX).exists()
    client = MlflowClient(server.uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("outbox").experiment_id])}
    assert runs["fit"].data.metrics == {"before": 1.0, "during": 2.0}
    assert runs["round_1"].data.metrics == {"after": 3.0}
    assert runs["round_1"].data.tags["mlflow.parentRunId"] == runs["fit"].info.run_id
    assert {r.info.status for r in runs.values()} == {"FINISHED"}


def test_fit_survives_its_server_dying_and_track_sends_the_rest(tmp_path, server):
    run_dir = tmp_path / "run"
    fit = subprocess.Popen(
        [sys.executable, "-m", "seal_lightning", "fit", f"run_dir={run_dir}", f"tracking.tracking_uri={server.uri}",
         *TINY_FIT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in fit.stdout:
        if line.startswith("round_1: sampling"):
            server.kill()
            break
    _, err = fit.communicate(timeout=900)
    assert fit.returncode == 0, err[-3000:]
    assert "does not answer" in err and "python -m seal_lightning track" in err
    summary = json.loads((run_dir / "round_1" / "summary.json").read_text())
    assert (run_dir / "round_1" / "policy" / "model.safetensors").is_file()  # the run directory is complete
    waiting = len((run_dir / OUTBOX).read_text().splitlines())

    server.start()
    result = subprocess.run(
        [sys.executable, "-m", "seal_lightning", "track", str(run_dir)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert f"sent {waiting} waiting MLflow logging calls" in result.stdout
    assert not (run_dir / OUTBOX).exists()
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("seal-lightning").experiment_id
    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    assert set(runs) == {"fit", "round_1"} and {r.info.status for r in runs.values()} == {"FINISHED"}
    assert runs["round_1"].data.metrics["mean_reward"] == pytest.approx(summary["mean_reward"])
    artifacts = {a.path for a in client.list_artifacts(runs["round_1"].info.run_id, "round_1")}
    assert {"round_1/kept.json", "round_1/policy.json", "round_1/adapter"} <= artifacts


def test_track_on_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["track", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no tracking.json" in err


def test_track_on_settings_no_command_wrote_is_one_line(tmp_path, capsys):
    (tmp_path / "tracking.json").write_text('{"uri": "elsewhere"}')
    assert main(["track", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tracking.json is not what a command writes" in err


def test_finished_runs_of_a_kind_are_read_back_newest_first_with_their_json_artifacts(tmp_path):
    store = RunStore(tmp_path / "run")
    tracker = Tracker(TrackingConfig(experiment="read-back"), store)
    for name, score in (("first", 1.0), ("second", 2.0)):
        with tracker.run(name, name):
            tracker.set_tags({"seal.kind": "continual_strategy"})
            tracker.log_metrics({"score": score})
            tracker.log_artifact(store.write_json(f"{name}/matrix.json", {"name": name}))
        time.sleep(0.01)  # start times are in milliseconds
    with pytest.raises(RuntimeError), tracker.run("failed", "failed"):
        tracker.set_tags({"seal.kind": "continual_strategy"})
        raise RuntimeError
    with tracker.run("other kind", "other kind"):
        tracker.set_tags({"seal.kind": "compare"})
    runs = tracker.finished_runs("read-back", "continual_strategy")
    read_back = [(r.tags["mlflow.runName"], r.metrics) for r in runs]
    assert read_back == [("second", {"score": 2.0}), ("first", {"score": 1.0})]
    assert tracker.read_json_artifact(runs[0].run_id, "matrix.json") == {"name": "second"}
    with pytest.raises(DataError, match="no MLflow experiment named 'absent'"):
        tracker.finished_runs("absent", "continual_strategy")


def test_run_directories_sharing_a_local_store_keep_its_artifacts_beside_it(tmp_path):
    """Settings run in their own run directories compare through one store: its artifacts live beside it."""
    uri = f"sqlite:///{tmp_path / 'shared' / 'continual.db'}"
    (tmp_path / "shared").mkdir()
    for experiment in ("builtin", "squad"):
        store = RunStore(tmp_path / experiment)
        tracker = Tracker(TrackingConfig(tracking_uri=uri, experiment=experiment), store)
        with tracker.run(experiment, experiment):
            tracker.set_tags({"seal.kind": "continual_strategy"})
            tracker.log_artifact(store.write_json("matrix.json", {"setting": experiment}))
    reader = Tracker(TrackingConfig(tracking_uri=uri, experiment="builtin"), RunStore(tmp_path / "compare"))
    for experiment in ("builtin", "squad"):
        (run,) = reader.finished_runs(experiment, "continual_strategy")
        assert reader.read_json_artifact(run.run_id, "matrix.json") == {"setting": experiment}
    assert len(list((tmp_path / "shared" / "mlartifacts").rglob("matrix.json"))) == 2


def test_a_relative_sqlite_uri_is_a_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(TrackingConfig(tracking_uri="sqlite:///relative.db"), RunStore(tmp_path / "run"))
    with tracker.run("fit", "fit"):
        tracker.log_artifact(tracker.store.write_json("kept.json", []))
    assert (tmp_path / "relative.db").is_file() and list((tmp_path / "mlartifacts").rglob("kept.json"))


def test_a_new_local_store_is_the_cached_empty_store_opened_by_mlflow(tmp_path, monkeypatch):
    """A copy of the cached empty store, not a store MLflow migrates from nothing: the same experiments, the
    Default one where MLflow puts it for this process, and the cached file left untouched."""
    monkeypatch.setenv("SEAL_CACHE", str(tmp_path / "cache"))
    Tracker(TrackingConfig(), RunStore(tmp_path / "first"))
    template = empty_store()
    assert template.is_relative_to(tmp_path / "cache")
    made = template.stat().st_mtime_ns
    with closing(sqlite3.connect(template)) as empty:  # read by hand: MLflow would add its Default experiment
        assert empty.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
    Tracker(TrackingConfig(), RunStore(tmp_path / "second"))
    assert template.stat().st_mtime_ns == made
    built = MlflowClient(f"sqlite:///{tmp_path / 'built.db'}")  # no file there before: MLflow migrates it
    seeded = MlflowClient(f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}")
    assert built.get_experiment("0").artifact_location == seeded.get_experiment("0").artifact_location
    assert [e.name for e in seeded.search_experiments()] == ["seal-lightning", "Default"]
    assert [path.name for path in (tmp_path / "second").iterdir() if path.name.startswith(".")] == []
    seed_sqlite_store(f"sqlite:///{tmp_path / 'options.db'}?timeout=30")  # the file, not its query options
    seed_sqlite_store("sqlite:///:memory:")  # no file at all
    assert sorted(path.name for path in tmp_path.glob("*.db")) == ["built.db", "options.db"]
