"""French working days per month: the exogenous regressor of AutoARIMA (known in advance)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import holidays
import numpy as np
import polars as pl

__all__ = ["working_days", "working_days_frame", "WD_COL"]

WD_COL = "working_days"


def working_days(year: int, month: int) -> int:
    """Mondays to Fridays of the month that are not French public holidays.

    Args:
        year: calendar year.
        month: 1..12.

    Returns:
        The number of working days.
    """
    fr = holidays.France(years=year)
    first = dt.date(year, month, 1)
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    days = np.arange(np.datetime64(first), np.datetime64(nxt))
    return sum(1 for d in days.astype(dt.date) if d.weekday() < 5 and d not in fr)


def working_days_frame(months: Iterable[dt.date]) -> pl.DataFrame:
    """``ds, working_days`` for the given first-of-month dates (unique, sorted)."""
    uniq = sorted(set(months))
    return pl.DataFrame(
        {"ds": uniq, WD_COL: [float(working_days(d.year, d.month)) for d in uniq]},
        schema={"ds": pl.Date, WD_COL: pl.Float64},
    )
