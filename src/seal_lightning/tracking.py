"""MLflow tracking: a parent run per command, a nested run per round. Nothing else talks to MLflow.

The default store is a sqlite file inside the run directory; `tracking.tracking_uri` may name a server.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import requests
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow.db import upgrade
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from seal_lightning.config import TrackingConfig
from seal_lightning.errors import DataError, SealError
from seal_lightning.models import cache_dir
from seal_lightning.store import RunStore

# MLflow's param values are limited in length; long lists are cut rather than rejected.
MAX_PARAM_CHARS = 500
SQLITE = "sqlite:///"
STORE_FILE = "mlflow.db"  # the store in the run directory when tracking.tracking_uri is unset
OUTBOX = "tracking_outbox.jsonl"
# Where the run's MLflow store is, for `python -m seal_lightning track RUN_DIR`.
SETTINGS = "tracking.json"
# Tries of one logging call (with 1, 2, 4 s between them) before it waits in the outbox.
REQUEST_RETRIES = 3
# What a server that has gone away raises.
UNANSWERED = (MlflowException, requests.exceptions.RequestException, OSError)


@dataclass(frozen=True)
class LoggedRun:
    """A finished run as read back from the store."""

    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]


class Tracker:
    """Every logging call is sent at once while MLflow answers. When a server stops answering, the call and
    every later one wait, in order, in RUN_DIR/tracking_outbox.jsonl: the command goes on (its results are
    in the run directory), the outbox is retried when the next run starts and when the command ends, and
    `python -m seal_lightning track RUN_DIR` sends what is left. Runs are named by keys; their ids are
    kept in RUN_DIR/mlflow_runs.json, so a resumed command logs into the same runs."""

    def __init__(self, config: TrackingConfig, store: RunStore) -> None:
        self.store = store
        self.uri = config.tracking_uri or f"{SQLITE}{default_store(store.root)}"
        self.active: list[str] = []  # keys of the open runs, outermost first
        # Under data-parallel ranks only the main rank talks to MLflow; the others' calls go nowhere.
        self.silent = not store.main
        self.waiting = False
        if self.silent:
            return
        logging.getLogger("alembic").setLevel(logging.WARNING)
        seed_sqlite_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        try:
            self.client = MlflowClient(self.uri)  # refuses a scheme MLflow has no store for
            with _http_retries():
                experiment = self.client.get_experiment_by_name(config.experiment)
        except (MlflowException, ImportError, OSError, SQLAlchemyError) as exc:
            # Besides MLflow's own: a database whose driver is not installed (ImportError), a sqlite file where
            # no folder can be (OSError) or that cannot be opened (SQLAlchemyError).
            text = str(exc).strip()
            problem = "no server answers" if "NewConnectionError" in text else text.splitlines()[0].partition(". ")[0]
            raise unusable_store(self.uri, problem[:200]) from None
        if experiment is None:
            artifacts = local_artifacts(self.uri)
            self.experiment_id = self.client.create_experiment(config.experiment, artifact_location=artifacts)
        else:
            self.experiment_id = experiment.experiment_id
        self.run_ids: dict[str, str] = self.store.read_json("mlflow_runs.json") or {}
        self.waiting = bool(self.store.read_jsonl(OUTBOX))
        self.store.write_json(SETTINGS, {"tracking_uri": config.tracking_uri, "experiment": config.experiment})

    @contextmanager
    def run(self, key: str, name: str, params: dict[str, Any] | None = None) -> Iterator[str]:
        """Start (or resume) the run `key`, nested in the open one; params are logged once. Yields the key."""
        cut = {k: str(v)[:MAX_PARAM_CHARS] for k, v in (params or {}).items()}
        parent = self.active[-1] if self.active else None
        self.send({"op": "start", "run": key, "name": name, "parent": parent, "params": cut})
        self.active.append(key)
        status = "FAILED"
        try:
            yield key
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.active.pop()
            self.send({"op": "end", "run": key, "status": status})
            if not self.active and self.waiting and not self.flush():
                print(
                    f"seal-lightning: {self.waiting_calls()} MLflow logging calls wait in {self.store.path(OUTBOX)}; "
                    f"once {self.uri} answers: python -m seal_lightning track {self.store.root}",
                    file=sys.stderr,
                )

    def set_tags(self, tags: dict[str, str]) -> None:
        self.send({"op": "tags", "run": self.active[-1], "tags": tags})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        timestamp = int(time.time() * 1000)
        self.send({"op": "metrics", "run": self.active[-1], "metrics": values, "step": step or 0, "time": timestamp})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file or folder of the run directory; sent late, it is sent as it is then."""
        folder = str(Path(path).resolve())
        self.send({"op": "artifact", "run": self.active[-1], "path": folder, "artifact_path": artifact_path})

    def log_reference(self, path: str | Path, artifact_file: str, fingerprint: str) -> None:
        """Record a large folder (a merged policy) by where it is and what it holds, not by a copy: the run
        directory keeps the only one (a 7B policy is about 15 GB)."""
        folder = Path(path).resolve()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        content = {"path": str(folder), "fingerprint": fingerprint, "bytes": size}
        self.send({"op": "dict", "run": self.active[-1], "content": content, "artifact_file": artifact_file})

    def finished_runs(self, experiment: str, kind: str) -> list[LoggedRun]:
        """The finished runs tagged `seal.kind` = `kind` in `experiment`, newest first: what commands that
        compare results (`compare`) read back, from this machine or any other sharing the store."""
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            raise DataError(f"no MLflow experiment named {experiment!r} in {self.uri}")
        runs = self.client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`seal.kind` = '{kind}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
        return [LoggedRun(r.info.run_id, dict(r.data.tags), dict(r.data.metrics)) for r in runs]

    def read_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_path, dst_path=folder, tracking_uri=self.uri
            )
            return json.loads(Path(path).read_text())

    def lightning_logger(self, prefix: str) -> Logger:
        """Lightning's training curves, into the open run through this tracker (so they wait with the rest)."""
        return TrainingCurves(self, prefix)

    def send(self, call: dict[str, Any]) -> None:
        """Do one logging call, or keep it (and every later one, to keep their order) for when MLflow answers.
        While calls wait, each run start tries to send them first."""
        if self.silent:
            return
        if self.waiting and not (call["op"] == "start" and self.flush()):
            self.store.append_jsonl(OUTBOX, call)
            return
        try:
            with _http_retries(REQUEST_RETRIES):
                self.perform(call)
        except UNANSWERED as exc:
            self.waiting = True
            self.store.append_jsonl(OUTBOX, call)
            reason = str(exc).splitlines()[0][:160]
            print(
                f"seal-lightning: MLflow at {self.uri} does not answer ({reason}); logging waits in "
                f"{self.store.path(OUTBOX)} and is retried as the command goes on",
                file=sys.stderr,
            )

    def waiting_calls(self) -> int:
        return len(self.store.read_jsonl(OUTBOX))

    def flush(self) -> bool:
        """Send the waiting calls in order, dropping each from the outbox once done; True when none is left."""
        calls = self.store.read_jsonl(OUTBOX)
        for index, call in enumerate(calls):
            try:
                with _http_retries():
                    self.perform(call)
            except UNANSWERED:
                return False
            left = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in calls[index + 1 :])
            self.store.write_text(OUTBOX, left)
        self.store.path(OUTBOX).unlink(missing_ok=True)
        self.waiting = False
        return True

    def perform(self, call: dict[str, Any]) -> None:
        if call["op"] == "start":
            self.start(call)
            return
        run_id = self.run_ids[call["run"]]
        if call["op"] == "end":
            self.client.set_terminated(run_id, call["status"])
        elif call["op"] == "metrics":
            metrics = [Metric(k, v, call["time"], call["step"]) for k, v in call["metrics"].items()]
            self.client.log_batch(run_id, metrics=metrics)
        elif call["op"] == "tags":
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in call["tags"].items()])
        elif call["op"] == "artifact":
            log = self.client.log_artifacts if Path(call["path"]).is_dir() else self.client.log_artifact
            log(run_id, call["path"], call["artifact_path"])
        elif call["op"] == "dict":
            self.client.log_dict(run_id, call["content"], call["artifact_file"])

    def start(self, call: dict[str, Any]) -> None:
        """Create the run (its id saved before anything else, so a crash cannot make a second one) or mark it
        running again; its params once."""
        if call["run"] in self.run_ids:
            run_id = self.run_ids[call["run"]]
            self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {MLFLOW_PARENT_RUN_ID: self.run_ids[call["parent"]]} if call["parent"] else {}
            run_id = self.client.create_run(self.experiment_id, run_name=call["name"], tags=tags).info.run_id
            self.run_ids[call["run"]] = run_id
            self.store.write_json("mlflow_runs.json", self.run_ids)
        if call["params"] and not self.client.get_run(run_id).data.params:
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in call["params"].items()])


