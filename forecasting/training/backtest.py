"""The rolling-origin backtest (one ``cross_validation`` frame with a ``cutoff`` column):
scores with utilsforecast, ranks, the errors' growth with the step, chosen-model residuals."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, cast, get_args

import numpy as np
import polars as pl
from utilsforecast.evaluation import evaluate
from utilsforecast.losses import bias, mase, rmsse, smape

from forecasting.calendar import month_index_expr
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.config import Metric
from forecasting.training.models import SEASON

__all__ = [
    "METRIC_NAMES",
    "MIN_TRAIN",
    "MIN_TRAIN_SHARE",
    "backtest_plan",
    "score",
    "window_losses",
    "disjoint_windows",
    "rank_models",
    "horizon_profile",
    "extend_profile",
    "GROWTH_MAX",
    "naive_scales",
    "residual_matrix",
    "insample_residuals",
    "by_id",
]

#: Every backtest score: the ranking metrics, then the mean error.
METRIC_NAMES: tuple[str, ...] = (*get_args(Metric), "bias")

MIN_TRAIN = 2 * SEASON
"""Fewest months a candidate is first fitted on in the backtest (two seasons)."""
MIN_TRAIN_SHARE = 0.6
"""Least share of a series' history the backtest's first fit sees (see :func:`backtest_plan`)."""


def backtest_plan(
    lengths: dict[str, int], horizon: int, windows: int, step: int
) -> dict[tuple[int, int], list[str]]:
    """Series grouped by the backtest their history allows: ``(horizon, windows) -> ids``.

    A series of ``n`` months is first fitted on at least :data:`MIN_TRAIN` months and
    :data:`MIN_TRAIN_SHARE` of its history (with ``refit=False`` that first fit judges every
    window: fitted on two seasons of a five-year series, ETS misjudges the seasonality and
    the backtest would wrongly favour the seasonal naive); it gets ``windows`` cutoffs
    ``step`` months apart when it is long enough, fewer otherwise, and a horizon capped by
    what is left after the first fit (so a series of two seasons and a few months still has
    a backtest). Series of :data:`MIN_TRAIN` months or fewer get none.
    """
    plan: dict[tuple[int, int], list[str]] = {}
    for uid, n in lengths.items():
        room = n - max(MIN_TRAIN, math.ceil(MIN_TRAIN_SHARE * n))
        if room < 1:
            continue
        h = min(horizon, room)
        w = max(1, min(windows, (room - h) // step + 1))
        plan.setdefault((h, w), []).append(uid)
    return plan


def score(cv: pl.DataFrame, models: list[str], train: pl.DataFrame) -> pl.DataFrame:
    """``unique_id, model, mase, smape, rmsse, bias`` over every backtest window.

    Args:
        cv: backtest rows with one point column per model.
        models: the columns to score.
        train: history ``unique_id, ds, y`` (scale of MASE/RMSSE, seasonality 12).
    """
    metrics: list[Callable[..., Any]] = []
    for fn, name in zip(
        [partial(mase, seasonality=SEASON), smape, partial(rmsse, seasonality=SEASON), bias],
        METRIC_NAMES,
        strict=True,
    ):
        setattr(fn, "__name__", name)  # noqa: B010 - evaluate names metrics by __name__
        metrics.append(cast(Callable[..., Any], fn))
    ev = evaluate(
        cv.drop("cutoff").select(ID_COL, TIME_COL, TARGET_COL, *models),
        metrics=metrics,
        models=models,
        train_df=train.select(ID_COL, TIME_COL, TARGET_COL),
    )
    ev = pl.DataFrame(ev)
    long = ev.unpivot(index=[ID_COL, "metric"], on=models, variable_name="model")
    return (
        long.pivot(on="metric", index=[ID_COL, "model"], values="value")
        .select(ID_COL, "model", *METRIC_NAMES)
        .sort(ID_COL, "model")
    )


def window_losses(cv: pl.DataFrame, models: list[str], metric: str) -> pl.DataFrame:
    """``unique_id, cutoff, <model>...``: each backtest window's loss per model.

    Within a series the MASE and RMSSE scales are constants, so a window's mean absolute
    (``mase``) or root mean squared (``rmsse``) error ranks models as the metric does;
    ``smape`` is computed per window.
    """
    y = pl.col(TARGET_COL)

    def loss(m: str) -> pl.Expr:
        e = y - pl.col(m)
        if metric == "rmsse":
            return (e**2).mean().sqrt()
        if metric == "smape":
            return (e.abs() / (y.abs() + pl.col(m).abs())).fill_nan(0.0).mean() * 200
        return e.abs().mean()

    return cv.group_by(ID_COL, "cutoff").agg([loss(m).alias(m) for m in models])


def disjoint_windows(cv: pl.DataFrame) -> dict[str, int]:
    """Series -> how many of its backtest windows do not overlap one another.

    Cutoffs a month apart give a dozen windows per year that share all but one of their
    months: their losses are nearly the same evidence counted again. The count takes the
    latest window, then the latest one that ends before it starts, and so on (with cutoffs
    a month apart spanning ``s`` months and windows of ``h`` months: ``s // h + 1``).
    """
    if cv.is_empty():
        return {}
    per = (
        cv.group_by(ID_COL, "cutoff")
        .agg(month_index_expr(pl.col("cutoff")).first().alias("_m"), pl.len().alias("_h"))
        .group_by(ID_COL)
        .agg(pl.col("_m").sort(descending=True), pl.col("_h").max())
    )
    out: dict[str, int] = {}
    for uid, months, h in per.iter_rows():
        count, start = 0, None
        for m in months:
            if start is None or m + h <= start:
                count, start = count + 1, m
        out[uid] = count
    return out


def rank_models(scores: pl.DataFrame, metric: str) -> pl.DataFrame:
    """``unique_id, model, rank`` (1 = best by ``metric``; NaN scores rank last)."""
    return scores.with_columns(
        pl.col(metric)
        .fill_nan(float("inf"))
        .fill_null(float("inf"))
        .rank("ordinal", descending=False)
        .over(ID_COL)
        .alias("rank")
    ).select(ID_COL, "model", "rank")


def horizon_profile(bt: pl.DataFrame, horizon: int | None = None) -> np.ndarray:
    """How backtest errors grow with the step ahead, pooled over series (mean 1).

    Each series' absolute errors are divided by their mean; the profile is the mean of those
    ratios per step, made non-decreasing. Training's conformal half-widths and the one-step
    bounds of anomaly judging after a gap grow with the step by this profile.

    With ``horizon`` beyond the backtest's longest step (every series short, so every backtest
    horizon was capped: :func:`backtest_plan`), the steps after it continue the measured
    growth (:func:`extend_profile`): the profile always covers the forecast horizon.
    """
    g = np.ones(1)
    if not bt.is_empty():
        df = bt.with_columns((pl.col(TARGET_COL) - pl.col("yhat")).abs().alias("_e"))
        df = df.with_columns((pl.col("_e") / pl.col("_e").mean().over(ID_COL)).alias("_r"))
        per = df.filter(pl.col("_r").is_finite()).group_by("h").agg(pl.col("_r").mean())
        g = np.ones(int(bt["h"].max()))  # type: ignore[arg-type]
        for step, r in per.iter_rows():
            if r is not None and np.isfinite(r) and r > 0:
                g[int(step) - 1] = float(r)
    g = extend_profile(np.maximum.accumulate(g), horizon or g.size)
    return g / g.mean()


GROWTH_MAX = 0.5
"""Steepest growth :func:`extend_profile` continues: a random walk's (errors ~ step ** 0.5)."""


