"""Prediction intervals from the backtest: conformal half-widths honest about the future.

Conformal half-widths are *locally scaled and globally pooled*: a series' absolute backtest
errors, divided by the step-ahead profile (:func:`~forecasting.training.backtest.horizon_profile`),
are divided by the series' scale (their recency-weighted mean, below); the scale-free ratios
of every series are pooled and the level's conformal quantile of the pool (finite-sample
corrected) is multiplied back by each series' scale and the profile. A per-series quantile
from a few windows is too few points for a 95 or 99 % bound; the pool has thousands.

**Honest about the future.** A scale measured on the backtest is itself an estimate, and the
next year's errors differ from the last years' (levels move, volatility changes): ratios of
errors to a scale measured *on the same months* are too tight (the held-out 95 % band then
covers ~87 % on the real-data suite). So the pool is built the way the intervals are used: each
series' scale is measured on the earlier third of its backtest months and the ratios are taken
on the later two thirds, so the quantile carries both the noise of the scale and its drift.
The final half-widths use the scale of every backtest month.

**The scale of now, not of three years.** A scale is a *recency-weighted* mean of the errors:
an error's weight halves every :data:`HALF_LIFE` months (one season) before the month the
scale is for (the backtest's last month for the final half-widths, the split for the earlier
scale of the pool, so both are measured the same way). A plain mean over a backtest of about
three years sits a year and a half behind the series: a growing series' bands were those of
its smaller past. Measured on the real-data suite (2026-12-03, against the plain mean): held-out
coverage pooled 80.4 / 93.8 / 98.4 -> 81.8 / 94.2 / 98.5 at 80 / 95 / 99, annual totals 75.0
-> 78.1 at 80, budget Brier 0.186 -> 0.179, (data set, level) pairs short of nominal - 5
16 -> 15 (their total shortfall 176 -> 151 points); half-lives of 6 and 24 months moved the
same way, more and less. On fpp3's us_employment, not used to choose, slightly the other way
(80 % coverage 72.5 -> 71.4, Brier 0.1596 -> 0.1608). (One-step monitoring keeps plain means:
weighted the same way, its clean false alarms fell 2.37 -> 2.28 % but its x0.6 shifts caught
39 -> 30 %.)

Series whose backtest is too short for the split (a few months of history past two seasons)
take their in-sample seasonal-naive scale (the MASE denominator) times the panel's typical
ratio of backtest scale to it; tiny panels (fewer than :data:`MIN_POOL` later ratios) pool
ratios to the scale the final half-widths use (the full-backtest one, or that fallback: a
panel whose every series is that short is still calibrated, on its few backtest months).

The backtest rows carry the bounds a series had with its earlier-months scale (later months
only), so their coverage per hierarchy level shows how the pooled quantile fits each level.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from forecasting.calendar import add_months, month_index_expr
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.backtest import horizon_profile
from forecasting.training.config import IntervalMethod
from forecasting.training.models import SEASON

__all__ = [
    "Calibration",
    "Intervals",
    "backtest_intervals",
    "chosen_rows",
    "covered",
    "coverage",
    "HALF_LIFE",
    "MIN_POOL",
    "MIN_TYPICAL",
]

_SIDES = (("lo", -1.0), ("hi", 1.0))

MIN_POOL = 200
"""Fewest later-months ratios for the split calibration (else: ratios to the full scale)."""
_MIN_EARLY = 6
"""Fewest earlier-months errors that make a series' earlier scale."""
_MIN_ROWS = 12
"""Fewest backtest errors that make a series' own scale (else the naive-scale fallback)."""
MIN_TYPICAL = 5
"""Fewest series with their own scale whose median ratio to the naive scale is the panel's
typical ratio (fewer: the fallback is the naive scale itself, a MASE of 1)."""
HALF_LIFE = SEASON
"""Months before a scale's month over which an error's weight in that scale halves."""


@dataclass(frozen=True)
class Calibration:
    """How the conformal half-widths were set (the sample paths reuse it).

    Attributes:
        profile: error growth per step ahead (mean 1).
        quantiles: level -> pooled quantile of scale-free errors.
        scales: series -> scale of its errors over every backtest month, weighted toward
            the last (or its fallback).
        early: series -> scale over the earlier third of its backtest months, weighted toward
            the split (split only).
        split: series -> last month of the earlier third (split only).
        measured: steps of ``profile`` measured on the backtest (the rest continue their
            growth: :func:`~forecasting.training.backtest.extend_profile`); 0: every step.
    """

    profile: np.ndarray
    quantiles: dict[int, float]
    scales: dict[str, float]
    early: dict[str, float]
    split: dict[str, dt.date]
    measured: int = 0

    @property
    def window_profile(self) -> np.ndarray:
        """The profile over the steps of a full backtest window (the measured ones)."""
        return self.profile[: self.measured or None]

    def halfwidths(self, unique_id: str, level: int) -> np.ndarray:
        """Half-width per step ahead of one series at ``level``."""
        return self.scales.get(unique_id, 0.0) * self.quantiles[level] * self.profile


