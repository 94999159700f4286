"""Training: prepare, backtest every candidate, select per series, forecast, reconcile, bundle.

:func:`fit` is the one entry point (used by ``spendcast train`` through
:mod:`forecasting.tracking` and by the tests). It returns a :class:`TrainResult` whose
``bundle`` holds everything the service needs (see :mod:`forecasting.bundle`). Each stage is
a function below, handing the next one a small frozen dataclass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, BundleMeta
from forecasting.calendar import working_days_frame
from forecasting.data.labels import add_labels
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL, PanelMeta, validate_panel
from forecasting.monitoring.completion import CompletionReport, complete, load_triangle
from forecasting.monitoring.conditioning import KeptStates, fitted_states
from forecasting.monitoring.forecast import index_bundle
from forecasting.training import panel_rules
from forecasting.training.adjust import ADJUSTMENTS_SCHEMA, adjust
from forecasting.training.backtest import backtest_plan, by_id, naive_scales
from forecasting.training.budgets import BudgetReliability, budget_reliability
from forecasting.training.config import TrainConfig
from forecasting.training.engines import Engine, check_engine, open_engine
from forecasting.training.forecasts import (
    Base,
    CandidateForecasts,
    Reconciled,
    base_forecasts,
    future_frame,
    reconcile_forecasts,
)
from forecasting.training.hierarchy import Hierarchy, aggregate_panel
from forecasting.training.intervals import Intervals, backtest_intervals
from forecasting.training.models import (
    EXOGENOUS,
    MIN_LENGTH,
    candidate_groups,
    ensemble_alias,
    fallback_table,
)
from forecasting.training.paths import (
    Spread,
    sample_paths,
    spread,
    window_sums,
    window_totals,
)
from forecasting.training.report import backtest_frame, coverage_table, run_metrics, series_frame
from forecasting.training.selection import Selection, select

__all__ = ["TrainResult", "fit", "data_fingerprint"]


@dataclass
class TrainResult:
    """Everything a training run produced (see the training contract)."""

    bundle: Bundle
    cv: pl.DataFrame
    scores: pl.DataFrame
    selection: pl.DataFrame
    metrics: dict[str, float]
    model_metrics: pl.DataFrame
    coverage: pl.DataFrame
    fallbacks: pl.DataFrame
    n_series: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    completion: CompletionReport | None = None
    """Care basis: what the chain-ladder completion did (None for flux basis)."""
    adjustments: pl.DataFrame | None = None
    """Exceptional months adjusted before fitting (:mod:`forecasting.training.adjust`)."""
    budgets: BudgetReliability | None = None
    """Reliability of P(12-month total > budget) on the backtest
    (:mod:`forecasting.training.budgets`)."""


def data_fingerprint(panel: pl.DataFrame, meta: PanelMeta) -> str:
    """Stable sha256 of the bottom panel's content (sorted) and its hierarchy/measure/basis."""
    cols = [*meta.hierarchy, TIME_COL, TARGET_COL]
    df = panel.select(cols).sort([*meta.hierarchy, TIME_COL])
    h = hashlib.sha256()
    h.update(f"{','.join(meta.hierarchy)}|{meta.measure}|{meta.basis}".encode())
    for c in meta.hierarchy:
        h.update("\x1f".join(df[c].to_list()).encode())
    h.update(df[TIME_COL].cast(pl.Int32).to_numpy().tobytes())
    h.update(np.round(df[TARGET_COL].to_numpy(), 6).tobytes())
    return h.hexdigest()


class _Stages:
    """Times stages; shows a rich progress bar when asked; a context manager closing it."""

    def __init__(self, names: list[str], progress: bool) -> None:
        self.timings: dict[str, float] = {}
        self._progress: Any = None
        if progress:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()
            )
            self._task = self._progress.add_task("training", total=len(names))
            self._progress.start()

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress.update(self._task, description=f"training: {name}")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            if self._progress is not None:
                self._progress.advance(self._task)


def _stage_names(candidates: list[str]) -> list[str]:
    """The stages of :func:`fit`, in order (MLflow logs their seconds as ``time.<stage>``)."""
    return [
        "aggregate",
        *[_group_stage("backtest", g) for g in candidate_groups(candidates)],
        "select",
        "intervals",
        *[_group_stage("forecast", g) for g in candidate_groups(candidates)],
        "reconcile",
        "paths",
        "bundle",
        "conditioning",
    ]


def _group_stage(kind: str, group: tuple[str, ...]) -> str:
    """The stage of a group of candidates: ``backtest AutoETS AutoTheta ...`` (MLflow logs
    ``time.<stage>``)."""
    return f"{kind} {' '.join(group)}"


