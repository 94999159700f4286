"""forecasting.monitoring.growth: YoY, rolling 12 months, PCAP and annual growth, with paths."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.calendar import add_months
from forecasting.monitoring.growth import (
    STATISTICS,
    annual_growth,
    growth_pct,
    growth_table,
    timeline,
)
from forecasting.monitoring.projections import annual_projection


def _months(start: dt.date, n: int) -> list[dt.date]:
    return [add_months(start, k) for k in range(n)]


def _slow(ds: list[dt.date], x: list[float]) -> dict[str, list[float]]:
    """The statistics month by month, by their definitions (dates, not positions)."""
    val = dict(zip(ds, x, strict=True))

    def ratio(a: float, b: float) -> float:
        r = 100 * (a / b - 1) if b > 0 and not (math.isnan(a) or math.isnan(b)) else math.nan
        return r if math.isfinite(r) else math.nan

    def total(months: list[dt.date]) -> float:
        return sum(val[m] for m in months) if all(m in val for m in months) else math.nan

    out: dict[str, list[float]] = {name: [] for name in STATISTICS}
    for d in ds:
        year_ago = add_months(d, -12)
        last12 = [add_months(d, -k) for k in range(12)]
        ytd = [dt.date(d.year, m, 1) for m in range(1, d.month + 1)]
        ytd_before = [dt.date(d.year - 1, m, 1) for m in range(1, d.month + 1)]
        roll = total(last12)
        roll_before = total([add_months(m, -12) for m in last12])
        out["value"].append(val[d])
        out["yoy_pct"].append(ratio(val[d], val.get(year_ago, math.nan)))
        out["rolling_12m"].append(roll)
        out["rolling_12m_growth_pct"].append(ratio(roll, roll_before))
        out["ytd"].append(total(ytd))
        out["ytd_growth_pct"].append(ratio(total(ytd), total(ytd_before)))
    return out


@settings(max_examples=60, deadline=None)
@given(
    start_month=st.integers(1, 12),
    values=st.lists(
        st.one_of(st.floats(0.0, 1e6, allow_nan=False), st.floats(-10.0, 0.0)),
        min_size=1,
        max_size=60,
    ),
)
def test_observed_statistics_equal_a_slow_reference(start_month, values):
    ds = _months(dt.date(2019, start_month, 1), len(values))
    table = growth_table(timeline(ds, np.array(values), [], np.empty(0)))
    want = _slow(ds, values)
    for name in STATISTICS:
        np.testing.assert_allclose(table.values[name], want[name], rtol=1e-9, atol=1e-6)
    assert table.intervals == {} and not table.projected.any()


@settings(max_examples=40, deadline=None)
@given(
    start_month=st.integers(1, 12),
    n_hist=st.integers(1, 40),
    horizon=st.integers(1, 24),
    seed=st.integers(0, 2**16),
)
def test_projected_intervals_equal_the_quantiles_of_each_paths_statistics(
    start_month, n_hist, horizon, seed
):
    rng = np.random.default_rng(seed)
    ds = _months(dt.date(2019, start_month, 1), n_hist + horizon)
    y = rng.uniform(-5, 100, n_hist)
    mean = rng.uniform(-5, 100, horizon)
    paths = mean + rng.normal(0, 10, (7, horizon))
    table = growth_table(timeline(ds[:n_hist], y, ds[n_hist:], mean, paths), levels=(60,))
    per_path = [_slow(ds, [*y, *p]) for p in paths]
    for name in STATISTICS:
        lo, hi = table.intervals[name][60]
        for k in range(n_hist, n_hist + horizon):
            vals = np.array([pp[name][k] for pp in per_path])
            if np.isnan(vals).all():
                assert np.isnan(lo[k]) and np.isnan(hi[k])
                continue
            want = np.nanquantile(vals, [0.2, 0.8])
            assert (lo[k], hi[k]) == pytest.approx(tuple(want), rel=1e-9, abs=1e-9), (name, k)


HIST = _months(dt.date(2021, 1, 1), 40)  # 2021-01 .. 2024-04
FC = _months(dt.date(2024, 5, 1), 12)  # 2024-05 .. 2025-04
RNG = np.random.default_rng(7)
HY = 100 + 10 * np.sin(np.arange(40)) + RNG.normal(0, 2, 40)
MEAN = np.full(12, 104.0)
PATHS = MEAN + RNG.normal(0, 6, (500, 12))


def test_projected_yoy_interval_is_path_over_the_observed_month_a_year_earlier():
    table = growth_table(timeline(HIST, HY, FC, MEAN, PATHS), levels=(80, 95))
    k = len(HIST)  # first projected month: 2024-05, a year after 2023-05 (observed)
    assert table.projected[k] and not table.projected[k - 1]
    base = HY[HIST.index(dt.date(2023, 5, 1))]
    assert table.values["yoy_pct"][k] == pytest.approx(100 * (MEAN[0] / base - 1))
    lo, hi = table.intervals["yoy_pct"][95]
    want = np.quantile(100 * (PATHS[:, 0] / base - 1), [0.025, 0.975])
    assert (lo[k], hi[k]) == pytest.approx(tuple(want))
    # the rolling total of 2024-08 sums 8 observed months and 4 projected ones on each path
    j = k + 3
    paths_roll = HY[-8:].sum() + PATHS[:, :4].sum(axis=1)
    lo, hi = table.intervals["rolling_12m"][80]
    assert (lo[j], hi[j]) == pytest.approx(tuple(np.quantile(paths_roll, [0.1, 0.9])))
    # observed months carry no interval
    assert np.isnan(table.intervals["yoy_pct"][80][0][: len(HIST)]).all()


def test_a_projected_base_is_taken_on_the_same_path():
    fc = _months(dt.date(2024, 5, 1), 24)
    mean = np.full(24, 100.0)
    paths = mean + RNG.normal(0, 5, (300, 24))
    table = growth_table(timeline(HIST, HY, fc, mean, paths), levels=(90,))
    t = len(HIST) + 12  # 2025-05, against 2024-05 (projected)
    lo, hi = table.intervals["yoy_pct"][90]
    want = np.quantile(100 * (paths[:, 12] / paths[:, 0] - 1), [0.05, 0.95])
    assert (lo[t], hi[t]) == pytest.approx(tuple(want))


def _antithetic(mean: np.ndarray, scale: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Paths symmetric around ``mean`` (each draw and its mirror)."""
    return np.vstack([mean + scale * z, mean - scale * z])


