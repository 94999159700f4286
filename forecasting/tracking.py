"""MLflow tracking, the pyfunc model, the registry and model loading.

This is the only module that imports :mod:`mlflow`. A training run is wrapped in
:func:`training_run`; inside it :meth:`TrainingRun.log_result` logs params, metrics and
artifacts plus the model as an MLflow pyfunc whose artifact is the saved
:class:`~forecasting.bundle.Bundle` directory, and :meth:`TrainingRun.register` registers a
version and (optionally) moves the ``champion`` alias.

Promotion rule: a new version becomes ``champion`` when there is no champion yet, or when the
champion was trained on the same data fingerprint and the new version's primary metric is
strictly lower (all metrics are errors: lower is better). When the champion was trained on
*different* data the metrics are not comparable; the alias is left alone and the reason says
so (promote explicitly by retraining both on the same panel).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mlflow
import mlflow.pyfunc
import pandas as pd
import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from pydantic_settings import BaseSettings, SettingsConfigDict

from forecasting.bundle import Bundle, BundleError
from forecasting.data.panel import ID_COL
from forecasting.errors import SpendcastError
from forecasting.training.config import TrainConfig

__all__ = [
    "TrackingSettings",
    "TrainingRun",
    "Promotion",
    "LoadedModel",
    "SpendcastModel",
    "training_run",
    "load_model",
    "champion_summary",
    "tracking_uri",
    "CHAMPION",
    "PIP_PACKAGES",
]

CHAMPION = "champion"
DEFAULT_URI = "sqlite:///mlflow.db"
PIP_PACKAGES = (
    "mlflow",
    "polars",
    "pandas",
    "numpy",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
)
_BUNDLE_KEY = "bundle"


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

        A tracking server that is down must fail fast so :func:`load_model` can serve the
        cache; the values come from the environment when set there.
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


def _client(uri: str | None = None) -> MlflowClient:
    settings = TrackingSettings()
    settings.apply_http_limits()
    uri = uri or settings.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))


class ResultLike(Protocol):
    """What :meth:`TrainingRun.log_result` reads (``forecasting.training.TrainResult``)."""

    bundle: Bundle
    cv: pl.DataFrame
    scores: pl.DataFrame
    selection: pl.DataFrame
    metrics: dict[str, float]
    model_metrics: pl.DataFrame
    coverage: pl.DataFrame
    fallbacks: pl.DataFrame
    n_series: dict[str, int]
    timings: dict[str, float]


# --------------------------------------------------------------------------- pyfunc


class SpendcastModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Pyfunc wrapper of a :class:`Bundle` (artifact ``bundle`` = the saved bundle dir).

    Input: ``unique_id`` (str), ``horizon`` (int), optional ``level`` (int).
    Output: long frame ``unique_id, ds, mean, lo_<L>, hi_<L>``.
    """

    def load_context(self, context: Any) -> None:
        from forecasting.bundle import Bundle as _Bundle

        self.bundle = _Bundle.load(context.artifacts[_BUNDLE_KEY])

    def predict(  # noqa: D102
        self,
        context: Any,  # noqa: ARG002
        model_input: pd.DataFrame,
        params: Any = None,  # noqa: ARG002
    ) -> pd.DataFrame:
        frames = []
        for row in model_input.to_dict("records"):
            level = row.get("level")
            levels = (
                None
                if level is None or (isinstance(level, float) and level != level)
                else [int(level)]
            )
            frames.append(
                self.bundle.forecast(
                    ids=[str(row[ID_COL])], horizon=int(row["horizon"]), levels=levels
                ).to_pandas()
            )
        if not frames:
            return pd.DataFrame(columns=[ID_COL, "ds", "mean"])
        return pd.concat(frames, ignore_index=True)


def _pip_requirements() -> list[str]:
    reqs = []
    for pkg in PIP_PACKAGES:
        try:
            reqs.append(f"{pkg}=={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            reqs.append(pkg)
    return reqs


_PYFUNC_MODULES = (
    "__init__.py",
    "errors.py",
    "bundle.py",
    "tracking.py",
    "data/__init__.py",
    "data/panel.py",
    "training/__init__.py",
    "training/config.py",
)
"""The part of ``forecasting`` the pyfunc needs to load a bundle (shipped as its code)."""


def _code_dir(tmp: Path) -> str:
    """A copy of the minimal ``forecasting`` package the pyfunc needs to load."""
    pkg = Path(__file__).resolve().parent
    dst = tmp / "forecasting"
    for rel in _PYFUNC_MODULES:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pkg / rel, dst / rel)
    return str(dst)


