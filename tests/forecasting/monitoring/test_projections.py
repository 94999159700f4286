"""forecasting.monitoring.projections: annual totals, intervals from paths, P(total > budget)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.errors import InputError
from forecasting.monitoring.projections import annual_projection


def _months(start: dt.date, n: int) -> list[dt.date]:
    return [
        dt.date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1)
        for i in range(n)
    ]


HIST = _months(dt.date(2021, 1, 1), 40)  # to 2024-04
FC = _months(dt.date(2024, 5, 1), 12)  # 2024-05 .. 2025-04
RNG = np.random.default_rng(5)
HY = RNG.uniform(90, 110, len(HIST))
MEAN = np.full(12, 100.0)
PATHS = 100 + RNG.normal(0, 10, (400, 12))


def _proj(year, **kw):
    return annual_projection(
        year, history_ds=HIST, history_y=HY, forecast_ds=FC, forecast_mean=MEAN, paths=PATHS, **kw
    )


def test_mixed_year_adds_observed_and_projected():
    p = _proj(2024, levels=(80, 95), budget=1200)
    assert (p.months_observed, p.months_projected) == (4, 8)
    assert p.observed_total == pytest.approx(HY[36:40].sum())
    assert p.projected_total == pytest.approx(800)
    assert p.total == pytest.approx(p.observed_total + 800)
    totals = p.observed_total + PATHS[:, :8].sum(axis=1)
    assert p.prob_over_budget == pytest.approx((totals > 1200).mean())
    lo80, hi80 = p.intervals[80]
    lo95, hi95 = p.intervals[95]
    assert lo95 <= lo80 <= hi80 <= hi95
    assert [m.source for m in p.months] == ["observed"] * 4 + ["projected"] * 8
    assert [m.ds.month for m in p.months] == list(range(1, 13))


def test_past_year_is_observed_only():
    p = _proj(2022, budget=0)
    assert p.complete and p.intervals == {} and p.prob_over_budget == 1.0
    assert p.total == pytest.approx(HY[12:24].sum())


@pytest.mark.parametrize(("year", "match"), [(2019, "outside"), (2025, "forecasts only")])
def test_uncovered_years_are_refused(year, match):
    with pytest.raises(InputError, match=match) as err:
        _proj(year)
    assert err.value.column == "year"


def test_no_paths_means_no_interval():
    p = annual_projection(
        2024,
        history_ds=HIST,
        history_y=HY,
        forecast_ds=FC,
        forecast_mean=MEAN,
        paths=None,
        budget=10,
    )
    assert p.intervals == {} and p.prob_over_budget is None


@settings(max_examples=40, deadline=None)
@given(budget=st.floats(0, 3000), shift=st.floats(0, 100))
def test_probability_is_monotone_in_budget(budget, shift):
    lower = _proj(2024, budget=budget).prob_over_budget
    higher = _proj(2024, budget=budget + shift).prob_over_budget
    assert 0 <= higher <= lower <= 1
