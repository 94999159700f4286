"""Training runs: one MLflow run per training, its params, metrics, artifacts and model.

A training run is wrapped in :func:`training_run`; inside it :meth:`TrainingRun.log_result`
logs params, metrics and artifacts plus the model as an MLflow pyfunc whose artifact is the
saved :class:`~forecasting.bundle.Bundle` directory, and :meth:`TrainingRun.register`
registers a version and (optionally) moves the ``champion`` alias. :func:`train` is the
whole job behind ``spendcast train``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import polars as pl
from mlflow.tracking import MlflowClient

from forecasting.bundle import BundleMeta
from forecasting.errors import SpendcastError
from forecasting.tracking.client import connect, experiment_id, tracking_uri
from forecasting.tracking.pyfunc import log_pyfunc
from forecasting.tracking.registry import Promotion, register_version

if TYPE_CHECKING:
    from forecasting.training.config import TrainConfig
    from forecasting.training.pipeline import TrainResult

__all__ = ["TrainingRun", "TrainOutcome", "training_run", "train"]


@dataclass
class TrainingRun:
    """An active MLflow run; created by :func:`training_run`."""

    client: MlflowClient
    run_id: str
    experiment: str
    config: TrainConfig
    uri: str
    model_uri: str | None = None
    fingerprint: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    promotion: Promotion | None = None

    def log_result(self, result: TrainResult) -> None:
        """Log params, metrics, tables, charts and the pyfunc model of a training result."""
        meta = result.bundle.meta
        meta.run_id = self.run_id
        meta.experiment = self.experiment
        self.fingerprint = meta.data_fingerprint
        self.metrics = {k: float(v) for k, v in result.metrics.items()}
        _log_params(meta, result.n_series)
        mlflow.set_tags({"data_fingerprint": meta.data_fingerprint, "spendcast.kind": "train"})
        metrics = _run_metrics(self.metrics, result)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            _write_artifacts(result, tmp, self.config.primary_metric)
            mlflow.log_artifacts(str(tmp))
            self.model_uri = log_pyfunc(result.bundle, tmp)

    def register(self, name: str | None, *, promote: bool = False) -> Promotion | None:
        """Register the logged model under ``name``; with ``promote`` apply the champion rule."""
        if not name:
            return None
        if self.model_uri is None:
            raise SpendcastError("nothing to register: call log_result first")
        self.promotion = register_version(
            self.client,
            self.model_uri,
            name,
            metric=self.config.primary_metric,
            metrics=self.metrics,
            fingerprint=self.fingerprint,
            promote=promote,
        )
        return self.promotion


def _log_params(meta: BundleMeta, n_series: dict[str, int]) -> None:
    """The training data's fingerprint, range, hierarchy, measure, basis, source, sizes."""
    mlflow.log_params(
        {
            "data_fingerprint": meta.data_fingerprint,
            "first_ds": meta.first_ds,
            "last_ds": meta.last_ds,
            "hierarchy": ",".join(meta.hierarchy),
            "measure": meta.measure,
            "basis": meta.basis,
            "source": meta.source,
            **{f"n_series.{k}": v for k, v in n_series.items()},
        }
    )


def _run_metrics(headline: dict[str, float], result: TrainResult) -> dict[str, float]:
    """Headline, per-model and timing metrics, and the completion's (care basis).

    Also logs the completion as a param (applied, or why not) and, when it was not applied,
    a ``spendcast.warning`` tag.
    """
    metrics = dict(headline)
    for row in result.model_metrics.iter_rows(named=True):
        for col, val in row.items():
            if col != "model" and val is not None:
                metrics.setdefault(f"{col}.model.{row['model']}", float(val))
    metrics.update({f"time.{k}": float(v) for k, v in result.timings.items()})
    completion = getattr(result, "completion", None)  # care basis (CompletionReport)
    if completion is not None:
        mlflow.log_param("completion", "applied" if completion.applied else completion.reason)
        if completion.applied:
            metrics.update(completion.metrics())
        else:  # a care panel without triangle: fitted on incomplete recent months
            why = f"care basis not completed: {completion.reason}"
            mlflow.set_tag("spendcast.warning", why)
    return metrics


