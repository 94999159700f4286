"""Exceptional months adjusted before fitting: known events and robust outliers.

A lockdown month, a catch-up month or a one-off regularisation is real spending, but it says
nothing about the trend, the seasonality or the usual size of forecast errors; fitted as is,
it bends all three (the spring-2020 collapse and the 2021 catch-up of the French national
series pull its trend down and widen its intervals for years). So, for the candidates only,
each series' exceptional months are replaced by what the rest of the series implies, the way
R's ``forecast::tsclean`` does it:

1. a robust classical decomposition of the series (:func:`decompose`): trend = a centred
   13-month running median of the deseasonalised series, lightly smoothed; seasonal = the
   median of the detrended values of each calendar month (two rounds). STL spreads a spike
   into its calendar month's seasonal component, which then flags the same month of the
   neighbouring years, and a robust STL gives Gaussian noise a heavy-tailed remainder (4 % of
   months beyond 3 IQR). Measured on 300 simulated 8-year series per case (Gaussian noise,
   seasonal amplitude 0.4 to 30 noise sd): this decomposition flags 0.06-0.18 % of clean
   months, and finds an 8-sigma spike and a three-month 8-sigma dip in 95-99 % of cases
   (0.04-0.11 stray flags per series).
2. exceptional months: the known events of the data's calendar (:data:`EVENTS`, declared
   whatever their size) and, from :data:`MIN_DETECT` months of history, the months whose
   remainder lies more than :data:`IQR_FACTOR` inter-quartile ranges outside the remainder's
   quartiles (at most :data:`MAX_SHARE` of the months, largest first; never the last
   :data:`KEEP_LAST` months, where a decomposition cannot tell an outlier from a new level);
3. their seasonally adjusted value is interpolated linearly between the nearest ordinary
   months, and the seasonal component is added back.

The data keep their values (history, in-sample flags, the page); the adjustments are a table
(``unique_id, ds, y, adjusted, reason``) logged with the run and kept in the bundle, where
one-step monitoring refits on the same adjusted history.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.models import SEASON

__all__ = [
    "EVENTS",
    "IQR_FACTOR",
    "MAX_SHARE",
    "KEEP_LAST",
    "MIN_DETECT",
    "ADJUSTMENTS_SCHEMA",
    "adjust",
    "decompose",
]

EVENTS: dict[str, dict[dt.date, str]] = {
    "france": {
        dt.date(2020, 3, 1): "COVID-19: first lockdown (from 17 March 2020)",
        dt.date(2020, 4, 1): "COVID-19: first lockdown",
        dt.date(2020, 5, 1): "COVID-19: first lockdown (until 11 May 2020)",
    },
}
"""Known exceptional months per calendar (month -> what happened), adjusted whatever the data
say. Sources: décrets n° 2020-260 (16 March 2020) and n° 2020-548 (11 May 2020)."""

IQR_FACTOR = 3.5
MAX_SHARE = 0.05
KEEP_LAST = 2
SEASON_YEARS = 3
"""Years either side whose same calendar month makes a month's seasonal estimate."""
MIN_DETECT = 3 * SEASON
"""Fewest months for outlier detection (with two seasons the medians leave little remainder)."""

ADJUSTMENTS_SCHEMA = {
    ID_COL: pl.String,
    TIME_COL: pl.Date,
    TARGET_COL: pl.Float64,
    "adjusted": pl.Float64,
    "reason": pl.String,
}