@dataclass(frozen=True)
class Intervals:
    """Backtest rows with the bounds used, and what the final forecasts need of them.

    Attributes:
        backtest: ``unique_id, ds, cutoff, h, y, yhat, lo_L, hi_L`` of each chosen model.
        halfwidths: series -> level -> conformal half-width per step ahead.
        method: ``model`` or ``conformal``: the bounds the backtest calibrated best.
        calibration: the conformal calibration (scales, quantiles, profile).
    """

    backtest: pl.DataFrame
    halfwidths: dict[str, dict[int, np.ndarray]]
    method: str
    calibration: Calibration


def covered(level: int) -> pl.Expr:
    """Whether ``y`` lies within the ``lo_L`` and ``hi_L`` bounds of ``level``."""
    return (pl.col(TARGET_COL) >= pl.col(f"lo_{level}")) & (
        pl.col(TARGET_COL) <= pl.col(f"hi_{level}")
    )


def coverage(df: pl.DataFrame, level: int) -> float:
    """Share of the rows of ``df`` inside the bounds of ``level`` (0 when none has bounds)."""
    value = df.select(covered(level).mean()).item()
    return 0.0 if value is None else float(value)


def chosen_rows(cv: pl.DataFrame, chosen: dict[str, str], levels: list[int]) -> pl.DataFrame:
    """Backtest rows of each series' model (``chosen``: series -> model): ``yhat``, ``h`` and
    the model's bounds ``mlo_L``, ``mhi_L`` at ``levels`` (null for an ensemble or without
    model bounds)."""
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
                "h": pl.Int64,
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
    cv: pl.DataFrame,
    chosen: dict[str, str],
    levels: list[int],
    method: IntervalMethod,
    naive_scales: dict[str, float] | None = None,
    horizon: int | None = None,
) -> Intervals:
    """Chosen-model backtest rows with the interval bounds actually used.

    Args:
        cv: every model's backtest rows.
        chosen: series -> chosen model.
        levels: interval levels in percent.
        method: ``conformal`` or ``model`` bounds, or ``auto``: the models' own bounds where
            they exist if they calibrate better on the backtest than the conformal ones.
        naive_scales: series -> in-sample seasonal-naive mean absolute error (the fallback
            scale of series with too short a backtest; see the module docstring).
        horizon: the forecast horizon: half-widths cover it even when every backtest
            horizon was capped by short histories (default: the backtest's longest step).
    """
    bt = chosen_rows(cv, chosen, levels)
    model_cols = [f"m{s}_{lv}" for lv in levels for s, _ in _SIDES]
    profile = horizon_profile(bt, horizon)
    cal, halves = _calibrate(bt, profile, levels, naive_scales or {}, list(chosen))
    halfwidths = {u: {lv: cal.halfwidths(u, lv) for lv in levels} for u in cal.scales}
    conf = bt.with_columns(
        [
            (pl.col("yhat") + sign * pl.Series(values=halves[lv]).fill_nan(None)).alias(
                f"{side}_{lv}"
            )
            for lv in levels
            for side, sign in _SIDES
        ]
    )
    if bt.is_empty() or method == "conformal":
        return Intervals(conf.drop(model_cols), halfwidths, "conformal", cal)
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
    use_model = method == "model" or _miscalibration(
        model.filter(has_model), levels
    ) < _miscalibration(conf.filter(has_model), levels)
    if use_model:
        return Intervals(model.drop(model_cols), halfwidths, "model", cal)
    return Intervals(conf.drop(model_cols), halfwidths, "conformal", cal)


def _miscalibration(df: pl.DataFrame, levels: list[int]) -> float:
    """Mean absolute gap between the backtest coverage and the nominal level (0 if no row)."""
    if df.is_empty():
        return 0.0
    return float(np.mean([abs(coverage(df, lv) - lv / 100) for lv in levels]))


