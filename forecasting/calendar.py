"""Months: index arithmetic, month sequences and French working days (AutoARIMA's regressor).

A month is the first day of it (``dt.date(2024, 3, 1)``) or its *index*, the number of months
since year 0 (``2024 * 12 + 2``): indexes make month arithmetic plain integer arithmetic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache

import holidays
import numpy as np
import polars as pl

__all__ = [
    "WD_COL",
    "month_index",
    "month_index_expr",
    "month_of",
    "add_months",
    "months_after",
    "working_days",
    "working_days_frame",
]

WD_COL = "working_days"


def month_index(d: dt.date) -> int:
    """Months since year 0: ``2024-03-01`` -> ``2024 * 12 + 2``."""
    return d.year * 12 + d.month - 1


def month_index_expr(d: pl.Expr) -> pl.Expr:
    """:func:`month_index` of a polars date expression (Int64)."""
    return d.dt.year().cast(pl.Int64) * 12 + d.dt.month().cast(pl.Int64) - 1


def month_of(index: int) -> dt.date:
    """The first day of the month with this :func:`month_index`."""
    return dt.date(index // 12, index % 12 + 1, 1)


def add_months(d: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after ``d``'s (``n`` may be negative)."""
    return month_of(month_index(d) + n)


def months_after(last: dt.date, h: int) -> list[dt.date]:
    """The ``h`` months following ``last``'s month (first days)."""
    start = month_index(last)
    return [month_of(start + k) for k in range(1, h + 1)]


@cache
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
    nxt = add_months(first, 1)
    days = np.arange(np.datetime64(first), np.datetime64(nxt))
    return sum(1 for d in days.astype(dt.date) if d.weekday() < 5 and d not in fr)


def working_days_frame(months: Iterable[dt.date]) -> pl.DataFrame:
    """``ds, working_days`` for the given first-of-month dates (unique, sorted)."""
    uniq = sorted(set(months))
    return pl.DataFrame(
        {"ds": uniq, WD_COL: [float(working_days(d.year, d.month)) for d in uniq]},
        schema={"ds": pl.Date, WD_COL: pl.Float64},
    )
