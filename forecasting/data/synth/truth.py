"""The underlying truth: complete monthly amounts per category and care month, and its lags.

Amounts are integer cents (acts are counts): trend, yearly seasonality, working days, GP fee
rises, the spring-2020 lockdown, noise and a few injected anomalies; each care month is then
split over processing lags 0..:data:`MAX_LAG` with :data:`LAG_SHARES`, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forecasting.calendar import month_of, working_days
from forecasting.data.synth.categories import Category, categories

__all__ = [
    "MAX_LAG",
    "UNKNOWN_CARE_SHARE",
    "LAG_SHARES",
    "Amounts",
    "Truth",
    "build_truth",
    "lag_allocation",
]

MAX_LAG = 24
UNKNOWN_CARE_SHARE = 0.09
"""Share of a processing month's amount with an unknown care month (Open DAMIR only)."""

_CUMULATIVE = {0: 0.583, 1: 0.870, 2: 0.936, 3: 0.961, 4: 0.972, 6: 0.983, 9: 0.991, 12: 0.995}


def _lag_shares() -> tuple[float, ...]:
    known = sorted(_CUMULATIVE)
    cum = np.interp(np.arange(13), known, [_CUMULATIVE[k] for k in known])
    shares = list(np.diff(np.concatenate([[0.0], cum])))
    tail = 0.75 ** np.arange(MAX_LAG - 12)
    shares += list((1.0 - cum[-1]) * tail / tail.sum())
    return tuple(float(s) for s in shares)


LAG_SHARES: tuple[float, ...] = _lag_shares()
"""Paid share of a care month by processing lag 0..24 (sums to 1)."""

_REF_MONTH = 2024 * 12  # January 2024: calibration month
_REF_TOTAL_EUR = 13.0e9 * (1.0 - UNKNOWN_CARE_SHARE)  # complete care month Jan 2024, all categories
_SEASON = np.array([1.02, 0.99, 1.03, 1.0, 0.98, 1.0, 0.97, 0.84, 1.0, 1.04, 1.0, 0.92])
_GP_FEES = ((2017 * 12 + 4, 25.0), (2023 * 12 + 10, 26.5), (2024 * 12 + 11, 30.0))
_COVID = {2020 * 12 + 2: 0.80, 2020 * 12 + 3: 0.62, 2020 * 12 + 4: 0.86, 2020 * 12 + 5: 0.97}
_COVID_IJ = {2020 * 12 + 2: 1.25, 2020 * 12 + 3: 1.35, 2020 * 12 + 4: 1.10}


@dataclass(frozen=True)
class Amounts:
    """Reimbursed cents, presented cents and acts: integer arrays of one shape."""

    rem: NDArray[np.int64]
    pai: NDArray[np.int64]
    acts: NDArray[np.int64]

    def map(self, fn: Callable[[NDArray[np.int64]], Any]) -> Amounts:
        """The same function applied to each of the three arrays."""
        return Amounts(fn(self.rem), fn(self.pai), fn(self.acts))


@dataclass(frozen=True)
class Truth:
    """The truth of a run: categories, care months, amounts and their split over lags.

    Attributes:
        cats: the bottom categories.
        care_months: month indexes from ``MAX_LAG`` months before the first processing month.
        amounts: complete amounts, shape (category, care month), anomalies included.
        anomalies: the injected (category index, care month index, factor).
        lags: ``amounts`` split over lags, shape (category, care month, lag).
    """

    cats: tuple[Category, ...]
    care_months: NDArray[np.int64]
    amounts: Amounts
    anomalies: list[tuple[int, int, float]]
    lags: Amounts


def build_truth(fmt: str, first: int, last: int, seed: int) -> Truth:
    """The truth for processing months ``first..last`` (month indexes) of a format."""
    cats = categories(fmt)
    care_months = np.arange(first - MAX_LAG, last + 1, dtype=np.int64)
    anomalies = _anomalies(cats, first, last, seed)
    amounts = _inject(_truth_cents(cats, care_months, seed), anomalies, int(care_months[0]))
    return Truth(cats, care_months, amounts, anomalies, amounts.map(lag_allocation))