def _normalised(bt: pl.DataFrame, profile: np.ndarray) -> pl.DataFrame:
    """``bt`` with ``_n`` (absolute error / profile), ``_split``, ``_late`` and the row's
    weights in its series' final scale (``_w``) and earlier scale (``_we``) per row."""
    err = np.abs(bt[TARGET_COL].to_numpy() - bt["yhat"].to_numpy())
    df = bt.with_columns(pl.Series("_n", err / profile[bt["h"].to_numpy() - 1]))
    span = df.group_by(ID_COL).agg(
        pl.col(TIME_COL).min().alias("_first"), pl.col(TIME_COL).n_unique().alias("_months")
    )
    split = {u: add_months(first, max(1, months // 3) - 1) for u, first, months in span.iter_rows()}
    month = month_index_expr(pl.col(TIME_COL))
    return df.with_columns(
        pl.col(ID_COL).replace_strict(split, return_dtype=pl.Date).alias("_split")
    ).with_columns(
        (pl.col(TIME_COL) > pl.col("_split")).alias("_late"),
        _recency(month.max().over(ID_COL) - month).alias("_w"),
        _recency(month_index_expr(pl.col("_split")) - month).alias("_we"),
    )


def _recency(months_before: pl.Expr) -> pl.Expr:
    """Weight of an error ``months_before`` the month a scale is for (module docstring)."""
    return pl.lit(0.5) ** (months_before / HALF_LIFE)


def _weighted_mean(value: pl.Expr, weight: pl.Expr, where: pl.Expr) -> pl.Expr:
    """Weighted mean of ``value`` over the rows ``where`` holds."""
    return (value * weight).filter(where).sum() / weight.filter(where).sum()


def _calibrate(
    bt: pl.DataFrame,
    profile: np.ndarray,
    levels: list[int],
    naive_scales: dict[str, float],
    ids: list[str],
) -> tuple[Calibration, dict[int, np.ndarray]]:
    """The calibration and the backtest rows' half-widths per level (``bt``'s row order)."""
    empty = {lv: np.full(bt.height, np.nan) for lv in levels}
    if bt.is_empty():
        scales = _with_fallback({}, naive_scales, ids)
        q = {lv: np.inf if scales else 0.0 for lv in levels}
        return Calibration(profile, q, scales, {}, {}), empty
    measured = int(bt["h"].max())  # type: ignore[arg-type]
    df = _normalised(bt, profile)
    finite = pl.col("_n").is_finite()
    stats = df.group_by(ID_COL).agg(
        _weighted_mean(pl.col("_n"), pl.col("_w"), finite).alias("s"),
        _weighted_mean(pl.col("_n"), pl.col("_we"), ~pl.col("_late") & finite).alias("early"),
        (~pl.col("_late")).sum().alias("n_early"),
        pl.len().alias("n"),
        pl.col("_split").first(),
    )
    scale = {
        u: s
        for u, s, n in stats.select(ID_COL, "s", "n").iter_rows()
        if _usable(s) and n >= _MIN_ROWS
    }
    early = {
        u: s
        for u, s, n in stats.select(ID_COL, "early", "n_early").iter_rows()
        if _usable(s) and n >= _MIN_EARLY
    }
    uids, late, n = df[ID_COL].to_list(), df["_late"].to_numpy(), df["_n"].to_numpy()
    early_of = np.array([early.get(u, np.nan) for u in uids], dtype=np.float64)
    pool = (n / early_of)[late]
    split = dict(stats.select(ID_COL, "_split").iter_rows())
    scales = _with_fallback(scale, naive_scales, ids)
    if np.isfinite(pool).sum() >= MIN_POOL:
        q = {lv: _quantile(pool, lv) for lv in levels}
        row_scale = np.where(late, early_of, np.nan)
    else:  # a tiny panel: ratios to the scale the final half-widths use (own or fallback)
        row_scale = np.array([scales.get(u, np.nan) for u in uids], dtype=np.float64)
        q = {lv: _quantile(n / row_scale, lv) for lv in levels}
        early, split = {}, {}
    steps = profile[df["h"].to_numpy() - 1]
    base = row_scale * steps
    halves = {lv: base * q[lv] for lv in levels}
    return Calibration(profile, q, scales, early, split, measured), halves


def _usable(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value)) and value > 0


def _with_fallback(
    scale: dict[str, float], naive_scales: dict[str, float], ids: list[str]
) -> dict[str, float]:
    """Every series' scale: its own, or its naive scale times the panel's typical ratio.

    The typical ratio is a median over at least :data:`MIN_TYPICAL` series: the ratio of one
    long aggregate (smooth, far better than its naive forecast) or of a flat panel's total
    over series of different years made the bands of every short series in the panel a
    fraction of their errors (measured: 30-month windows of real series, 80 % bands covering
    1 % of the held-out months).
    """
    ratios = [scale[u] / naive_scales[u] for u in scale if _usable(naive_scales.get(u))]
    typical = float(np.median(ratios)) if len(ratios) >= MIN_TYPICAL else 1.0
    out = dict(scale)
    for u in ids:
        if u not in out and _usable(naive_scales.get(u)):
            out[u] = naive_scales[u] * typical
    return out


def _quantile(pool: np.ndarray, level: int) -> float:
    """Conformal quantile of ``pool`` at ``level`` % (finite-sample corrected; inf if empty)."""
    pool = pool[np.isfinite(pool)]
    if not pool.size:
        return np.inf
    q = min(1.0, np.ceil((pool.size + 1) * level / 100) / pool.size)
    return float(np.quantile(pool, q))
