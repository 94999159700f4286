"""Final forecasts: each series' base forecast with its bounds, then reconciled.

The base forecast of a series with a backtest is its chosen candidate's forecast, or the
combination of its top-k candidates for an ensemble, with the model's own bounds or the
conformal half-widths (as the backtest decided); a degenerate series gets its fallback rule's
forecast. The in-sample fit carries the first step's half-widths.

Reconciliation makes the means coherent (parents are sums of children), weighing series by
the covariance of their one-step in-sample residuals (MinT); each series keeps its own
calibrated half-widths around its reconciled mean. Bounds are not summed up the hierarchy: a
sum of 95 % bounds is not the 95 % bound of a sum (it is much wider); the sample paths carry
the joint uncertainty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import level_cols
from forecasting.calendar import months_after
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.backtest import by_id, insample_residuals, residual_matrix
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import Hierarchy, reconcile_or_fall_back
from forecasting.training.intervals import Intervals
from forecasting.training.models import combine, degenerate_forecast, ensemble_kind
from forecasting.training.selection import Selection

__all__ = [
    "CandidateForecasts",
    "Base",
    "Reconciled",
    "base_forecasts",
    "reconcile_forecasts",
    "future_frame",
]


@dataclass(frozen=True)
class CandidateForecasts:
    """Each candidate's final forecasts and in-sample fits: model -> series -> rows.

    Attributes:
        rows: ``unique_id, ds, <model>, <model>-lo-L, <model>-hi-L`` per model and series.
        fitted: ``unique_id, ds, <model>`` per model and series.
        seconds: fitting seconds per model.
        states: the fitted ``model_`` per model and series (None where the model failed).
    """

    rows: dict[str, dict[str, pl.DataFrame]]
    fitted: dict[str, dict[str, pl.DataFrame]]
    seconds: dict[str, float]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Base:
    """Base forecasts ``mean``, ``lo_L``, ``hi_L`` (rows in ``ids`` order) and in-sample fits."""

    columns: dict[str, np.ndarray]
    insample: pl.DataFrame


@dataclass(frozen=True)
class _SeriesBase:
    """One series' forecast columns, in-sample fit and first-step half-width per level."""

    columns: dict[str, np.ndarray]
    fitted: np.ndarray
    half: dict[int, float]


def base_forecasts(
    ids: list[str],
    history: pl.DataFrame,
    fallbacks: pl.DataFrame,
    sel: Selection,
    iv: Intervals,
    fc: CandidateForecasts,
    config: TrainConfig,
) -> Base:
    """Assemble every series' base forecast, bounds and in-sample fit.

    Args:
        ids: every series, in the order of the output rows.
        history: ``unique_id, ds, y`` of every series.
        fallbacks: ``unique_id, model, reason`` of the degenerate series.
        sel: the selection (chosen model, top-k members).
        iv: the backtest intervals (method and conformal half-widths).
        fc: the candidates' final forecasts.
        config: horizon, levels and candidates.
    """
    h, levels = config.horizon, config.levels
    columns = {c: np.zeros((len(ids), h)) for c in ["mean", *level_cols(levels)]}
    hist_by = by_id(history)
    reasons = dict(fallbacks.select(ID_COL, "reason").iter_rows())
    parts = []
    for i, u in enumerate(ids):
        if u in reasons:
            one = _degenerate(hist_by[u][TARGET_COL].to_numpy(), reasons[u], config)
        else:
            one = _chosen(u, sel, iv, fc, config)
        for c, values in one.columns.items():
            columns[c][i] = values
        parts.append(_insample(u, hist_by[u], one, levels))
    insample = (
        pl.concat(parts)
        .filter(pl.col("fitted").is_not_nan() & pl.col("fitted").is_not_null())
        .with_columns(pl.col(TIME_COL).cast(pl.Date))
    )
    return Base(columns, insample)


def _degenerate(y: np.ndarray, reason: str, config: TrainConfig) -> _SeriesBase:
    """A degenerate series' fallback forecast (:func:`~.models.degenerate_forecast`)."""
    mean, half, fitted = degenerate_forecast(y, reason, config.horizon, config.levels)
    columns = {"mean": mean}
    for lv in config.levels:
        columns[f"lo_{lv}"] = mean - half[lv]
        columns[f"hi_{lv}"] = mean + half[lv]
    return _SeriesBase(columns, fitted, {lv: float(half[lv][0]) for lv in config.levels})