def extend_profile(g: np.ndarray, horizon: int) -> np.ndarray:
    """A measured error-growth profile ``g`` (steps 1..len(g)) continued to ``horizon`` steps.

    The growth continues as a power of the step, ``g[K-1] * (k / K) ** b``, with ``b`` the
    slope of ``log g`` on ``log k`` over the measured steps, between 0 (flat) and
    :data:`GROWTH_MAX`; with a single measured step, ``b`` is :data:`GROWTH_MAX` (nothing is
    known of the growth: wide rather than overconfident). Checked on the real-data suite's
    full 12-step profiles, cut to their first 2, 3, 4 or 6 steps: at step 12 the power was
    within -0.24 / +0.13 of the measured growth (singles, PBS, two origins), where a straight
    line overshot by up to 0.57 and a random walk by up to 1.2.
    """
    k_meas = g.size
    if horizon <= k_meas:
        return g
    b = GROWTH_MAX
    if k_meas >= 2:
        steps = np.log(np.arange(1, k_meas + 1))
        b = float(np.clip(np.polyfit(steps, np.log(g), 1)[0], 0.0, GROWTH_MAX))
    more = np.arange(k_meas + 1, horizon + 1) / k_meas
    return np.concatenate([g, g[-1] * more**b])


def naive_scales(history: pl.DataFrame) -> dict[str, float]:
    """Series -> mean absolute seasonal difference of its history (the MASE scale)."""
    df = history.sort(ID_COL, TIME_COL).with_columns(
        (pl.col(TARGET_COL) - pl.col(TARGET_COL).shift(SEASON).over(ID_COL)).abs().alias("_e")
    )
    per = df.group_by(ID_COL).agg(pl.col("_e").drop_nulls().mean())
    return {u: float(v) for u, v in per.iter_rows() if v is not None and np.isfinite(v)}