# --------------------------------------------------------------------------- runs


@dataclass
class Promotion:
    """Outcome of :meth:`TrainingRun.register`."""

    name: str
    version: str
    promoted: bool
    reason: str


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

    def log_result(self, result: ResultLike) -> None:
        """Log params, metrics, tables, charts and the pyfunc model of a training result."""
        from forecasting import plots

        bundle = result.bundle
        meta = bundle.meta
        meta.run_id = self.run_id
        meta.experiment = self.experiment
        self.fingerprint = meta.data_fingerprint
        self.metrics = {k: float(v) for k, v in result.metrics.items()}
        mlflow.log_params(
            {
                "data_fingerprint": meta.data_fingerprint,
                "first_ds": meta.first_ds,
                "last_ds": meta.last_ds,
                "hierarchy": ",".join(meta.hierarchy),
                "measure": meta.measure,
                "basis": meta.basis,
                "source": meta.source,
                **{f"n_series.{k}": v for k, v in result.n_series.items()},
            }
        )
        mlflow.set_tags({"data_fingerprint": meta.data_fingerprint, "spendcast.kind": "train"})
        metrics = dict(self.metrics)
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
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            tables = {
                "backtest/cv.parquet": result.cv,
                "backtest/scores.parquet": result.scores,
                "backtest/selection.parquet": result.selection,
                "backtest/model_metrics.parquet": result.model_metrics,
                "backtest/coverage.parquet": result.coverage,
                "backtest/fallbacks.parquet": result.fallbacks,
                "forecasts/forecasts.parquet": bundle.forecasts,
            }
            if completion is not None and completion.factors is not None:
                tables["completion/factors.parquet"] = completion.factors
            if completion is not None and completion.backtest is not None:
                tables["completion/backtest.parquet"] = completion.backtest
            for rel, frame in tables.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(tmp / rel)
            result.coverage.write_csv(tmp / "backtest" / "coverage.csv")
            charts = tmp / "charts"
            charts.mkdir()
            for path in plots.fan_charts(bundle, charts, max_depth=1):
                del path
            plots.metric_by_model(
                result.model_metrics, self.config.primary_metric, charts / "metric_by_model.png"
            )
            mlflow.log_artifacts(str(tmp))
            bundle_dir = bundle.save(tmp / "bundle")
            example = pd.DataFrame(
                {ID_COL: [bundle.ids[0]], "horizon": [meta.horizon], "level": [meta.levels[-1]]}
            )
            sample = SpendcastModel()
            sample.bundle = bundle
            with warnings.catch_warnings():  # integer-column hint: level is optional below
                warnings.simplefilter("ignore", UserWarning)
                signature = infer_signature(example, sample.predict(None, example))
            signature = ModelSignature(
                inputs=Schema(
                    [
                        ColSpec("string", ID_COL),
                        ColSpec("long", "horizon"),
                        ColSpec("long", "level", required=False),
                    ]
                ),
                outputs=signature.outputs,
            )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=SpendcastModel(),
                artifacts={_BUNDLE_KEY: str(bundle_dir)},
                code_paths=[_code_dir(tmp / "code")],
                pip_requirements=_pip_requirements(),
                signature=signature,
                input_example=example,
            )
        self.model_uri = info.model_uri

    def register(self, name: str | None, *, promote: bool = False) -> Promotion | None:
        """Register the logged model under ``name``; with ``promote`` apply the champion rule."""
        if not name:
            return None
        if self.model_uri is None:
            raise SpendcastError("nothing to register: call log_result first")
        mv = mlflow.register_model(self.model_uri, name)
        version = str(mv.version)
        metric = self.config.primary_metric
        self.client.set_model_version_tag(name, version, "data_fingerprint", self.fingerprint or "")
        self.client.set_model_version_tag(name, version, metric, str(self.metrics.get(metric)))
        if not promote:
            self.promotion = Promotion(name, version, False, "--promote not given")
            return self.promotion
        try:
            champ = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champ = None
        new = self.metrics.get(metric, float("inf"))
        if champ is None:
            ok, why = True, "no champion yet"
        else:
            champ_run = self.client.get_run(str(champ.run_id))
            old = champ_run.data.metrics.get(metric, float("inf"))
            same = champ_run.data.tags.get("data_fingerprint") == self.fingerprint
            if not same:
                ok, why = False, f"champion v{champ.version} was trained on other data; kept"
            elif new < old:
                ok, why = True, f"{metric} {new:.4f} < champion v{champ.version}'s {old:.4f}"
            else:
                ok, why = False, f"{metric} {new:.4f} >= champion v{champ.version}'s {old:.4f}"
        if ok:
            self.client.set_registered_model_alias(name, CHAMPION, version)
        mlflow.set_tags({"promoted": str(ok), "promotion_reason": why})
        self.promotion = Promotion(name, version, ok, why)
        return self.promotion


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
    client = _client(uri)
    name = experiment or config.experiment
    exp_id = _experiment_id(client, name, uri)
    if run_name is None and config_path is not None:
        run_name = Path(config_path).stem
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as active:
        run = TrainingRun(client, active.info.run_id, name, config, uri)
        mlflow.log_params({k: ("" if v is None else v) for k, v in config.flat().items()})
        if config_path is not None:
            mlflow.log_artifact(str(config_path), "config")
        mlflow.log_dict(config.model_dump(), "config/effective.json")
        yield run


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    """A bundle loaded from MLflow (or the local cache when the store is unreachable)."""

    bundle: Bundle
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    from_cache: bool = False
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What ``GET /v1/model`` reports."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "uri": self.uri,
            "from_cache": self.from_cache,
            "reason": self.reason,
            "metrics": self.metrics or dict(self.bundle.meta.metrics),
        }