def fit(
    panel: pl.DataFrame,
    meta: PanelMeta,
    config: TrainConfig,
    *,
    engine: str = "local",
    dask_address: str | None = None,
    progress: bool = False,
    triangle: pl.DataFrame | None = None,
) -> TrainResult:
    """Train spendcast on a bottom-level panel.

    Prepares the panel (care-basis completion, aggregation to every level, fallbacks for
    degenerate series, exceptional months adjusted, calendar regressor), backtests every
    candidate with rolling origins, selects each series' model (``config.selection``: the
    combination unless a candidate clearly beats it), calibrates the intervals on the backtest
    (conformal, honest about the scale's drift), forecasts with every candidate, assembles
    each series' base forecast and reconciles the means (coherent, non-negative), draws
    coherent sample paths whose annual sums match the backtest's (and scores the budget
    probabilities they give on the backtest), packs the :class:`~forecasting.bundle.Bundle`,
    and fits the models one-step monitoring conditions on, stored in it.

    Args:
        panel: bottom-level panel (hierarchy columns, ``ds``, ``y``).
        meta: the panel's metadata.
        config: the experiment configuration.
        engine: ``local`` or ``dask`` (per-series fitting on a Dask cluster).
        dask_address: scheduler address for ``dask``; a ``LocalCluster`` when None.
        progress: show a rich progress bar per stage.
        triangle: care basis: the processing x care triangle (default: the one named in the
            panel's ``spendcast.triangle`` metadata). The recent care months are completed
            (forecasting.monitoring.completion) before fitting and the paid shares by age go
            into the bundle; without a triangle a care panel is fitted as is, with a warning.

    Returns:
        The :class:`TrainResult`.

    Raises:
        forecasting.data.panel.PanelError: the panel breaks the contract.
        SpendcastError: unknown engine.
    """
    check_engine(engine)
    validate_panel(panel, meta.hierarchy)
    config = panel_rules.apply(config, meta)  # flat panels: no reconciliation
    started = time.perf_counter()
    with _Stages(_stage_names(config.models), progress) as st:
        prep = _prepare(panel, meta, config, triangle, st)
        with open_engine(engine, dask_address) as runner:
            cv = _backtest(prep, config, runner, st)
            with st.stage("select"):
                sel = _select(cv, prep, config)
            with st.stage("intervals"):
                iv = backtest_intervals(
                    sel.cv,
                    sel.chosen,
                    config.levels,
                    config.intervals,
                    prep.scales,
                    horizon=config.horizon,
                )
            fc = _forecast(prep, config, runner, st)
            with st.stage("reconcile"):
                base = base_forecasts(
                    prep.hier.ids, prep.history, prep.fallbacks, sel, iv, fc, config
                )
                rec = reconcile_forecasts(
                    prep.hier, base, iv.backtest, prep.train, prep.last_ds, config
                )
            with st.stage("paths"):
                sums = window_sums(iv.backtest, iv.calibration, prep.hier.bottom)
                sp = spread(sums, iv.calibration)
                paths = sample_paths(prep.hier, rec.columns, rec.residuals, sp, config)
                totals = window_totals(sums, iv.calibration, sp)
                budgets = budget_reliability(totals, sp, config.seed)
            with st.stage("bundle"):
                seconds = {m: fc.seconds.get(m, 0.0) for m in config.models}
                run = _Run(
                    panel,
                    meta,
                    config,
                    prep,
                    sel,
                    iv,
                    base,
                    rec,
                    paths,
                    sp,
                    seconds,
                    started,
                    budgets,
                )
                result = _result(run, st.timings)
            with st.stage("conditioning"):  # what monitoring would refit at load, stored now
                conditioners = index_bundle(result.bundle).conditioners
                result.bundle.conditioning = fitted_states(
                    conditioners, runner, _kept_states(prep.train, fc)
                )
        result.metrics["fit_seconds"] = time.perf_counter() - started
        result.bundle.meta.metrics["fit_seconds"] = result.metrics["fit_seconds"]
        return result


@dataclass(frozen=True)
class _Prepared:
    """The panel made ready for the candidates.

    Attributes:
        history: ``unique_id, ds, y`` of every series at every level.
        hier: the hierarchy.
        train: history of the series the candidates fit, exceptional months adjusted (+ working
            days for the calendar).
        x_future: ``unique_id, ds, working_days`` over the forecast months (calendar only).
        last_ds: series -> its last observed month.
        fallbacks: ``unique_id, model, reason`` of the degenerate series.
        adjustments: ``unique_id, ds, y, adjusted, reason`` of the adjusted months.
        scales: series -> in-sample seasonal-naive mean absolute error of ``train``.
        completion: care basis: the paid shares by age (None otherwise).
        completion_report: care basis: what the completion did.
    """

    history: pl.DataFrame
    hier: Hierarchy
    train: pl.DataFrame
    x_future: pl.DataFrame | None
    last_ds: dict[str, dt.date]
    fallbacks: pl.DataFrame
    adjustments: pl.DataFrame
    scales: dict[str, float]
    completion: pl.DataFrame | None
    completion_report: CompletionReport | None


