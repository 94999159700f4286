"""Working-day and seasonally adjusted series ("CJO-CVS"), computed once per series and load.

Method, per series (:func:`adjust`):

1. **Extension.** The observed months are followed by the forecast means, so the last
   observed months are not estimated from one side only (the role of X-13's extension by
   ARIMA forecasts); the projected months get adjusted values too.
2. **Scale.** Multiplicative (on logarithms) when every value is positive, else additive.
3. **Working days** (only when the data's calendar is French: Open DAMIR and legacy tables,
   :func:`forecasting.data.codes.coded_source`). The regressor is the month's number of
   French working days (:func:`forecasting.calendar.working_days`) minus its mean for that
   calendar month over 2000-2039, so it carries no seasonality. A first STL decomposition
   (period 12, statsforecast's ``mstl``) gives the remainder ``r``; the working-day
   coefficient is the least-squares slope of ``r`` on the regressor (through the origin);
   the working-day adjusted series ("CJO") is the series minus coefficient x regressor.
4. **Seasonal adjustment** ("CVS"): STL again, on the working-day adjusted series, minus its
   seasonal component.

Compared with the X-13-ARIMA-SEATS that INSEE and the Cnam use, this is simpler: one
working-day regressor (X-13 estimates day-of-week effects, Easter and each public holiday
in a RegARIMA model), no outlier detection or correction (additive outliers, level shifts
and transitory changes are left in the series, and STL's robustness weights are not used
for the regression), the extension uses the served model's forecasts instead of an ARIMA
model fitted for the purpose, and STL's seasonal smoothing stands for X-11's moving-average
filters or SEATS' model-based ones. Figures therefore differ from the published CJO-CVS
series, mostly around holidays and breaks; they are revised, like X-13's, as months come in.
"""

from __future__ import annotations

import datetime as dt
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np

from forecasting.calendar import working_days
from forecasting.data.codes import coded_source
from forecasting.monitoring.forecast import SeriesForecast
from forecasting.monitoring.growth import Timeline, growth_pct, timeline

__all__ = [
    "MIN_MONTHS",
    "METHOD",
    "Adjustment",
    "Adjustments",
    "adjust",
    "adjust_all",
    "french_calendar",
    "working_day_regressor",
]

MIN_MONTHS = 36
"""Fewest months (observed plus projected) a series needs to be adjusted."""
METHOD = "STL (period 12) after a French working-day regression"
_REFERENCE_YEARS = range(2000, 2040)


@dataclass(frozen=True)
class Adjustment:
    """A series adjusted for working days and seasonality (see the module docstring).

    Attributes:
        ds: months of the series' timeline (observed, then projected).
        projected: True for projected months.
        value: adjusted values (all NaN when ``available`` is False).
        mom_pct: month-on-month growth of ``value`` in percent.
        yoy_pct: year-on-year growth of ``value`` in percent.
        available: False when the series cannot be adjusted (``note`` says why).
        working_days: True when the working-day correction was applied.
        working_day_effect: the estimated effect of one more working day in a month, in
            percent (multiplicative) or in units of the series (additive); ``None`` without
            the correction.
        multiplicative: True when adjusted on logarithms.
        note: how it was done, or why not.
    """

    ds: list[dt.date]
    projected: np.ndarray
    value: np.ndarray
    mom_pct: np.ndarray
    yoy_pct: np.ndarray
    available: bool
    working_days: bool
    working_day_effect: float | None
    multiplicative: bool
    note: str


def french_calendar(source: str) -> bool:
    """True when a model's data (its ``source``) follows the French calendar."""
    return coded_source(source)


@cache
def _mean_working_days() -> tuple[float, ...]:
    """Mean working days of each calendar month over the reference years."""
    return tuple(
        float(np.mean([working_days(y, m) for y in _REFERENCE_YEARS])) for m in range(1, 13)
    )


def working_day_regressor(ds: list[dt.date]) -> np.ndarray:
    """Working days of each month minus that calendar month's long-run mean."""
    mean = _mean_working_days()
    return np.array([working_days(d.year, d.month) - mean[d.month - 1] for d in ds], dtype=float)


def _seasonal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STL (period 12) seasonal component and remainder of ``z``."""
    from statsforecast.mstl import mstl  # statsmodels: seconds to import, kept off the start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = mstl(z, 12)
    return parts["seasonal"].to_numpy(), parts["remainder"].to_numpy()


def _unavailable(tl: Timeline, note: str) -> Adjustment:
    nan = np.full(len(tl.ds), np.nan)
    return Adjustment(tl.ds, tl.projected, nan, nan, nan, False, False, None, False, note)


def adjust(tl: Timeline, *, french: bool) -> Adjustment:
    """The working-day (when ``french``) and seasonally adjusted series of a timeline."""
    x = tl.point
    if len(x) < MIN_MONTHS:
        return _unavailable(tl, f"needs at least {MIN_MONTHS} months, has {len(x)}")
    if not np.isfinite(x).all():
        return _unavailable(tl, "the series has a gap")
    multiplicative = bool((x > 0).all())
    z = np.log(x) if multiplicative else x.copy()
    coef: float | None = None
    if french:
        d = working_day_regressor(tl.ds)
        _, remainder = _seasonal(z)
        coef = float(remainder @ d / (d @ d)) if d @ d > 0 else 0.0
        z = z - coef * d
    seasonal, _ = _seasonal(z)
    sa = np.exp(z - seasonal) if multiplicative else z - seasonal
    prev, lag12 = np.full_like(sa, np.nan), np.full_like(sa, np.nan)
    prev[1:], lag12[12:] = sa[:-1], sa[:-12]
    if coef is not None and multiplicative:
        coef = 100.0 * float(np.expm1(coef))
    scale = "multiplicative" if multiplicative else "additive"
    note = (
        f"{METHOD} ({scale})"
        if french
        else f"STL (period 12, {scale}); no working-day correction: the data's calendar "
        "is not known to be French"
    )
    return Adjustment(
        tl.ds,
        tl.projected,
        sa,
        growth_pct(sa, prev),
        growth_pct(sa, lag12),
        True,
        french,
        coef,
        multiplicative,
        note,
    )


class Adjustments(Mapping[str, Adjustment]):
    """Every series' adjustment, computed at its first use and then kept (thread-safe).

    The service builds one per model load; its warm-up thread fills it after the model is
    ready (:meth:`fill`), so a start does not wait for it and requests seldom do.
    """

    def __init__(self, series: Mapping[str, SeriesForecast], source: str) -> None:
        self._series = series
        self._french = french_calendar(source)
        self._done: dict[str, Adjustment] = {}
        self._lock = threading.Lock()

    def __getitem__(self, unique_id: str) -> Adjustment:
        hit = self._done.get(unique_id)
        if hit is not None:
            return hit
        s = self._series[unique_id]
        with self._lock:
            if unique_id not in self._done:
                tl = timeline(s.history_ds, s.history_y, s.ds, s.mean)
                self._done[unique_id] = adjust(tl, french=self._french)
        return self._done[unique_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def fill(self, cancel: threading.Event | None = None) -> int:
        """Compute every series' adjustment now (stops once ``cancel`` is set); how many."""
        n = 0
        for uid in self._series:
            if cancel is not None and cancel.is_set():
                break
            self[uid]
            n += 1
        return n


def adjust_all(series: Mapping[str, SeriesForecast], source: str) -> Adjustments:
    """Every series' adjustment, each computed at its first use; ``source`` is the model's
    data source (the working-day correction applies to French calendars only)."""
    return Adjustments(series, source)