def _write_artifacts(result: TrainResult, tmp: Path, primary_metric: str) -> None:
    """Back-test, forecast and completion tables, and the charts, into ``tmp``."""
    from forecasting import plots

    tables = {
        "backtest/cv.parquet": result.cv,
        "backtest/scores.parquet": result.scores,
        "backtest/selection.parquet": result.selection,
        "backtest/model_metrics.parquet": result.model_metrics,
        "backtest/coverage.parquet": result.coverage,
        "backtest/fallbacks.parquet": result.fallbacks,
        "forecasts/forecasts.parquet": result.bundle.forecasts,
    }
    completion = getattr(result, "completion", None)
    if completion is not None and completion.factors is not None:
        tables["completion/factors.parquet"] = completion.factors
    if completion is not None and completion.backtest is not None:
        tables["completion/backtest.parquet"] = completion.backtest
    if result.adjustments is not None:
        tables["adjustments/adjustments.parquet"] = result.adjustments
    if result.budgets is not None:
        tables["backtest/budget_reliability.parquet"] = result.budgets.frame()
    for rel, frame in tables.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(tmp / rel)
    result.coverage.write_csv(tmp / "backtest" / "coverage.csv")
    charts = tmp / "charts"
    charts.mkdir()
    plots.fan_charts(result.bundle, charts, max_depth=1)
    plots.metric_by_model(result.model_metrics, primary_metric, charts / "metric_by_model.png")
    if result.budgets is not None:
        from forecasting.reliability import plot_reliability

        title = (
            f"P(12-month total > budget) on the backtest: Brier {result.budgets.brier:.3f} "
            f"(no skill {result.budgets.climatology:.3f})"
        )
        plot_reliability(result.budgets.table, charts / "budget_reliability.png", title=title)


@contextlib.contextmanager
def training_run(
    config: TrainConfig,
    *,
    config_path: str | Path | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
) -> Iterator[TrainingRun]:
    """Open an MLflow run in the config's experiment; FAILED if the body raises.

    Args:
        config: the experiment configuration (logged as params).
        config_path: the TOML file (logged as an artifact) if any.
        experiment: overrides ``config.experiment``.
        run_name: MLflow run name.
    """
    uri = tracking_uri()
    mlflow_client = connect(uri)
    name = experiment or config.experiment
    exp_id = experiment_id(mlflow_client, name, uri)
    if run_name is None and config_path is not None:
        run_name = Path(config_path).stem
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as active:
        run = TrainingRun(mlflow_client, active.info.run_id, name, config, uri)
        mlflow.log_params({k: ("" if v is None else v) for k, v in config.flat().items()})
        if config_path is not None:
            mlflow.log_artifact(str(config_path), "config")
        mlflow.log_dict(config.model_dump(), "config/effective.json")
        yield run


@dataclass
class TrainOutcome:
    """What ``spendcast train`` reports."""

    run_id: str
    experiment: str
    metrics: dict[str, float]
    primary_metric: str
    promotion: Promotion | None
    model_uri: str | None


def train(
    panel_path: str | Path,
    config: TrainConfig,
    *,
    config_path: str | Path | None = None,
    experiment: str | None = None,
    engine: str = "local",
    dask_address: str | None = None,
    register: str | None = None,
    promote: bool = False,
    progress: bool = False,
    fit_fn: Callable[..., Any] | None = None,
) -> TrainOutcome:
    """Read the panel, fit, log one MLflow run, register and maybe promote.

    The panel is read and validated before any run is opened (bad input leaves no run).
    An exception inside training marks the run FAILED and never touches the registry.

    Args:
        fit_fn: replaces ``forecasting.training.fit`` (same signature), for tests.
    """
    from forecasting.data.panel import read_panel
    from forecasting.training.panel_rules import for_panel

    panel, meta = read_panel(panel_path)
    config, _ = for_panel(config, meta)  # logged as trained (a flat panel: reconciliation none)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if fit_fn is None:
        from forecasting.training.pipeline import fit

        fit_fn = fit
    extra: dict[str, pl.DataFrame] = {}
    if meta.basis == "care":  # the triangle named in the metadata, else beside the panel
        from forecasting.monitoring.completion import load_triangle

        triangle = load_triangle(meta, Path(panel_path))
        if triangle is not None:
            extra["triangle"] = triangle
    with training_run(config, config_path=config_path, experiment=experiment) as run:
        result = fit_fn(
            panel,
            meta,
            config,
            engine=engine,
            dask_address=dask_address,
            progress=progress,
            **extra,
        )
        run.log_result(result)
        promotion = run.register(register, promote=promote)
    return TrainOutcome(
        run.run_id, run.experiment, run.metrics, config.primary_metric, promotion, run.model_uri
    )
