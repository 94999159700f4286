"""Conformal half-widths: a series' scale is the size of its errors now, not their average."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from forecasting.calendar import add_months
from forecasting.training.intervals import HALF_LIFE, backtest_intervals

_H, _WINDOWS = 12, 25


def _backtest(sizes: dict[str, np.ndarray]) -> pl.DataFrame:
    """Backtest rows (25 cutoffs a month apart, 12 steps) whose absolute error in the i-th
    backtest month is ``sizes[u][i]``, with alternating signs."""
    start = dt.date(2015, 1, 1)
    rows = []
    for u, size in sizes.items():
        for w in range(_WINDOWS):
            cutoff = add_months(start, w)
            for h in range(1, _H + 1):
                i = w + h - 1  # month index within the backtest
                rows.append((u, add_months(cutoff, h), cutoff, 100.0 + size[i] * (-1) ** i, 100.0))
    return pl.DataFrame(
        rows, schema=["unique_id", "ds", "cutoff", "y", "M"], orient="row"
    ).with_columns(pl.col("ds", "cutoff").cast(pl.Date))


def _scales(sizes: dict[str, np.ndarray]) -> dict[str, float]:
    cv = _backtest(sizes)
    out = backtest_intervals(cv, dict.fromkeys(sizes, "M"), [80], "conformal")
    return out.calibration.scales


def test_a_series_whose_errors_grew_gets_the_wider_band() -> None:
    """Same errors, in opposite orders: the series whose errors grew (a growing series) is
    banded by its recent size, the one whose errors shrank by its recent size; a plain mean
    would give both the same width."""
    months = _WINDOWS + _H - 1
    growing = np.linspace(1.0, 3.0, months)
    scales = _scales({"grew": growing, "shrank": growing[::-1]})
    plain = float(growing.mean())
    assert scales["grew"] > plain * 1.05  # 2.20 against 2.0
    assert scales["shrank"] < plain / 1.05  # 1.80
    assert scales["grew"] > 1.15 * scales["shrank"]


@pytest.mark.parametrize("size", [0.5, 7.0])
def test_errors_of_one_size_give_that_size_whatever_the_weights(size: float) -> None:
    months = _WINDOWS + _H - 1
    scales = _scales({"a": np.full(months, size), "b": np.full(months, 2 * size)})
    assert scales["a"] == pytest.approx(size)
    assert scales["b"] == pytest.approx(2 * size)


def test_an_error_half_life_ago_weighs_half() -> None:
    """One large error in a month, or in the month ``HALF_LIFE`` months earlier: its pull on
    the scale halves (every other month's error is 1). Both months lie in 12 windows, once at
    each step ahead, so they have as many rows and the step profile stays flat."""
    months = _WINDOWS + _H - 1

    def pull(at: int) -> float:
        size = np.ones(months)
        size[at] = 101.0
        return _scales({"x": size, "ref": np.ones(months)})["x"] - 1.0

    later, earlier = pull(_WINDOWS - 1), pull(_WINDOWS - 1 - HALF_LIFE)
    assert earlier / later == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("long_series", [1, 4, 5, 8])
def test_a_short_series_takes_the_typical_ratio_of_several_long_ones(long_series: int) -> None:
    """Long series with a full backtest (errors 0.1 x their naive scale of 10) and short ones
    without (no backtest rows; naive scale 50): the short ones' scale is their naive scale
    times the median ratio of the long ones only when there are ``MIN_TYPICAL`` of them; one
    smooth aggregate (or a flat panel's total over series of different years) does not make
    every short series' band a tenth of its errors."""
    from forecasting.training.intervals import MIN_TYPICAL

    months = _WINDOWS + _H - 1
    sizes = {f"long{i}": np.full(months, 1.0 + 0.1 * i) for i in range(long_series)}
    cv = _backtest(sizes)
    naive = {u: 10.0 for u in sizes} | {"short0": 50.0, "short1": 80.0}
    chosen = dict.fromkeys([*sizes, "short0", "short1"], "M")
    scales = backtest_intervals(cv, chosen, [80], "conformal", naive).calibration.scales
    ratios = sorted(scales[u] / 10.0 for u in sizes)
    typical = float(np.median(ratios)) if long_series >= MIN_TYPICAL else 1.0
    assert scales["short0"] == pytest.approx(50.0 * typical)
    assert scales["short1"] == pytest.approx(80.0 * typical)