def _chosen(
    u: str, sel: Selection, iv: Intervals, fc: CandidateForecasts, config: TrainConfig
) -> _SeriesBase:
    """A series' chosen model (or ensemble of its top k) with the model or conformal bounds."""
    h, levels = config.horizon, config.levels
    m = sel.chosen[u]
    members = [m] if m in config.models else sel.top_k[u]
    kind = ensemble_kind(m) or "mean"
    mean = combine(np.vstack([fc.rows[a][u][a].to_numpy() for a in members]), kind)
    half = iv.halfwidths.get(u, {lv: np.zeros(h) for lv in levels})
    columns = {"mean": mean}
    for lv in levels:
        if iv.method == "model" and m in config.models:
            columns[f"lo_{lv}"] = fc.rows[m][u][f"{m}-lo-{lv}"].to_numpy()
            columns[f"hi_{lv}"] = fc.rows[m][u][f"{m}-hi-{lv}"].to_numpy()
        else:
            columns[f"lo_{lv}"] = mean - half[lv][:h]
            columns[f"hi_{lv}"] = mean + half[lv][:h]
    fitted = combine(np.vstack([fc.fitted[a][u][a].to_numpy() for a in members]), kind)
    return _SeriesBase(columns, fitted, {lv: float(half[lv][0]) for lv in levels})


def _insample(u: str, hist: pl.DataFrame, one: _SeriesBase, levels: list[int]) -> pl.DataFrame:
    """``unique_id, ds, y, fitted, lo_L, hi_L``: the fit and its first-step half-widths."""
    return pl.DataFrame(
        {
            ID_COL: u,
            TIME_COL: hist[TIME_COL],
            TARGET_COL: hist[TARGET_COL],
            "fitted": one.fitted.astype(np.float64),
        }
    ).with_columns(
        [
            (pl.col("fitted") + sign * one.half[lv]).alias(f"{side}_{lv}")
            for lv in levels
            for side, sign in (("lo", -1.0), ("hi", 1.0))
        ]
    )


@dataclass(frozen=True)
class Reconciled:
    """Reconciled forecasts (arrays and frame) and the residuals that weighed them.

    Attributes:
        columns: ``mean``, ``lo_L``, ``hi_L`` -> (n_series, horizon), rows in ``hier.ids`` order.
        residuals: (n_series, K) backtest errors of the chosen models, aligned on
            (cutoff, month), NaN where a series has none
            (:func:`~forecasting.training.backtest.residual_matrix`): the sample paths'
            cross-sections.
        forecasts: ``unique_id, ds, mean, lo_L, hi_L`` (the bundle's forecasts).
    """

    columns: dict[str, np.ndarray]
    residuals: np.ndarray
    forecasts: pl.DataFrame


def reconcile_forecasts(
    hier: Hierarchy,
    base: Base,
    backtest: pl.DataFrame,
    train: pl.DataFrame,
    last_ds: dict[str, dt.date],
    config: TrainConfig,
) -> Reconciled:
    """Reconcile the base means (MinT on the one-step in-sample residuals of ``train``, the
    history as fitted); each series' own half-widths around its reconciled mean."""
    mean = reconcile_or_fall_back(
        hier,
        {"mean": base.columns["mean"]},
        [],
        method=config.reconciliation,
        residuals=insample_residuals(train, base.insample, hier.ids),
        nonnegative=config.nonnegative,
    )["mean"]
    rec = {"mean": mean}
    for lv in config.levels:
        below = np.maximum(base.columns["mean"] - base.columns[f"lo_{lv}"], 0.0)
        above = np.maximum(base.columns[f"hi_{lv}"] - base.columns["mean"], 0.0)
        rec[f"lo_{lv}"] = np.maximum(mean - below, 0.0) if config.nonnegative else mean - below
        rec[f"hi_{lv}"] = mean + above
    cols = ["mean", *level_cols(config.levels)]
    forecasts = future_frame(hier.ids, last_ds, config.horizon).with_columns(
        [pl.Series(c, rec[c].reshape(-1), dtype=pl.Float64) for c in cols]
    )
    return Reconciled(rec, residual_matrix(backtest, hier.ids), forecasts)


def future_frame(ids: list[str], last_ds: dict[str, dt.date], h: int) -> pl.DataFrame:
    """``unique_id, ds`` of the ``h`` months after each series' last one."""
    return pl.DataFrame(
        {
            ID_COL: [u for u in ids for _ in range(h)],
            TIME_COL: [d for u in ids for d in months_after(last_ds[u], h)],
        },
        schema={ID_COL: pl.String, TIME_COL: pl.Date},
    )