def _prepare(
    panel: pl.DataFrame,
    meta: PanelMeta,
    config: TrainConfig,
    triangle: pl.DataFrame | None,
    st: _Stages,
) -> _Prepared:
    """Care-basis completion, aggregation, degenerate-series rules, adjustments, calendar."""
    completion, completion_report = None, None
    if meta.basis == "care":
        tri = triangle if triangle is not None else load_triangle(meta)
        panel, completion, completion_report = complete(panel, tri, meta)
    with st.stage("aggregate"):
        history, hier = aggregate_panel(panel, meta)
        fallbacks = fallback_table(history, MIN_LENGTH)
        last_ds = dict(history.group_by(ID_COL).agg(pl.col(TIME_COL).max()).iter_rows())
        train = history.filter(~pl.col(ID_COL).is_in(fallbacks[ID_COL].implode()))
        country = config.country(meta.source)
        adjustments = pl.DataFrame(schema=ADJUSTMENTS_SCHEMA)
        if config.adjust_outliers:
            train, adjustments = adjust(train, country)
        x_future = None
        if country == "france" and any(m in EXOGENOUS for m in config.models):
            ids = train[ID_COL].unique(maintain_order=True).to_list()
            future = future_frame(ids, last_ds, config.horizon)
            wd = working_days_frame({*history[TIME_COL], *future[TIME_COL]})
            train = train.join(wd, on=TIME_COL, how="left")
            x_future = future.join(wd, on=TIME_COL, how="left")
    return _Prepared(
        history,
        hier,
        train,
        x_future,
        last_ds,
        fallbacks,
        adjustments,
        naive_scales(train),
        completion,
        completion_report,
    )


def _backtest(prep: _Prepared, config: TrainConfig, runner: Engine, st: _Stages) -> pl.DataFrame:
    """Every candidate's backtest rows side by side, one call per group of candidates.

    Series are backtested in groups of equal (horizon, windows) (:func:`backtest_plan`): a
    series with little history past two seasons still gets a short backtest.
    """
    cv = pl.DataFrame(
        schema={ID_COL: pl.String, TIME_COL: pl.Date, "cutoff": pl.Date, TARGET_COL: pl.Float64}
    )
    lengths = dict(prep.train.group_by(ID_COL).len().iter_rows())
    plan = backtest_plan(lengths, config.horizon, config.windows, config.step_size)
    for group in candidate_groups(config.models):
        with st.stage(_group_stage("backtest", group)):
            parts = [
                runner.cross_validation(
                    prep.train.filter(pl.col(ID_COL).is_in(ids)),
                    group,
                    horizon=h,
                    windows=w,
                    step=config.step_size,
                    levels=_model_levels(config),
                    refit=config.refit,
                )
                for (h, w), ids in sorted(plan.items())
            ]
            if not parts:
                continue
            cv_g = pl.concat(parts, how="diagonal_relaxed")
            keys = [ID_COL, TIME_COL, "cutoff"]
            cv = cv_g if cv.is_empty() else cv.join(cv_g.drop(TARGET_COL), on=keys, how="left")
    return cv


def _model_levels(config: TrainConfig) -> list[int] | None:
    """The levels the candidates compute bounds at: none for conformal intervals (faster)."""
    return None if config.intervals == "conformal" else config.levels


def _select(cv: pl.DataFrame, prep: _Prepared, config: TrainConfig) -> Selection:
    """Scores, ranks, ensembles, chosen model, top-k members, fallback and selection tables."""
    return select(
        cv,
        prep.train,
        config.models,
        config.ensemble_kinds,
        metric=config.primary_metric,
        ensemble_k=config.members,
        level_of=prep.hier.level_of,
        fallbacks=prep.fallbacks,
        rule=config.selection,
        margin=config.selection_margin,
        wins=config.selection_wins,
        min_windows=config.selection_windows,
        monitor=config.monitor_model,
    )


def _forecast(
    prep: _Prepared, config: TrainConfig, runner: Engine, st: _Stages
) -> CandidateForecasts:
    """Fit every candidate on the whole history and forecast the horizon."""
    rows: dict[str, dict[str, pl.DataFrame]] = {}
    fitted: dict[str, dict[str, pl.DataFrame]] = {}
    states: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for group in candidate_groups(config.models):
        with st.stage(_group_stage("forecast", group)):
            if prep.train.is_empty():
                continue
            out = runner.forecast(
                prep.train,
                group,
                horizon=config.horizon,
                levels=_model_levels(config),
                x_future=prep.x_future,
            )
            for alias in group:
                own = [ID_COL, TIME_COL, alias, *_bound_columns(out.forecasts, alias)]
                rows[alias] = by_id(out.forecasts.select(own))
                fitted[alias] = by_id(out.fitted.select(ID_COL, TIME_COL, alias))
            states |= out.states
            seconds |= out.seconds
    return CandidateForecasts(rows, fitted, seconds, states)


