"""Growth rates of a series, observed and projected, with intervals from the sample paths.

The Cnam's monthly spending note and the ONDAM speak in growth rates. For a month ``t`` of
monthly amounts ``x`` (percentages: 100 x (ratio - 1)):

* ``yoy_pct``, year on year ("glissement annuel"): ``x_t`` against ``x_(t-12)``;
* ``rolling_12m``, the rolling 12-month total ("année complète mobile"): the sum of the 12
  months ending at ``t``; ``rolling_12m_growth_pct`` against the 12 months ending a year
  earlier;
* ``ytd``, year to date: January to ``t``; ``ytd_growth_pct`` against January to the same
  month of the previous year ("PCAP", par rapport à la même période de l'année précédente);
* annual growth (:func:`annual_growth`): a calendar year's total against the previous year's.

Observed months are the training data. Projected months take the forecast means for the
point and the bundle's joint sample paths for the intervals: each path is one possible
future, every statistic is computed on every path (observed months are the same in all of
them) and the interval is the paths' quantiles. The growth of a projected month is thus
path value / the observed value a year earlier (or that month's path value when it is
projected too), and sums over months keep the months' dependence. A ratio whose base is not
positive, or that needs a month outside the data, is undefined (NaN, ``null`` in the API).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forecasting.calendar import month_index, month_of

__all__ = [
    "STATISTICS",
    "Timeline",
    "GrowthTable",
    "AnnualGrowth",
    "timeline",
    "growth_pct",
    "growth_table",
    "annual_growth",
]

STATISTICS: tuple[str, ...] = (
    "value",
    "yoy_pct",
    "rolling_12m",
    "rolling_12m_growth_pct",
    "ytd",
    "ytd_growth_pct",
)
"""The monthly statistics of a :class:`GrowthTable`, in order."""


@dataclass(frozen=True)
class Timeline:
    """A series' months from its first observed to its last projected one.

    Attributes:
        ds: every month (first days), consecutive.
        point: observed values, then the forecast means; NaN for a month neither observed
            nor projected (a gap).
        projected: True for the projected months.
        samples: ``(n_paths, len(ds))``: the observed values in every row, the sample paths
            on the projected months; ``None`` without paths.
    """

    ds: list[dt.date]
    point: np.ndarray
    projected: np.ndarray
    samples: np.ndarray | None = None


def timeline(
    history_ds: Sequence[dt.date],
    history_y: np.ndarray,
    forecast_ds: Sequence[dt.date],
    forecast_mean: np.ndarray,
    paths: np.ndarray | None = None,
) -> Timeline:
    """Join a series' history and forecast (months after the last observed one) into a timeline.

    Args:
        history_ds: training months, ascending.
        history_y: training values.
        forecast_ds: forecast months, ascending.
        forecast_mean: point forecasts.
        paths: ``(n_paths, len(forecast_ds))`` joint sample paths, or ``None``.
    """
    last_obs = month_index(history_ds[-1]) if len(history_ds) else None
    fc = [
        (month_index(d), i)
        for i, d in enumerate(forecast_ds)
        if last_obs is None or month_index(d) > last_obs
    ]
    idx = [month_index(d) for d in history_ds] + [m for m, _ in fc]
    if not idx:
        return Timeline([], np.empty(0), np.zeros(0, dtype=bool), None)
    first = min(idx)
    n = max(idx) - first + 1
    point = np.full(n, np.nan)
    projected = np.zeros(n, dtype=bool)
    hist_cols = np.array([month_index(d) - first for d in history_ds], dtype=np.int64)
    point[hist_cols] = np.asarray(history_y, dtype=np.float64)
    cols = np.array([m - first for m, _ in fc], dtype=np.int64)
    pos = np.array([i for _, i in fc], dtype=np.int64)
    point[cols] = np.asarray(forecast_mean, dtype=np.float64)[pos]
    projected[cols] = True
    samples = None
    if paths is not None and np.asarray(paths).size and cols.size:
        p = np.asarray(paths, dtype=np.float64)
        samples = np.tile(point, (p.shape[0], 1))
        samples[:, cols] = p[:, pos]
    return Timeline([month_of(first + k) for k in range(n)], point, projected, samples)


def growth_pct(num: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``100 (num / base - 1)``; NaN where ``base`` is not positive, either is NaN, or the
    ratio overflows."""
    num, base = np.asarray(num, dtype=np.float64), np.asarray(base, dtype=np.float64)
    ok = base > 0
    out = np.full(np.broadcast(num, base).shape, np.nan)
    with np.errstate(all="ignore"):
        np.divide(num, base, out=out, where=ok)
        pct = 100.0 * (out - 1.0)
    return np.where(ok & np.isfinite(pct), pct, np.nan)


def _lag12(x: np.ndarray) -> np.ndarray:
    """``x`` shifted 12 months later along the last axis (NaN for the first 12)."""
    out = np.full_like(x, np.nan)
    out[..., 12:] = x[..., :-12]
    return out


def _rolling_12m(x: np.ndarray) -> np.ndarray:
    """Sums of the 12 months ending at each month (NaN for the first 11 or across a gap)."""
    out = np.full_like(x, np.nan)
    if x.shape[-1] >= 12:
        out[..., 11:] = np.lib.stride_tricks.sliding_window_view(x, 12, axis=-1).sum(axis=-1)
    return out


def _ytd(x: np.ndarray, ds: Sequence[dt.date]) -> np.ndarray:
    """January-to-month sums; NaN in a year whose January is not in the timeline."""
    out = np.full_like(x, np.nan)
    years = np.array([d.year for d in ds])
    for year in np.unique(years):
        cols = np.flatnonzero(years == year)
        if ds[cols[0]].month == 1:
            out[..., cols] = np.cumsum(x[..., cols], axis=-1)
    return out


