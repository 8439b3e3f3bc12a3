"""MLflow tracking: a parent run per command, a nested run per round. Nothing else talks to MLflow.

The run ids are kept in the run directory, so a resumed command keeps logging into the same runs.
The default store is a sqlite file inside the run directory; `tracking.tracking_uri` may name a server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from seal_lightning.config import TrackingConfig
from seal_lightning.errors import SealError
from seal_lightning.store import RunStore

# MLflow's param values are limited in length; long lists are cut rather than rejected.
MAX_PARAM_CHARS = 500


class Tracker:
    def __init__(self, config: TrackingConfig, store: RunStore) -> None:
        self.store = store
        self.uri = config.tracking_uri or f"sqlite:///{store.root.resolve() / 'mlflow.db'}"
        logging.getLogger("alembic").setLevel(logging.WARNING)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        try:
            with _without_retries():
                experiment = self.client.get_experiment_by_name(config.experiment)
        except MlflowException as exc:
            text = str(exc)
            problem = "no server answers" if "NewConnectionError" in text else text.splitlines()[0][:200]
            raise SealError(f"MLflow store {self.uri} cannot be used: {problem}; check tracking.tracking_uri") from None
        if experiment is None:
            artifacts = None if config.tracking_uri else (store.root.resolve() / "mlartifacts").as_uri()
            self.experiment_id = self.client.create_experiment(config.experiment, artifact_location=artifacts)
        else:
            self.experiment_id = experiment.experiment_id

    @contextmanager
    def run(self, key: str, name: str, params: dict[str, Any] | None = None) -> Iterator[str]:
        """Start (or resume, by `key` in the run directory) a run nested in the active one; yields its id."""
        ids = self.store.read_json("mlflow_runs.json") or {}
        active = mlflow.active_run()
        with mlflow.start_run(
            run_id=ids.get(key),
            experiment_id=self.experiment_id,
            run_name=name,
            nested=active is not None,
        ) as run:
            if key not in ids:
                self.store.write_json("mlflow_runs.json", {**ids, key: run.info.run_id})
                if params:
                    mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()})
            yield run.info.run_id

    def set_tags(self, tags: dict[str, str]) -> None:
        mlflow.set_tags(tags)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_reference(self, path: str | Path, artifact_file: str, fingerprint: str) -> None:
        """Record a large folder (a merged policy) by where it is and what it holds, not by a copy: the run
        directory keeps the only one (a 7B policy is about 15 GB)."""
        folder = Path(path).resolve()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        mlflow.log_dict({"path": str(folder), "fingerprint": fingerprint, "bytes": size}, artifact_file)

    def lightning_logger(self, run_id: str, prefix: str = "") -> MLFlowLogger:
        """Lightning's own MLflow logger, writing training curves into an existing run."""
        return MLFlowLogger(tracking_uri=self.uri, run_id=run_id, prefix=prefix, log_model=False)


@contextmanager
def _without_retries() -> Iterator[None]:
    """MLflow retries an unreachable server for about four minutes before it fails; at start, one try
    tells a wrong `tracking_uri` at once."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
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