def _bound_columns(frame: pl.DataFrame, alias: str) -> list[str]:
    """``<alias>-lo-L`` and ``<alias>-hi-L`` columns of a statsforecast frame."""
    return [c for c in frame.columns if c.startswith((f"{alias}-lo-", f"{alias}-hi-"))]


def _kept_states(train: pl.DataFrame, fc: CandidateForecasts) -> dict[str, KeptStates]:
    """Series -> the values its candidates were fitted on and their fitted states."""
    parts = by_id(train.select(ID_COL, TIME_COL, TARGET_COL).sort(ID_COL, TIME_COL))
    return {
        u: (part[TARGET_COL].to_numpy(), {a: s.get(u) for a, s in fc.states.items()})
        for u, part in parts.items()
    }


@dataclass(frozen=True)
class _Run:
    """What :func:`_result` packs."""

    panel: pl.DataFrame
    meta: PanelMeta
    config: TrainConfig
    prep: _Prepared
    sel: Selection
    iv: Intervals
    base: Base
    rec: Reconciled
    paths: np.ndarray
    spread: Spread
    seconds: dict[str, float]
    started: float
    budgets: BudgetReliability | None


def _result(run: _Run, timings: dict[str, float]) -> TrainResult:
    """Coverage, metrics, series table and the :class:`Bundle`, as a :class:`TrainResult`."""
    prep, sel, levels = run.prep, run.sel, run.config.levels
    models = [*run.config.models, *[ensemble_alias(k) for k in run.config.ensemble_kinds]]
    scored = [panel_rules.scored(f, run.meta) for f in (run.iv.backtest, sel.table, sel.scores)]
    coverage = coverage_table(scored[0], levels, prep.hier.level_of)
    metrics, model_metrics = run_metrics(scored[1], scored[2], coverage, models, run.seconds)
    metrics["paths_phi"] = run.spread.phi
    if run.spread.nu is not None:  # absent: the paths' window sums are normal
        metrics["paths_tail_df"] = run.spread.nu
    if run.budgets is not None:
        metrics["budget_brier"] = run.budgets.brier
        metrics["budget_brier_climatology"] = run.budgets.climatology
    bundle = Bundle(
        meta=_bundle_meta(run, models, metrics),
        history=prep.history,
        forecasts=run.rec.forecasts,
        series=add_labels(
            panel_rules.series_columns(
                series_frame(
                    prep.hier,
                    sel.table,
                    run.iv.backtest,
                    prep.last_ds,
                    levels,
                    sel.top_k,
                    sel.monitor,
                ),
                run.panel,
                run.meta,
            ),
            run.meta,
        ),
        path_ids=list(prep.hier.ids),
        paths=run.paths,
        insample=run.base.insample,
        backtest=backtest_frame(run.iv.backtest, sel.cv, sel.monitor),
        completion=prep.completion,
        adjustments=prep.adjustments,
    )
    metrics["fit_seconds"] = time.perf_counter() - run.started
    kept = [m for m in models if m in sel.cv.columns]
    return TrainResult(
        bundle=bundle,
        cv=sel.cv.select(ID_COL, TIME_COL, "cutoff", TARGET_COL, *kept),
        scores=sel.scores,
        selection=sel.table,
        metrics=metrics,
        model_metrics=model_metrics,
        coverage=coverage,
        fallbacks=prep.fallbacks,
        n_series={name: len(ids) for name, ids in prep.hier.tags.items()},
        timings=timings,
        completion=prep.completion_report,
        adjustments=prep.adjustments,
        budgets=run.budgets,
    )


def _bundle_meta(run: _Run, models: list[str], metrics: dict[str, float]) -> BundleMeta:
    """The bundle's facts: data range, fingerprint, configuration and metrics."""
    meta, config, history = run.meta, run.config, run.prep.history
    return BundleMeta(
        horizon=config.horizon,
        levels=list(config.levels),
        hierarchy=list(meta.hierarchy),
        measure=meta.measure,
        basis=meta.basis,
        source=meta.source,
        first_ds=str(history[TIME_COL].min()),
        last_ds=str(history[TIME_COL].max()),
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        data_fingerprint=data_fingerprint(run.panel, meta),
        primary_metric=config.primary_metric,
        reconciliation=config.reconciliation,
        models=models,
        metrics=metrics,
        config=config.model_dump()
        | {"intervals_used": run.iv.method, "country": config.country(meta.source)},
    )
