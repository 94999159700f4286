"""Annual projections: observed-to-date plus projected months, from history and sample paths.

Pure functions over arrays (no I/O). A calendar year's total is the sum of the months the
training data already holds plus, for the remaining months, the forecast: the point total
uses the forecast means, the interval and ``P(total > budget)`` use the sample paths summed
month by month (the paths are joint draws, so the sum keeps the months' dependence).
A year fully observed answers observed totals only (no interval, probability 0 or 1).
The year's growth over the previous year and ``P(growth > target)`` come from the same
paths (:func:`forecasting.monitoring.growth.annual_growth`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from forecasting.errors import InputError
from forecasting.monitoring.forecast import interval_from_paths
from forecasting.monitoring.growth import AnnualGrowth, annual_growth, timeline

__all__ = ["MonthValue", "AnnualProjection", "annual_projection"]


@dataclass(frozen=True)
class MonthValue:
    """One month of a projection: ``source`` is ``observed`` or ``projected``."""

    ds: dt.date
    value: float
    source: Literal["observed", "projected"]
    lo: float | None = None
    hi: float | None = None


@dataclass
class AnnualProjection:
    """A calendar year's total for one series.

    Attributes:
        year: the calendar year.
        observed_total: sum of the observed months.
        projected_total: sum of the forecast means over the projected months.
        total: ``observed_total + projected_total``.
        months_observed: how many months come from the training data.
        months_projected: how many months come from the forecast.
        intervals: ``level -> (lo, hi)`` of the total, from the sample paths.
        budget: the budget asked about, if any.
        prob_over_budget: ``P(total > budget)``, if a budget was given.
        months: month-by-month detail.
        growth: the year's growth over the previous year (``None`` unless both years are
            fully covered), with ``P(growth > target)`` when a target was given.
    """

    year: int
    observed_total: float
    projected_total: float
    total: float
    months_observed: int
    months_projected: int
    intervals: dict[int, tuple[float, float]] = field(default_factory=dict)
    budget: float | None = None
    prob_over_budget: float | None = None
    months: list[MonthValue] = field(default_factory=list)
    growth: AnnualGrowth | None = None

    @property
    def complete(self) -> bool:
        """True when every month of the year is observed."""
        return self.months_projected == 0


def annual_projection(
    year: int,
    *,
    history_ds: Sequence[dt.date],
    history_y: np.ndarray,
    forecast_ds: Sequence[dt.date],
    forecast_mean: np.ndarray,
    paths: np.ndarray | None,
    levels: Sequence[int] = (80, 95),
    budget: float | None = None,
    target_growth: float | None = None,
) -> AnnualProjection:
    """Project a calendar year's total for one series.

    Args:
        year: the calendar year.
        history_ds: training months (first of month), ascending.
        history_y: training values.
        forecast_ds: forecast months, ascending, starting after the last training month.
        forecast_mean: point forecasts.
        paths: ``(n_paths, horizon)`` joint sample paths, or ``None`` (no interval).
        levels: interval levels in percent for the total.
        budget: when given, ``P(total > budget)`` is computed.
        target_growth: a growth rate in percent; when given, ``P(growth > target_growth)``.

    Raises:
        InputError: (column ``year``) when the year is neither observed nor within the
            forecast horizon, or is only partly covered by the two.
    """
    hist = {d: float(v) for d, v in zip(history_ds, history_y, strict=True)}
    fc_pos = {d: i for i, d in enumerate(forecast_ds)}
    observed, projected = _split_year(year, hist, fc_pos, forecast_ds)
    obs_total = float(sum(hist[d] for d in observed))
    idx = np.array([fc_pos[d] for d in projected], dtype=np.int64)
    mean = np.asarray(forecast_mean, dtype=np.float64)
    proj_total = float(mean[idx].sum()) if idx.size else 0.0
    total = obs_total + proj_total
    detail = [MonthValue(d, hist[d], "observed") for d in observed]
    result = AnnualProjection(
        year=year,
        observed_total=obs_total,
        projected_total=proj_total,
        total=total,
        months_observed=len(observed),
        months_projected=len(projected),
        budget=budget,
        growth=annual_growth(
            timeline(history_ds, history_y, forecast_ds, forecast_mean, paths),
            year,
            levels,
            target_growth,
        ),
    )
    if not idx.size:
        result.months = detail
        if budget is not None:
            result.prob_over_budget = float(total > budget)
        return result
    if paths is not None and paths.size:
        sub = np.asarray(paths, dtype=np.float64)[:, idx]
        _total_from_paths(result, obs_total + sub.sum(axis=1), levels, budget)
        m_lo, m_hi = interval_from_paths(sub, max(levels) if levels else 95)
        detail += [
            MonthValue(d, float(mean[i]), "projected", float(m_lo[j]), float(m_hi[j]))
            for j, (d, i) in enumerate(zip(projected, idx, strict=True))
        ]
    else:
        detail += [
            MonthValue(d, float(mean[i]), "projected") for d, i in zip(projected, idx, strict=True)
        ]
    result.months = sorted(detail, key=lambda m: m.ds)
    return result


def _split_year(
    year: int,
    hist: dict[dt.date, float],
    fc_pos: dict[dt.date, int],
    forecast_ds: Sequence[dt.date],
) -> tuple[list[dt.date], list[dt.date]]:
    """The year's observed and projected months; :class:`InputError` when not covered."""
    months = [dt.date(year, m, 1) for m in range(1, 13)]
    last_obs = max(hist) if hist else None
    observed = [d for d in months if d in hist]
    projected = [d for d in months if d not in hist and d in fc_pos]
    if last_obs is not None:
        projected = [d for d in projected if d > last_obs]
    first_hist = min(hist) if hist else None
    uncovered = [
        d
        for d in months
        if d not in hist
        and d not in fc_pos
        and not (first_hist is not None and d < first_hist)  # series started mid-year
    ]
    if not observed and not projected:
        span = (
            f"{first_hist:%Y-%m} to {forecast_ds[-1]:%Y-%m}" if first_hist and forecast_ds else ""
        )
        raise InputError(
            f"year {year} is outside the data and the forecast horizon",
            column="year",
            hint=f"ask for a year within {span}" if span else None,
        )
    if uncovered:
        raise InputError(
            f"year {year} needs months up to {uncovered[-1]:%Y-%m} but the model forecasts "
            f"only to {forecast_ds[-1]:%Y-%m}"
            if forecast_ds
            else f"year {year} is not covered",
            column="year",
            hint="ask for an earlier year or train with a longer horizon",
        )
    return observed, projected


def _total_from_paths(
    result: AnnualProjection, totals: np.ndarray, levels: Sequence[int], budget: float | None
) -> None:
    """Intervals of the total and ``P(total > budget)`` from the paths' annual totals."""
    for lv in levels:
        alpha = (100 - lv) / 200
        lo, hi = np.quantile(totals, [alpha, 1 - alpha])
        result.intervals[int(lv)] = (float(lo), float(hi))
    if budget is not None:
        result.prob_over_budget = float(np.mean(totals > budget))