@settings(max_examples=40, deadline=None)
@given(
    n_hist=st.integers(13, 48),
    horizon=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    spread=st.floats(0.001, 0.3),
    level=st.sampled_from([50, 80, 95, 99]),
)
def test_growth_intervals_contain_the_point_growth(n_hist, horizon, seed, spread, level):
    rng = np.random.default_rng(seed)
    ds = _months(dt.date(2019, 1 + seed % 12, 1), n_hist + horizon)
    y = rng.uniform(50, 150, n_hist)
    mean = rng.uniform(50, 150, horizon)
    paths = _antithetic(mean, spread * mean, rng.standard_normal((100, horizon)))
    table = growth_table(timeline(ds[:n_hist], y, ds[n_hist:], mean, paths), levels=(level,))
    for name in STATISTICS:
        lo, hi = table.intervals[name][level]
        point = table.values[name]
        ok = table.projected & np.isfinite(point)
        assert (lo[ok] <= point[ok] + 1e-9 * np.abs(point[ok]) + 1e-9).all(), name
        assert (point[ok] <= hi[ok] + 1e-9 * np.abs(point[ok]) + 1e-9).all(), name


def test_non_positive_bases_and_gaps_are_undefined():
    np.testing.assert_array_equal(
        growth_pct(
            np.array([1.0, 1.0, 2.0, np.nan, 1e300]), np.array([0.0, -1.0, 1.0, 1.0, 1e-300])
        ),
        [np.nan, np.nan, 100.0, np.nan, np.nan],
    )
    ds = _months(dt.date(2020, 1, 1), 30)
    keep = [d for d in ds if d != dt.date(2020, 6, 1)]  # a gap
    table = growth_table(timeline(keep, np.ones(len(keep)), [], np.empty(0)))
    assert len(table.ds) == 30
    assert np.isnan(table.values["yoy_pct"][17])  # 2021-06 against the gap
    assert table.values["yoy_pct"][18] == 0.0
    assert np.isnan(table.values["rolling_12m"][5:17]).all()