class TrainingCurves(Logger):
    """A Lightning logger that hands the training loop's metrics to the tracker's open run."""

    def __init__(self, tracker: Tracker, prefix: str) -> None:
        super().__init__()
        self.tracker = tracker
        self.prefix = prefix

    @property
    def name(self) -> str:
        return self.prefix

    @property
    def version(self) -> str:
        return self.tracker.active[-1]

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics({f"{self.prefix}-{k}": v for k, v in metrics.items()}, step)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The command's config is already the run's params."""


@contextmanager
def _http_retries(retries: int = 0) -> Iterator[None]:
    """MLflow retries an unreachable server for about four minutes before it fails; at start, one try
    tells a wrong `tracking_uri` at once, and a logging call tries a few times (seconds) before it waits
    in the outbox."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def local_artifacts(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local sqlite store's file (the run directory's own
    store, or one that several run directories share), so the store is one folder; a server decides its own."""
    database = sqlite_file(uri)
    return None if database is None else (database.parent / "mlartifacts").as_uri()


def sqlite_file(uri: str) -> Path | None:
    """The file a local sqlite store's URI names, read as SQLAlchemy reads it (without its query options; a
    relative one from the working directory, as sqlite opens it); None for any other store."""
    return Path(make_url(uri).database or "").resolve() if uri.startswith(SQLITE) else None


def default_store(run_dir: Path) -> Path:
    """The sqlite file a run directory's MLflow store lives in when tracking.tracking_uri is unset."""
    return run_dir.resolve() / STORE_FILE