def _parse_models_uri(uri: str) -> tuple[str | None, str | None, str | None]:
    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, None, alias
    name, _, ver = rest.partition("/")
    return name, ver or None, None


def _cache_key(uri: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uri)


def _resolve(uri: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(name, version, alias, run_id) of a model URI, asking the registry where needed."""
    name, version, alias = _parse_models_uri(uri)
    run_id = None
    if name is not None:
        client = _client()
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version or "")
        )
        version, run_id = str(mv.version), mv.run_id
    elif uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
    return name, version, alias, run_id


def load_model(uri: str, cache_dir: str | Path | None = None) -> LoadedModel:
    """Load a spendcast pyfunc model's bundle; fall back to the cache if the store is down.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model`` or a path.
        cache_dir: where a copy of the last good load is kept.

    Raises:
        SpendcastError: the model cannot be loaded and no cached copy exists.
    """
    cache = Path(cache_dir) / _cache_key(uri) if cache_dir is not None else None
    try:
        if Path(uri).exists():
            name = version = alias = run_id = None
            local = Path(uri)
        else:
            _client()
            name, version, alias, run_id = _resolve(uri)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        bundle_dir = local / "artifacts" / _BUNDLE_KEY
        if not bundle_dir.exists():
            bundle_dir = local
        bundle = Bundle.load(bundle_dir)
    except Exception as exc:  # store down, missing alias, broken artifacts...
        reason = f"could not load {uri} from {tracking_uri()}: {type(exc).__name__}: {exc}"
        if cache is not None and (cache / "bundle").exists():
            info = json.loads((cache / "info.json").read_text())
            return LoadedModel(
                bundle=Bundle.load(cache / "bundle"),
                uri=uri,
                name=info.get("name"),
                version=info.get("version"),
                alias=info.get("alias"),
                run_id=info.get("run_id"),
                from_cache=True,
                reason=reason + "; serving the cached copy",
            )
        if isinstance(exc, BundleError):
            raise
        raise SpendcastError(
            reason
            + ("; no cached copy" if cache is not None else "")
            + " (train one with `spendcast train ... --register NAME --promote`)"
        ) from exc
    loaded = LoadedModel(
        bundle=bundle,
        uri=uri,
        name=name,
        version=version,
        alias=alias,
        run_id=run_id or bundle.meta.run_id,
        metrics=dict(bundle.meta.metrics),
    )
    if cache is not None:
        _refresh_cache(cache, bundle_dir, loaded)
    return loaded


def _refresh_cache(cache: Path, bundle_dir: Path, loaded: LoadedModel) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    try:
        shutil.copytree(bundle_dir, tmp / "bundle")
        info = {k: getattr(loaded, k) for k in ("name", "version", "alias", "run_id", "uri")}
        (tmp / "info.json").write_text(json.dumps(info))
        old = cache.with_name(cache.name + ".old")
        if cache.exists():
            cache.rename(old)
        tmp.rename(cache)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def champion_summary(name: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """Name, version, alias, run id and metrics of ``name@alias`` (None if there is none)."""
    client = _client()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    run = client.get_run(str(mv.run_id))
    return {
        "name": name,
        "version": str(mv.version),
        "alias": alias,
        "run_id": mv.run_id,
        "data_fingerprint": run.data.tags.get("data_fingerprint"),
        "metrics": dict(run.data.metrics),
    }


def list_runs(experiment: str) -> pl.DataFrame:
    """Runs of an experiment: run id, name, status, params and metrics (one row per run)."""
    client = _client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SpendcastError(f"no experiment named {experiment!r} in {tracking_uri()}")
    rows = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        rows.append(
            {
                "run_id": r.info.run_id,
                "run_name": r.info.run_name,
                "status": r.info.status,
                "config_models": r.data.params.get("models"),
                "primary_metric": r.data.params.get("primary_metric", "mase"),
                **{f"metric:{k}": v for k, v in r.data.metrics.items()},
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


# --------------------------------------------------------------------------- orchestration


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
    fit_fn: Any = None,
) -> TrainOutcome:
    """Read the panel, fit, log one MLflow run, register and maybe promote.

    The panel is read and validated before any run is opened (bad input leaves no run).
    An exception inside training marks the run FAILED and never touches the registry.

    Args:
        fit_fn: replaces ``forecasting.training.fit`` (same signature), for tests.
    """
    from forecasting.data.panel import read_panel

    panel, meta = read_panel(panel_path)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if fit_fn is None:
        from forecasting.training.pipeline import fit

        fit_fn = fit
    extra: dict[str, Any] = {}
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


def compare_runs(experiment: str, out: str | Path) -> tuple[pl.DataFrame, list[str]]:
    """Finished runs of ``experiment`` sorted by primary metric, and a PNG chart at ``out``.

    Returns:
        The table (``label`` + metric columns) and the metric columns shown.
    """
    from forecasting import plots
    from forecasting.data.panel import atomic_path

    runs = list_runs(experiment)
    if runs.is_empty() or "metric:mase" not in runs.columns:
        raise SpendcastError(f"experiment {experiment!r} has no finished training runs")
    runs = runs.filter(pl.col("status") == "FINISHED")
    primary = runs["primary_metric"][0] if runs.height else "mase"
    cols = [c for c in runs.columns if c.startswith("metric:")]
    wanted = [f"metric:{primary}"] + sorted(
        c
        for c in cols
        if c != f"metric:{primary}"
        and (
            c.startswith(f"metric:{primary}.level.")
            or (c.startswith("metric:coverage_") and "." not in c)
            or c in ("metric:smape", "metric:rmsse", "metric:time.total", "metric:fit_seconds")
        )
    )
    table = (
        runs.with_columns(
            pl.concat_str(
                [pl.col("run_name").fill_null(""), pl.col("run_id").str.slice(0, 8)], separator=" "
            ).alias("label")
        )
        .sort(f"metric:{primary}", nulls_last=True)
        .select(["label", "run_id", "config_models", *wanted])
        .rename({c: c.removeprefix("metric:") for c in wanted})
    )
    shown = [c.removeprefix("metric:") for c in wanted]
    chart_metrics = [c for c in shown if not c.startswith("time") and c != "fit_seconds"]
    suffix = Path(out).suffix or ".png"
    with atomic_path(out) as tmp:
        png = tmp.with_suffix(suffix)
        plots.compare_chart(table, chart_metrics, png)
        png.replace(tmp)
    return table, shown
