"""The model registry: versions, the ``champion`` alias and its promotion rule.

Promotion rule: a new version becomes ``champion`` when there is no champion yet, or when the
champion was trained on the same data fingerprint and the new version's primary metric is
strictly lower (all metrics are errors: lower is better). When the champion was trained on
*different* data the metrics are not comparable; the alias is left alone and the reason says
so (promote explicitly by retraining both on the same panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecasting.tracking.client import connect

__all__ = ["CHAMPION", "Promotion", "register_version", "champion_summary"]

CHAMPION = "champion"


@dataclass
class Promotion:
    """Outcome of :meth:`~forecasting.tracking.TrainingRun.register`."""

    name: str
    version: str
    promoted: bool
    reason: str


def register_version(
    mlflow_client: MlflowClient,
    model_uri: str,
    name: str,
    *,
    metric: str,
    metrics: dict[str, float],
    fingerprint: str | None,
    promote: bool,
) -> Promotion:
    """Register ``model_uri`` under ``name`` (tagged with its data and metric) and maybe promote.

    Args:
        mlflow_client: the client of the run's store.
        model_uri: the logged model.
        name: the registered model.
        metric: the primary metric (lower is better).
        metrics: the run's metrics.
        fingerprint: the training data's fingerprint.
        promote: apply the champion rule (else the alias is left alone).
    """
    mv = mlflow.register_model(model_uri, name)
    version = str(mv.version)
    mlflow_client.set_model_version_tag(name, version, "data_fingerprint", fingerprint or "")
    mlflow_client.set_model_version_tag(name, version, metric, str(metrics.get(metric)))
    if not promote:
        return Promotion(name, version, False, "--promote not given")
    ok, why = _beats_champion(mlflow_client, name, metric, metrics, fingerprint)
    if ok:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    mlflow.set_tags({"promoted": str(ok), "promotion_reason": why})
    return Promotion(name, version, ok, why)


def _beats_champion(
    mlflow_client: MlflowClient,
    name: str,
    metric: str,
    metrics: dict[str, float],
    fingerprint: str | None,
) -> tuple[bool, str]:
    """Whether the new version takes the alias, and why (the promotion rule)."""
    try:
        champ = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return True, "no champion yet"
    new = metrics.get(metric, float("inf"))
    champ_run = mlflow_client.get_run(str(champ.run_id))
    old = champ_run.data.metrics.get(metric, float("inf"))
    if champ_run.data.tags.get("data_fingerprint") != fingerprint:
        return False, f"champion v{champ.version} was trained on other data; kept"
    if new < old:
        return True, f"{metric} {new:.4f} < champion v{champ.version}'s {old:.4f}"
    return False, f"{metric} {new:.4f} >= champion v{champ.version}'s {old:.4f}"


def champion_summary(name: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """Name, version, alias, run id and metrics of ``name@alias`` (None if there is none)."""
    mlflow_client = connect()
    try:
        mv = mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    run = mlflow_client.get_run(str(mv.run_id))
    return {
        "name": name,
        "version": str(mv.version),
        "alias": alias,
        "run_id": mv.run_id,
        "data_fingerprint": run.data.tags.get("data_fingerprint"),
        "metrics": dict(run.data.metrics),
    }