def unusable_store(uri: str, problem: str) -> SealError:
    return SealError(f"MLflow store {uri} cannot be used: {problem}; check tracking.tracking_uri")


def seed_sqlite_store(uri: str) -> None:
    """A new local sqlite store starts as a copy of an empty one with this MLflow's schema, made once per
    machine: MLflow builds a new store by replaying every schema migration (about 4 s on a 2-core CPU),
    which each new run directory, and each test that makes one, would pay again. MLflow then adds its
    Default experiment as it does in any new store."""
    path = sqlite_file(uri)
    if path is None or path.name in ("", ":memory:"):
        return
    if path.is_dir():  # MLflow would retry opening it for about two minutes before it fails
        raise unusable_store(uri, f"{path} is a folder")
    if path.exists() or not path.parent.is_dir():
        return  # an existing store, or one MLflow is left to refuse
    copying = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        shutil.copyfile(empty_store(), copying)
        os.replace(copying, path)  # whole or not at all: a kill never leaves half a store
    finally:
        copying.unlink(missing_ok=True)  # a copy a full disk cut short


def empty_store() -> Path:
    """The empty store of this MLflow version, built by `mlflow db upgrade` (the schema, no experiment)."""
    template = cache_dir() / "mlflow" / f"empty-{mlflow.__version__}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        building = template.with_name(f".{template.name}.{os.getpid()}")  # processes building at once
        try:
            upgrade.main([f"{SQLITE}{building}"], standalone_mode=False)
            os.replace(building, template)
        finally:
            building.unlink(missing_ok=True)
    return template