def adjust(history: pl.DataFrame, country: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The history with its exceptional months adjusted, and the table of adjustments.

    Args:
        history: ``unique_id, ds, y`` (plus other columns, kept), sorted or not.
        country: the data's calendar (``france``) or None (outliers only, no known event).

    Returns:
        ``history`` with ``y`` adjusted (same rows and columns) and
        ``unique_id, ds, y, adjusted, reason`` (:data:`ADJUSTMENTS_SCHEMA`).
    """
    events = EVENTS.get(country or "", {})
    history = history.sort(ID_COL, TIME_COL)
    values, rows = [], []
    for part in history.partition_by(ID_COL, maintain_order=True):
        y = part[TARGET_COL].to_numpy().astype(np.float64)
        ds = part[TIME_COL].to_list()
        new, reasons = _adjust_one(y, [events.get(d) for d in ds])
        values.append(new)
        uid = part[ID_COL][0]
        rows += [
            {ID_COL: uid, TIME_COL: ds[i], TARGET_COL: y[i], "adjusted": new[i], "reason": why}
            for i, why in reasons.items()
        ]
    if not values:
        return history, pl.DataFrame(schema=ADJUSTMENTS_SCHEMA)
    adjusted = history.with_columns(pl.Series(TARGET_COL, np.concatenate(values)))
    return adjusted, pl.DataFrame(rows, schema=ADJUSTMENTS_SCHEMA)


def _adjust_one(y: np.ndarray, events: list[str | None]) -> tuple[np.ndarray, dict[int, str]]:
    """One series' adjusted values and ``index -> reason`` of the months adjusted."""
    n = y.size
    reasons = {i: f"event: {why}" for i, why in enumerate(events) if why is not None}
    if n < 2 * SEASON + 1 or not np.isfinite(y).all() or np.ptp(y) == 0:
        return y, {}
    logs = bool((y > 0).all())  # a multiplicative season is an additive one in logs
    x = np.log(y) if logs else y
    seasonal, rem = decompose(_filled(x, list(reasons)))
    if n >= MIN_DETECT:
        reasons |= _outliers(rem, reasons)
    if not reasons:
        return y, {}
    keep = np.ones(n, dtype=bool)
    keep[list(reasons)] = False
    idx = np.arange(n)
    sa = x - seasonal
    new = x.copy()
    new[~keep] = np.interp(idx[~keep], idx[keep], sa[keep]) + seasonal[~keep]
    new = np.exp(new) if logs else new
    new[keep] = y[keep]
    return (np.maximum(new, 0.0) if (y >= 0).all() else new), reasons


def decompose(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal component and remainder of a robust classical decomposition (period 12).

    Two rounds of: trend = centred 13-month running median (edges mirrored) of the series
    less its seasonal estimate, smoothed by a 3-month mean; seasonal = for each month, the
    median of the detrended values of the same calendar month within :data:`SEASON_YEARS`
    years either side (a seasonal pattern drifts over decades), centred per year.
    """
    half = SEASON // 2
    seasonal = np.zeros_like(y, dtype=np.float64)
    for _ in range(2):
        padded = np.pad(y - seasonal, half, mode="reflect")
        trend = np.median(np.lib.stride_tricks.sliding_window_view(padded, SEASON + 1), axis=1)
        trend = np.convolve(np.pad(trend, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        detrended = y - trend
        seasonal = _local_seasonal(detrended)
    return seasonal, detrended - seasonal


def _local_seasonal(detrended: np.ndarray) -> np.ndarray:
    """Per month, the median of the same calendar month's values within a few years."""
    n = detrended.size
    out = np.empty(n)
    reach = SEASON_YEARS * SEASON
    for i in range(n):
        same = detrended[max(i % SEASON, i - reach) : i + reach + 1 : SEASON]
        out[i] = np.median(same)
    # centre each year's pattern on zero (a moving 12-month mean of the pattern)
    padded = np.pad(out, SEASON // 2, mode="reflect")
    level = np.convolve(padded, np.ones(SEASON + 1) / (SEASON + 1), mode="valid")
    return out - level


def _outliers(rem: np.ndarray, events: dict[int, str]) -> dict[int, str]:
    """Months whose remainder is beyond :data:`IQR_FACTOR` IQR of its quartiles (bounded)."""
    n = rem.size
    ordinary = np.ones(n, dtype=bool)
    ordinary[list(events)] = False
    q1, q3 = np.quantile(rem[ordinary], [0.25, 0.75])
    iqr = q3 - q1
    if iqr <= 0:
        return {}
    far = np.maximum(q1 - IQR_FACTOR * iqr - rem, rem - q3 - IQR_FACTOR * iqr) / iqr
    far[n - KEEP_LAST :] = -np.inf
    far[~ordinary] = -np.inf
    picked = [int(i) for i in np.argsort(-far) if far[i] > 0][: max(1, int(MAX_SHARE * n))]
    return {
        i: f"outlier: remainder {IQR_FACTOR + far[i]:.1f} IQR outside its quartiles" for i in picked
    }


def _filled(y: np.ndarray, months: list[int]) -> np.ndarray:
    """``y`` with ``months`` replaced by the mean of the same month a year before and after."""
    out = y.copy()
    for i in months:
        near = [y[j] for j in (i - SEASON, i + SEASON) if 0 <= j < y.size and j not in months]
        out[i] = float(np.mean(near)) if near else y[i]
    return out