def residual_matrix(bt: pl.DataFrame, ids: list[str]) -> np.ndarray:
    """Backtest errors (``y - yhat``) of each series' chosen model, aligned across series.

    Columns are the (cutoff, month) pairs of the backtest, so a column is one cross-section
    of forecast errors made at the same time for the same month (what the sample paths'
    cross-series draws need); a series without a pair has NaN there (a short series' few
    windows, or series whose months differ), and a series without a backtest (degenerate) a
    row of NaN.
    """
    if bt.is_empty():
        return np.full((len(ids), 1), np.nan)
    keys = bt.select("cutoff", TIME_COL).unique().sort("cutoff", TIME_COL)
    keys = keys.with_row_index("_col")
    rows = {u: i for i, u in enumerate(ids)}
    e = bt.join(keys, on=["cutoff", TIME_COL]).select(
        pl.col(ID_COL).replace_strict(rows, default=None, return_dtype=pl.Int64).alias("_row"),
        pl.col("_col").cast(pl.Int64),
        (pl.col(TARGET_COL) - pl.col("yhat")).alias("_e"),
    )
    e = e.filter(pl.col("_row").is_not_null() & pl.col("_e").is_finite())
    res = np.full((len(ids), keys.height), np.nan)
    res[e["_row"].to_numpy(), e["_col"].to_numpy()] = e["_e"].to_numpy()
    return res


def insample_residuals(
    history: pl.DataFrame, fitted: pl.DataFrame, ids: list[str], months: int = 60
) -> np.ndarray:
    """One-step in-sample residuals ``y - fitted`` aligned on the last ``months`` months.

    MinT's error covariance (``mint_shrink``) is the covariance of one-step in-sample
    residuals (Wickramasuriya, Athanasopoulos & Hyndman, 2019); ``history`` is the series as
    fitted (exceptional months adjusted), ``fitted`` the in-sample fit (``unique_id, ds,
    fitted``). A series without a residual in a month has 0 there (a degenerate series: a row
    of zeros).
    """
    res = history.join(fitted.select(ID_COL, TIME_COL, "fitted"), on=[ID_COL, TIME_COL])
    res = res.select(ID_COL, TIME_COL, (pl.col(TARGET_COL) - pl.col("fitted")).alias("_e"))
    res = res.filter(pl.col("_e").is_finite())
    dates = sorted(res[TIME_COL].unique().to_list())[-months:]
    cols, rows = {d: j for j, d in enumerate(dates)}, {u: i for i, u in enumerate(ids)}
    out = np.zeros((len(ids), max(len(dates), 1)))
    for uid, ds, e in res.filter(pl.col(TIME_COL).is_in(dates)).iter_rows():
        if uid in rows:
            out[rows[uid], cols[ds]] = e
    return out


def by_id(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows of each series, keyed by ``unique_id``."""
    return {str(k[0]): part for k, part in df.partition_by(ID_COL, as_dict=True).items()}