def _gp_fee_factor(index: int) -> float:
    fee = 23.0
    for start, value in _GP_FEES:
        if index >= start:
            fee = value
    return 0.35 + 0.65 * fee / 23.0


def _truth_cents(cats: tuple[Category, ...], months: NDArray[np.int64], seed: int) -> Amounts:
    """Complete (reimbursed, presented, acts) per category and care month, before anomalies."""
    n_cat, n_month = len(cats), len(months)
    rem = np.zeros((n_cat, n_month), dtype=np.int64)
    pai = np.zeros_like(rem)
    acts = np.zeros_like(rem)
    days = [month_of(int(m)) for m in months]
    wd = np.array([working_days(d.year, d.month) for d in days], dtype=float)
    wd_ref = 20.9
    for k, cat in enumerate(cats):
        params = np.random.default_rng([seed, 7, k])
        growth = float(0.03 + 0.012 * params.standard_normal())
        for j, m in enumerate(months):
            noise = np.random.default_rng([seed, 11, k, int(m)]).standard_normal(3)
            moy = int(m) % 12
            season = 1.0 + cat.seasonality * (_SEASON[moy] - 1.0)
            value = (
                _REF_TOTAL_EUR
                * cat.share
                * math.exp(growth * (int(m) - _REF_MONTH) / 12.0)
                * season
                * (wd[j] / wd_ref) ** cat.working_days
                * math.exp(0.02 * noise[0])
            )
            if cat.famille == "generalistes":
                value *= _gp_fee_factor(int(m)) / _gp_fee_factor(_REF_MONTH)
            covid = _COVID_IJ if cat.famille == "indemnites-journalieres" else _COVID
            value *= covid.get(int(m), 1.0)
            cents = round(value * 100)
            rem[k, j] = cents
            pai[k, j] = round(cents * cat.presented_ratio * (1.0 + 0.004 * noise[1]))
            acts[k, j] = max(1, round(value / cat.unit_cost * (1.0 + 0.01 * noise[2])))
    return Amounts(rem, pai, acts)


def _anomalies(
    cats: tuple[Category, ...], first: int, last: int, seed: int
) -> list[tuple[int, int, float]]:
    """A few (category index, care month index, factor) to inject."""
    rng = np.random.default_rng([seed, 13])
    big = [k for k, c in enumerate(cats) if c.share >= 0.01]
    lo = first + 12 if last - first >= 18 else first
    hi = max(lo, last - 1)
    factors = (0.7, 1.4, 0.8, 1.25)
    out: list[tuple[int, int, float]] = []
    used: set[tuple[int, int]] = set()
    for factor in factors:
        k = int(rng.choice(big))
        month = int(rng.integers(lo, hi + 1))
        if (k, month) in used:
            continue
        used.add((k, month))
        out.append((k, month, factor))
    return out


def _inject(amounts: Amounts, anomalies: list[tuple[int, int, float]], first_care: int) -> Amounts:
    """The amounts with each anomaly's factor applied to its (category, care month)."""
    rem, pai, acts = amounts.rem.copy(), amounts.pai.copy(), amounts.acts.copy()
    for k, month, factor in anomalies:
        j = month - first_care
        rem[k, j] = round(rem[k, j] * factor)
        pai[k, j] = round(pai[k, j] * factor)
        acts[k, j] = max(1, round(acts[k, j] * factor))
    return Amounts(rem, pai, acts)


def lag_allocation(total: NDArray[np.int64], shares: tuple[float, ...] = LAG_SHARES) -> Any:
    """Split integer totals over lags in proportion to ``shares`` (largest remainder).

    Args:
        total: integer amounts (any shape).
        shares: paid share per lag (sums to 1).

    Returns:
        An int64 array of shape ``total.shape + (len(shares),)`` whose last axis sums to
        ``total`` exactly.
    """
    t = np.asarray(total, dtype=np.int64)
    w = np.asarray(shares, dtype=float)
    w = w / w.sum()
    raw = t[..., None].astype(float) * w
    base = np.floor(raw).astype(np.int64)
    left = t - base.sum(axis=-1)
    order = np.argsort(-(raw - base), axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    return base + (rank < left[..., None]).astype(np.int64)
