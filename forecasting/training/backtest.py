"""The rolling-origin backtest (one ``cross_validation`` frame with a ``cutoff`` column):
scores with utilsforecast, ranks, the errors' growth with the step, chosen-model residuals."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast, get_args

import numpy as np
import polars as pl
from utilsforecast.evaluation import evaluate
from utilsforecast.losses import bias, mase, rmsse, smape

from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.config import Metric
from forecasting.training.models import SEASON

__all__ = ["METRIC_NAMES", "score", "rank_models", "horizon_profile", "residual_matrix", "by_id"]

#: Every backtest score: the ranking metrics, then the mean error.
METRIC_NAMES: tuple[str, ...] = (*get_args(Metric), "bias")


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


def horizon_profile(bt: pl.DataFrame) -> np.ndarray:
    """How backtest errors grow with the step ahead, pooled over series (mean 1).

    Each series' absolute errors are divided by their mean; the profile is the mean of those
    ratios per step, made non-decreasing. Training's conformal half-widths and the one-step
    bounds of anomaly judging after a gap grow with the step by this profile.
    """
    if bt.is_empty():
        return np.ones(1)
    h = int(bt["h"].max())  # type: ignore[arg-type]
    df = bt.with_columns((pl.col(TARGET_COL) - pl.col("yhat")).abs().alias("_e"))
    df = df.with_columns((pl.col("_e") / pl.col("_e").mean().over(ID_COL)).alias("_r"))
    per = df.filter(pl.col("_r").is_finite()).group_by("h").agg(pl.col("_r").mean())
    g = np.ones(h)
    for step, r in per.iter_rows():
        if r is not None and np.isfinite(r) and r > 0:
            g[int(step) - 1] = float(r)
    g = np.maximum.accumulate(g)
    return g / g.mean()


def residual_matrix(
    cv: pl.DataFrame, chosen: dict[str, str], ids: list[str], width: int
) -> np.ndarray:
    """Backtest errors (``y - forecast``) of each series' chosen model, one row per id.

    The first ``width`` rows of a series' backtest fill its row (zeros where it has fewer, and
    for series without a chosen model).
    """
    res = np.zeros((len(ids), width))
    if cv.is_empty():
        return res
    cv_by = by_id(cv)
    for i, u in enumerate(ids):
        m, sub = chosen.get(u), cv_by.get(u)
        if m is None or sub is None:
            continue
        e = (sub[TARGET_COL] - sub[m]).to_numpy()[:width]
        res[i, : len(e)] = e
    return res


def by_id(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows of each series, keyed by ``unique_id``."""
    return {str(k[0]): part for k, part in df.partition_by(ID_COL, as_dict=True).items()}
