"""Where MLflow lives: the tracking settings (environment), the client and experiments."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_URI", "TrackingSettings", "tracking_uri", "connect", "experiment_id"]

DEFAULT_URI = "sqlite:///mlflow.db"


class TrackingSettings(BaseSettings):
    """Environment settings of the tracking layer (the only place env vars are read).

    Attributes:
        mlflow_tracking_uri: ``MLFLOW_TRACKING_URI``; default ``sqlite:///mlflow.db``.
        spendcast_artifact_root: ``SPENDCAST_ARTIFACT_ROOT``; default ``./mlruns``.
        mlflow_http_request_max_retries: retries against an HTTP tracking server (1).
        mlflow_http_request_backoff_factor: seconds factor of the retry backoff (1).
        mlflow_http_request_timeout: seconds per HTTP request (10).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    mlflow_tracking_uri: str = DEFAULT_URI
    spendcast_artifact_root: str = "mlruns"
    mlflow_http_request_max_retries: int = 1
    mlflow_http_request_backoff_factor: int = 1
    mlflow_http_request_timeout: int = 10
    mlflow_enable_artifacts_progress_bar: bool = False

    def apply_http_limits(self) -> None:
        """Hand the HTTP retry limits to mlflow (its defaults retry for minutes).

        A tracking server that is down must fail fast so
        :func:`~forecasting.tracking.load_model` can serve the cache; the values come from
        the environment when set there.
        """
        for key in (
            "mlflow_http_request_max_retries",
            "mlflow_http_request_backoff_factor",
            "mlflow_http_request_timeout",
            "mlflow_enable_artifacts_progress_bar",
        ):
            os.environ[key.upper()] = str(getattr(self, key)).lower()


def tracking_uri() -> str:
    """The tracking URI in effect (``MLFLOW_TRACKING_URI`` or the default SQLite file)."""
    return TrackingSettings().mlflow_tracking_uri


def _artifact_location(uri: str) -> str | None:
    settings = TrackingSettings()
    if uri == DEFAULT_URI or uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        base = db.parent if uri != DEFAULT_URI else Path.cwd()
        root = Path(settings.spendcast_artifact_root)
        root = root if root.is_absolute() else (base / root)
        return root.resolve().as_uri()
    return None


def connect(uri: str | None = None) -> MlflowClient:
    """A client of ``uri`` (default: the URI in effect), set as mlflow's tracking and registry."""
    settings = TrackingSettings()
    settings.apply_http_limits()
    uri = uri or settings.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite store) if needed."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    return str(mlflow_client.create_experiment(name, artifact_location=_artifact_location(uri)))