YEAR_HIST = _months(dt.date(2022, 1, 1), 27)  # 2022-01 .. 2024-03
YEAR_FC = _months(dt.date(2024, 4, 1), 12)
YEAR_Y = RNG.uniform(90, 110, 27)
YEAR_MEAN = np.full(12, 103.0)
YEAR_PATHS = YEAR_MEAN + RNG.normal(0, 8, (400, 12))


def _annual(year: int, **kw):
    return annual_projection(
        year,
        history_ds=YEAR_HIST,
        history_y=YEAR_Y,
        forecast_ds=YEAR_FC,
        forecast_mean=YEAR_MEAN,
        paths=YEAR_PATHS,
        levels=(80, 95),
        **kw,
    )


def test_annual_growth_matches_the_projected_total_and_the_budget_probability():
    p = _annual(2024, target_growth=2.0)
    g = p.growth
    assert g is not None
    prev = YEAR_Y[12:24].sum()
    assert g.previous_total == pytest.approx(prev)
    assert g.total == pytest.approx(p.total)
    assert g.growth_pct == pytest.approx(100 * (p.total / prev - 1))
    lo80, hi80 = g.intervals[80]
    lo95, hi95 = g.intervals[95]
    assert lo95 <= lo80 <= g.growth_pct <= hi80 <= hi95
    # with the previous year observed, growth > t  <=>  total > prev (1 + t/100)
    budget = _annual(2024, budget=prev * 1.02)
    assert g.prob_over_target == pytest.approx(budget.prob_over_budget)
    # the total's interval, mapped to growth, is the growth's interval
    lo, hi = p.intervals[95]
    assert (lo95, hi95) == pytest.approx((100 * (lo / prev - 1), 100 * (hi / prev - 1)))


def test_annual_growth_of_observed_years_and_uncovered_ones():
    g = _annual(2023, target_growth=0.0).growth
    assert g is not None and g.intervals == {}
    assert g.growth_pct == pytest.approx(100 * (YEAR_Y[12:24].sum() / YEAR_Y[:12].sum() - 1))
    assert g.prob_over_target == float(g.growth_pct > 0)
    assert _annual(2022).growth is None  # 2021 is not in the data
    tl = timeline(YEAR_HIST, YEAR_Y, YEAR_FC, YEAR_MEAN, YEAR_PATHS)
    assert annual_growth(tl, 2026) is None


@settings(max_examples=50, deadline=None)
@given(targets=st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=8))
def test_probability_of_exceeding_a_target_falls_as_the_target_rises(targets):
    tl = timeline(YEAR_HIST, YEAR_Y, YEAR_FC, YEAR_MEAN, YEAR_PATHS)
    probs = []
    for t in sorted(targets):
        g = annual_growth(tl, 2024, target_pct=t)
        assert g is not None and g.prob_over_target is not None
        assert 0.0 <= g.prob_over_target <= 1.0
        probs.append(g.prob_over_target)
    assert all(a >= b for a, b in zip(probs, probs[1:], strict=False))


def test_forecast_months_inside_the_history_are_ignored():
    tl = timeline(HIST, HY, [HIST[-1], *FC[:2]], np.array([1e9, 1.0, 2.0]))
    assert len(tl.ds) == len(HIST) + 2
    assert tl.point[len(HIST) - 1] == HY[-1]
    assert list(tl.point[-2:]) == [1.0, 2.0] and tl.projected.sum() == 2


def test_a_projected_year_without_paths_has_no_interval_nor_probability():
    tl = timeline(YEAR_HIST, YEAR_Y, YEAR_FC, YEAR_MEAN, None)
    g = annual_growth(tl, 2024, target_pct=1.0)
    assert g is not None and g.intervals == {} and g.prob_over_target is None
    assert g.growth_pct == pytest.approx(
        100 * ((YEAR_Y[24:].sum() + YEAR_MEAN[:9].sum()) / YEAR_Y[12:24].sum() - 1)
    )
    table = growth_table(tl)
    assert table.intervals == {} and table.projected.sum() == 12
