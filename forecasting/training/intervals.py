"""Prediction intervals on the backtest: each series' chosen model, its own bounds or conformal.

Conformal half-widths are *locally scaled and globally pooled*: a series' absolute backtest
errors, divided by the step-ahead profile (:func:`~forecasting.training.backtest.horizon_profile`),
are divided by their own mean (the series' scale); those scale-free ratios are pooled over
every series and the level's conformal quantile of the pool (finite-sample corrected) is
multiplied back by each series' scale and the profile. A per-series quantile from 3-4 windows
is too few points for a 95 or 99 % bound (it under-covers); the pool has thousands. Bounds on
window w use only the other windows (leave-one-window-out, scales and pool alike), so their
backtest coverage is honest; the final half-widths use every window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from forecasting.bundle import level_cols
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.backtest import horizon_profile
from forecasting.training.config import IntervalMethod

__all__ = ["Intervals", "backtest_intervals", "covered", "coverage"]

_SIDES = (("lo", -1.0), ("hi", 1.0))


@dataclass(frozen=True)
class Intervals:
    """Backtest rows with the bounds used, and what the final forecasts need of them.

    Attributes:
        backtest: ``unique_id, ds, cutoff, h, y, yhat, lo_L, hi_L`` of each chosen model.
        halfwidths: series -> level -> conformal half-width per step ahead (every window).
        method: ``model`` or ``conformal``: the bounds the backtest calibrated best.
    """

    backtest: pl.DataFrame
    halfwidths: dict[str, dict[int, np.ndarray]]
    method: str


def covered(level: int) -> pl.Expr:
    """Whether ``y`` lies within the ``lo_L`` and ``hi_L`` bounds of ``level``."""
    return (pl.col(TARGET_COL) >= pl.col(f"lo_{level}")) & (
        pl.col(TARGET_COL) <= pl.col(f"hi_{level}")
    )


def coverage(df: pl.DataFrame, level: int) -> float:
    """Share of the rows of ``df`` inside the bounds of ``level`` (0 when none has bounds)."""
    value = df.select(covered(level).mean()).item()
    return 0.0 if value is None else float(value)


def _chosen_frame(cv: pl.DataFrame, chosen: dict[str, str], levels: list[int]) -> pl.DataFrame:
    """Backtest rows of each series' chosen model: ``yhat``, ``h`` and the model's bounds
    ``mlo_L``, ``mhi_L`` (null for an ensemble)."""
    parts = []
    for m in sorted(set(chosen.values())):
        ids = [u for u, v in chosen.items() if v == m]
        exprs = [pl.col(m).alias("yhat")]
        for lv in levels:
            for side, _ in _SIDES:
                name = f"{m}-{side}-{lv}"
                bound = pl.col(name) if name in cv.columns else pl.lit(None, pl.Float64)
                exprs.append(bound.alias(f"m{side}_{lv}"))
        sub = cv.filter(pl.col(ID_COL).is_in(ids))
        parts.append(sub.select(ID_COL, TIME_COL, "cutoff", TARGET_COL, *exprs))
    if not parts:
        return pl.DataFrame(
            schema={
                ID_COL: pl.String,
                TIME_COL: pl.Date,
                "cutoff": pl.Date,
                TARGET_COL: pl.Float64,
                "yhat": pl.Float64,
            }
            | {f"m{s}_{lv}": pl.Float64 for lv in levels for s, _ in _SIDES}
        )
    return (
        pl.concat(parts)
        .sort(ID_COL, "cutoff", TIME_COL)
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(ID_COL, "cutoff").cast(pl.Int64).alias("h")
        )
    )


def backtest_intervals(
    cv: pl.DataFrame, chosen: dict[str, str], levels: list[int], method: IntervalMethod
) -> Intervals:
    """Chosen-model backtest rows with the interval bounds actually used.

    Args:
        cv: every model's backtest rows.
        chosen: series -> chosen model.
        levels: interval levels in percent.
        method: ``model`` or ``conformal`` bounds, or ``auto``: the models' own bounds where
            they exist if they calibrate better on the backtest than the conformal ones.
    """
    bt = _chosen_frame(cv, chosen, levels)
    model_cols = [f"m{s}_{lv}" for lv in levels for s, _ in _SIDES]
    if bt.is_empty():
        nulls = [pl.lit(None, pl.Float64).alias(c) for c in level_cols(levels)]
        return Intervals(bt.with_columns(nulls).drop(model_cols), {}, "conformal")
    profile = horizon_profile(bt)
    halfwidths, halves = _conformal(bt, profile, levels)
    conf = bt.with_columns(
        [
            (pl.col("yhat") + sign * pl.Series(values=halves[lv])).alias(f"{side}_{lv}")
            for lv in levels
            for side, sign in _SIDES
        ]
    )
    has_model = bt[f"mlo_{levels[0]}"].is_not_null()
    model = conf.with_columns(
        [
            pl.when(has_model)
            .then(pl.col(f"m{side}_{lv}"))
            .otherwise(pl.col(f"{side}_{lv}"))
            .alias(f"{side}_{lv}")
            for lv in levels
            for side, _ in _SIDES
        ]
    )
    if method == "auto":
        use_model = _miscalibration(model.filter(has_model), levels) < _miscalibration(
            conf.filter(has_model), levels
        )
    else:
        use_model = method == "model"
    if use_model:
        return Intervals(model.drop(model_cols), halfwidths, "model")
    return Intervals(conf.drop(model_cols), halfwidths, "conformal")


def _miscalibration(df: pl.DataFrame, levels: list[int]) -> float:
    """Mean absolute gap between the backtest coverage and the nominal level (0 if no row)."""
    if df.is_empty():
        return 0.0
    return float(np.mean([abs(coverage(df, lv) - lv / 100) for lv in levels]))


def _conformal(
    bt: pl.DataFrame, profile: np.ndarray, levels: list[int]
) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, np.ndarray]]:
    """Final conformal half-widths per series and level (every window), and the half-widths
    of the backtest rows in ``bt``'s order (each window's from the other windows)."""
    parts = bt.partition_by(ID_COL, maintain_order=True)
    steps = [profile[part["h"].to_numpy() - 1] for part in parts]
    errs = [
        np.abs(part[TARGET_COL].to_numpy() - part["yhat"].to_numpy()) / step
        for part, step in zip(parts, steps, strict=True)
    ]
    cuts = [part["cutoff"].to_numpy() for part in parts]
    pool, scales = _pool(errs, [np.ones(len(e), dtype=bool) for e in errs])
    q = {lv: _quantile(pool, lv) for lv in levels}
    final = {}
    for part, scale in zip(parts, scales, strict=True):
        sc = scale if np.isfinite(scale) else 0.0
        final[part[ID_COL][0]] = {lv: sc * q[lv] * profile for lv in levels}
    loo = _leave_one_window_out(errs, cuts, levels)
    halves = {
        lv: np.concatenate([h * step for h, step in zip(loo[lv], steps, strict=True)])
        for lv in levels
    }
    return final, halves


def _leave_one_window_out(
    errs: list[np.ndarray], cuts: list[np.ndarray], levels: list[int]
) -> dict[int, list[np.ndarray]]:
    """Per level and series, its rows' scaled half-widths from the other windows' pool."""
    by_cut = {}
    for c in np.unique(np.concatenate(cuts)):
        pool, scales = _pool(errs, [cut != c for cut in cuts])
        by_cut[c] = ({lv: _quantile(pool, lv) for lv in levels}, scales)
    out: dict[int, list[np.ndarray]] = {lv: [] for lv in levels}
    for i, cut in enumerate(cuts):
        for lv in levels:
            half = np.empty(len(errs[i]))
            for c in np.unique(cut):
                q, scales = by_cut[c]
                half[cut == c] = scales[i] * q[lv] if np.isfinite(scales[i]) else np.inf
            out[lv].append(half)
    return out


def _pool(errs: list[np.ndarray], keep: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """Scale-free errors pooled over series (kept rows only) and each series' scale."""
    scales = [
        float(np.nanmean(e[k])) if k.any() else np.nan for e, k in zip(errs, keep, strict=True)
    ]
    pool = [
        e[k] / sc for e, k, sc in zip(errs, keep, scales, strict=True) if np.isfinite(sc) and sc > 0
    ]
    return (np.concatenate(pool) if pool else np.array([])), scales


def _quantile(pool: np.ndarray, level: int) -> float:
    """Conformal quantile of ``pool`` at ``level`` % (finite-sample corrected; inf if empty)."""
    pool = pool[np.isfinite(pool)]
    if not pool.size:
        return np.inf
    q = min(1.0, np.ceil((pool.size + 1) * level / 100) / pool.size)
    return float(np.quantile(pool, q))
