"""forecasting.monitoring.calibration: tail scores (vs a slow reference), conformal widths."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.calendar import add_months
from forecasting.monitoring.calibration import (
    calibrate,
    normal_tail_probability,
    tail_probability,
)
from forecasting.monitoring.judgement import judge_insample
from tests.service.synthetic import IDS, make_bundle


def _slow_tail(y: float, samples: np.ndarray) -> float:
    n = len(samples)
    below = sum(1 for s in samples if s < y)
    equal = sum(1 for s in samples if s == y)
    cdf = (below + 0.5 * equal + 0.5) / (n + 1)
    return min(1.0, 2 * min(cdf, 1 - cdf))


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
    y=st.floats(-2e6, 2e6),
)
def test_tail_probability_matches_slow_loop_and_is_a_probability(samples, y):
    arr = np.asarray(samples)
    p = tail_probability(y, samples=arr)
    assert 0 < p <= 1
    assert p == pytest.approx(_slow_tail(y, arr))


@settings(max_examples=40, deadline=None)
@given(
    mean=st.floats(-1e3, 1e3),
    half=st.floats(0.1, 1e3),
    y=st.floats(-1e4, 1e4),
)
def test_normal_score_is_monotone_in_distance(mean, half, y):
    p = tail_probability(y, mean=mean, lo=mean - half, hi=mean + half, level=95)
    farther = tail_probability(
        y + math.copysign(10, y - mean), mean=mean, lo=mean - half, hi=mean + half, level=95
    )
    assert 0 <= farther <= p <= 1
    edge = tail_probability(mean + half, mean=mean, lo=mean - half, hi=mean + half, level=95)
    assert edge == pytest.approx(0.05, abs=1e-9)  # the bound of the 95 % interval


@pytest.mark.parametrize(
    ("y", "mean", "lo", "hi", "expected"),
    [
        (5.0, 5.0, 5.0, 5.0, 1.0),  # a zero-width interval, the value on it
        (6.0, 5.0, 5.0, 5.0, 1e-300),  # off it: the smallest score, never 0
        (4.0, 5.0, 5.0, 5.0, 1e-300),
        (4.0, 5.0, 6.0, 7.0, 1e-300),  # an inverted lower side
        (5.0, 5.0, 4.0, 6.0, 1.0),  # on the expectation
        (1e12, 5.0, 4.0, 6.0, 1e-300),  # far out: floored, never 0
    ],
)
def test_normal_score_is_never_zero(y, mean, lo, hi, expected):
    p = normal_tail_probability(y, mean, lo, hi, 95)
    assert p == expected
    assert tail_probability(y, mean=mean, lo=lo, hi=hi, level=95) == p


def test_insample_scores_are_the_normal_score_row_by_row():
    ins = make_bundle(seed=3).insample
    out = judge_insample(ins, level=80)
    for r in out.head(40).iter_rows(named=True):
        assert r["score"] == normal_tail_probability(r["y"], r["expected"], r["lo"], r["hi"], 80)


def test_insample_scores_a_zero_width_interval_like_detect():
    ins = make_bundle(seed=3).insample.head(2)
    flat = ins.with_columns(
        pl.col("fitted").alias("lo_80"),
        pl.col("fitted").alias("hi_80"),
        pl.Series("y", [ins["fitted"][0], ins["fitted"][1] + 1.0]),
    )
    out = judge_insample(flat, level=80)
    assert out["score"].to_list() == [1.0, 1e-300]
    assert out["status"].to_list() == ["EXPECTED", "ANOMALY"]


def test_conformal_half_widths_grow_with_level_and_step():
    cal = calibrate(make_bundle(seed=1))
    assert all(cal.covers(u) for u in IDS) and not cal.covers("nope")
    assert cal.half_width("nope", 95, 0) is None
    h80, h95 = cal.half_width("total", 80, 0), cal.half_width("total", 95, 0)
    assert h80 is not None and h95 is not None and 0 < h80 < h95
    later = cal.half_width("total", 95, 5)
    assert later is not None and later >= h95
    assert math.isfinite(later) and np.isfinite(cal.profile).all()


def _backtest(n_series: int, cutoffs: int, seed: int) -> pl.DataFrame:
    """One-step backtest rows: ``p*`` series positive with errors proportional to the level
    (a strong season), ``s*`` series crossing zero with additive errors."""
    rng = np.random.default_rng(seed)
    rows = []
    start = dt.date(2015, 1, 1)
    for i in range(n_series):
        positive = i % 2 == 0
        for c in range(cutoffs):
            month = add_months(start, c + 1)
            season = 1 + 0.8 * math.sin(2 * math.pi * c / 12)
            yhat = 200 * season if positive else 50 * math.sin(2 * math.pi * c / 12)
            noise = rng.normal()
            y = yhat * (1 + 0.1 * noise) if positive else yhat + 10 * noise
            rows.append((f"{'p' if positive else 's'}{i}", month, add_months(start, c), 1, y, yhat))
    return pl.DataFrame(rows, schema=["unique_id", "ds", "cutoff", "h", "y", "yhat"], orient="row")


def test_positive_series_get_bounds_relative_to_their_expectation():
    bundle = make_bundle(seed=1)
    bt = _backtest(24, 30, seed=3)
    cal = calibrate(
        dataclasses.replace(bundle, backtest=bt.cast({"ds": pl.Date, "cutoff": pl.Date}))
    )
    positive = {u for u in bt["unique_id"].unique() if u.startswith("p")}
    assert cal.relative == positive
    one, two = cal.half_width("p0", 99, 0, 100.0), cal.half_width("p0", 99, 0, 200.0)
    assert one is not None and two == pytest.approx(2 * one)
    assert cal.half_width("p0", 99, 0) is None  # a relative width needs the expectation
    flat = cal.half_width("s1", 99, 0, 100.0)
    assert flat is not None and cal.half_width("s1", 99, 0, 5.0) == flat
    # a relative 99 % bound of a 10 % noise: about 2.6 sd, not a width set by the peaks
    assert 0.2 < one / 100.0 < 0.35, one