def _statistics(x: np.ndarray, ds: Sequence[dt.date]) -> dict[str, np.ndarray]:
    """Every statistic of :data:`STATISTICS` over the last axis of ``x``."""
    roll, ytd = _rolling_12m(x), _ytd(x, ds)
    return {
        "value": x,
        "yoy_pct": growth_pct(x, _lag12(x)),
        "rolling_12m": roll,
        "rolling_12m_growth_pct": growth_pct(roll, _lag12(roll)),
        "ytd": ytd,
        "ytd_growth_pct": growth_pct(ytd, _lag12(ytd)),
    }


def _intervals(
    values: np.ndarray, levels: Sequence[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Central intervals at each level over axis 0, ignoring undefined paths (NaN)."""
    probs = [p for lv in levels for p in ((100 - lv) / 200, 1 - (100 - lv) / 200)]
    if np.isfinite(values).all():
        q = np.quantile(values, probs, axis=0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            q = np.nanquantile(values, probs, axis=0)
    return {int(lv): (q[2 * i], q[2 * i + 1]) for i, lv in enumerate(levels)}


@dataclass
class GrowthTable:
    """A series' monthly statistics (see the module docstring), one value per month.

    Attributes:
        ds: the timeline's months.
        projected: True for projected months.
        values: statistic -> point values (NaN where undefined).
        intervals: statistic -> level -> ``(lo, hi)`` arrays; NaN on observed months.
        levels: the interval levels.
    """

    ds: list[dt.date]
    projected: np.ndarray
    values: dict[str, np.ndarray]
    intervals: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    levels: list[int] = field(default_factory=list)


def growth_table(tl: Timeline, levels: Sequence[int] = (80, 95)) -> GrowthTable:
    """Year-on-year, rolling 12-month and year-to-date figures of every month of ``tl``.

    Points come from the timeline's point values (observed, then forecast means); the
    intervals of projected months from the same statistics computed on every sample path.
    """
    values = _statistics(tl.point, tl.ds)
    table = GrowthTable(tl.ds, tl.projected, values, levels=[int(lv) for lv in levels])
    if tl.samples is None or not tl.projected.any():
        return table
    cols = np.flatnonzero(tl.projected)
    n = len(tl.ds)
    # the paths' statistics of the projected months need at most the 24 months before them,
    # from a January on (year to date): the rest of the history is left out
    start = max(0, int(cols[0]) - 24)
    start = max(0, start - (tl.ds[start].month - 1))
    per_path = _statistics(tl.samples[:, start:], tl.ds[start:])
    for name, sampled in per_path.items():
        table.intervals[name] = {}
        for lv, (q_lo, q_hi) in _intervals(sampled[:, cols - start], table.levels).items():
            lo, hi = np.full(n, np.nan), np.full(n, np.nan)
            lo[cols], hi[cols] = q_lo, q_hi
            table.intervals[name][lv] = (lo, hi)
    return table


@dataclass(frozen=True)
class AnnualGrowth:
    """A calendar year's total against the previous year's.

    Attributes:
        year: the year.
        total: its total (observed months plus forecast means).
        previous_total: the previous year's total.
        growth_pct: ``100 (total / previous_total - 1)``; NaN when the previous total is not
            positive.
        intervals: level -> ``(lo, hi)`` of the growth, from the paths (empty when the two
            years are observed).
        target_pct: the growth asked about, if any.
        prob_over_target: ``P(growth > target_pct)``, from the paths (0 or 1 when observed;
            ``None`` without a target, or for a projected year without paths).
    """

    year: int
    total: float
    previous_total: float
    growth_pct: float
    intervals: dict[int, tuple[float, float]] = field(default_factory=dict)
    target_pct: float | None = None
    prob_over_target: float | None = None


def annual_growth(
    tl: Timeline, year: int, levels: Sequence[int] = (80, 95), target_pct: float | None = None
) -> AnnualGrowth | None:
    """``year``'s growth over the previous year; ``None`` unless both years are fully known.

    Args:
        tl: the series' timeline.
        year: the calendar year.
        levels: interval levels in percent.
        target_pct: when given, ``P(growth > target_pct)`` is computed.
    """
    pos = {d: i for i, d in enumerate(tl.ds)}
    cols = [[pos.get(dt.date(y, m, 1)) for m in range(1, 13)] for y in (year, year - 1)]
    if any(c is None for c in cols[0] + cols[1]):
        return None
    now, before = (np.array(c, dtype=np.int64) for c in cols)
    total, prev = float(tl.point[now].sum()), float(tl.point[before].sum())
    if not (np.isfinite(total) and np.isfinite(prev)):
        return None
    point = float(growth_pct(np.array(total), np.array(prev)))
    if not (tl.projected[now].any() or tl.projected[before].any()):  # both years observed
        prob = None if target_pct is None else float(point > target_pct)
        return AnnualGrowth(year, total, prev, point, {}, target_pct, prob)
    if tl.samples is None:  # projected, without paths: no interval, no probability
        return AnnualGrowth(year, total, prev, point, {}, target_pct, None)
    paths = growth_pct(tl.samples[:, now].sum(axis=1), tl.samples[:, before].sum(axis=1))
    intervals = {
        lv: (float(lo[0]), float(hi[0]))
        for lv, (lo, hi) in _intervals(paths[:, None], levels).items()
    }
    prob = None if target_pct is None else float(np.mean(paths > target_pct))
    return AnnualGrowth(year, total, prev, point, intervals, target_pct, prob)
