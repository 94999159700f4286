"""forecasting.monitoring.judge: statuses, bounds, scores, every row kept in order."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.errors import InputError
from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.judge import INTERMITTENT_ADI, detect, judge, on_support
from tests.service.synthetic import IDS, make_bundle

BUNDLE = make_bundle(seed=11)
LOOKUP = index_bundle(BUNDLE)


D = dt.date


@pytest.mark.parametrize(
    ("uid", "ds", "y", "status", "direction"),
    [
        ("total", D(2024, 1, 1), None, "EXPECTED", None),
        ("total", D(2024, 1, 20), "hi*3", "ANOMALY", "above"),
        ("total/b/z", D(2024, 12, 1), "lo/3", "ANOMALY", "below"),
        ("total", D(2023, 12, 1), 1.0, "OUT_OF_HORIZON", None),
        ("total", D(2025, 1, 1), 1.0, "OUT_OF_HORIZON", None),
        ("nope", D(2024, 1, 1), 1.0, "UNKNOWN_SERIES", None),
        ("total", D(2024, 1, 1), math.inf, "INSUFFICIENT_DATA", None),
    ],
)
def test_statuses(uid, ds, y, status, direction):
    s = LOOKUP.get(uid)
    if isinstance(y, str) or y is None:
        k = s.step(ds)
        y = {None: s.mean[k], "hi*3": s.bounds[99][1][k] * 3, "lo/3": s.bounds[99][0][k] / 3}[y]
    (j,) = judge([(uid, ds, float(y))], LOOKUP)
    assert (j.status, j.direction) == (status, direction)
    assert j.ds.day == 1 and j.level == 99
    assert j.is_anomaly == (status == "ANOMALY")
    if status in ("ANOMALY", "EXPECTED"):
        assert j.lo <= j.expected <= j.hi and 0 < j.score <= 1


def test_short_history_is_insufficient():
    short = index_bundle(make_bundle(seed=11, short="total/a/x"))
    (j,) = judge([("total/a/x", D(2024, 1, 1), 1e9)], short)
    assert j.status == "INSUFFICIENT_DATA" and not j.is_anomaly and j.expected is not None


def test_level_not_trained_needs_paths_or_residuals():
    b = make_bundle(seed=1)
    b.paths = np.empty((len(IDS), 0, 12), dtype=np.float32)
    b.insample = b.insample.clear()  # no one-step residuals: only the stored levels
    lookup = index_bundle(b)
    with pytest.raises(InputError, match="level 50"):
        judge([("total", D(2024, 1, 1), 1.0)], lookup, level=50)
    (j,) = judge([("total", D(2024, 1, 1), 1.0)], lookup, level=80)
    assert j.status == "ANOMALY" and 0 <= j.score < 0.2  # normal approximation, far below


def test_conformal_bounds_at_any_level_nest():
    b = make_bundle(seed=1)
    b.paths = np.empty((len(IDS), 0, 12), dtype=np.float32)
    lookup = index_bundle(b)
    obs = [("total", D(2024, 1, 1), 1.0)]
    (j50,) = judge(obs, lookup, level=50)
    (j90,) = judge(obs, lookup, level=90)
    assert j90.lo < j50.lo < j50.expected < j50.hi < j90.hi


@settings(max_examples=30, deadline=None)
@given(
    obs=st.lists(
        st.tuples(
            st.sampled_from([*IDS, "zz"]),
            st.integers(0, 15),
            st.floats(-1e5, 1e5, allow_nan=False),
        ),
        max_size=30,
    ),
    level=st.sampled_from([80, 95, 99, 60]),
)
def test_detect_keeps_every_row_in_order(obs, level):
    frame = pl.DataFrame(
        {
            "unique_id": [o[0] for o in obs],
            "ds": [D(2023 + (10 + o[1]) // 12, (10 + o[1]) % 12 + 1, 1) for o in obs],
            "y": [o[2] for o in obs],
        },
        schema={"unique_id": pl.String, "ds": pl.Date, "y": pl.Float64},
    )
    out = detect(frame, BUNDLE, level=level)
    assert out.height == frame.height
    assert out["unique_id"].to_list() == frame["unique_id"].to_list()
    flagged = out.filter(pl.col("is_anomaly"))
    # a flag is an anomaly outside its bounds, or the month that completes a lasting shift
    # (three months on one side of a series, the last possibly inside its bounds)
    assert set(flagged["status"]) <= {"ANOMALY", "LEVEL_SHIFT"}
    anomalies = flagged.filter(pl.col("status") == "ANOMALY")
    assert ((anomalies["y"] > anomalies["hi"]) | (anomalies["y"] < anomalies["lo"])).all()
    assert (
        flagged.filter(pl.col("status") == "LEVEL_SHIFT")["level_shift_since"].is_not_null().all()
    )


def test_detect_names_missing_column():
    with pytest.raises(InputError, match="'y'"):
        detect(pl.DataFrame({"unique_id": ["total"], "ds": [D(2024, 1, 1)]}), BUNDLE)


def test_a_never_negative_series_is_never_bounded_below_zero():
    """``on_support``: clipped at zero; the order lo <= expected <= hi kept."""
    history = np.array([0.0, 3.0, 5.0, 4.0, 6.0, 5.0, 7.0, 6.0])
    assert on_support(history, -2.0, -9.0, 4.0, 99) == (0.0, 0.0, 4.0)
    assert on_support(history, -5.0, -9.0, -1.0, 99) == (0.0, 0.0, 0.0)
    assert on_support(history, 5.0, 2.0, 8.0, 99) == (5.0, 2.0, 8.0)  # inside: unchanged
    signed = np.array([3.0, -1.0, 5.0, 4.0])
    assert on_support(signed, -2.0, -9.0, 4.0, 99) == (-2.0, -9.0, 4.0)
    assert on_support(np.array([]), -2.0, -9.0, 4.0, 99) == (-2.0, -9.0, 4.0)


def test_an_intermittent_series_may_be_zero_and_reach_its_history():
    history = np.array([0.0, 0.0, 40.0, 0.0, 0.0, 5000.0, 0.0, 120.0])  # 3 non-zero in 8
    assert len(history) / np.count_nonzero(history) >= INTERMITTENT_ADI
    mean, lo, hi = on_support(history, 300.0, 280.0, 320.0, 99)
    assert (mean, lo) == (300.0, 0.0) and hi == pytest.approx(np.quantile(history, 0.99))
    regular = np.array([10.0, 0.0, 12.0, 11.0, 13.0, 12.0, 15.0, 14.0])  # 7 non-zero in 8
    assert on_support(regular, 12.0, 11.0, 13.0, 99) == (12.0, 11.0, 13.0)


@given(
    history=st.lists(st.floats(0, 1e6), min_size=1, max_size=40),
    mean=st.floats(-1e6, 1e6),
    widths=st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)),
    level=st.sampled_from([80, 95, 99]),
)
def test_bounds_on_the_support_keep_their_order(history, mean, widths, level):
    lo, hi = mean - widths[0], mean + widths[1]
    m, a, b = on_support(np.array(history), mean, lo, hi, level)
    assert 0.0 <= a <= m <= b
    assert b >= hi  # never narrower above
    assert (m, a, b) == (mean, lo, hi) or min(lo, mean) < 0 or a == 0.0


def test_a_zero_month_of_an_intermittent_series_is_no_anomaly():
    b = make_bundle(seed=11)
    uid = "total/a/x"
    months = b.history.filter(pl.col("unique_id") == uid)["ds"].sort()
    bursts = set(months[::4].to_list())  # one month in four is non-zero
    b.history = b.history.with_columns(
        pl.when((pl.col("unique_id") == uid) & ~pl.col("ds").is_in(list(bursts)))
        .then(0.0)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    lookup = index_bundle(b)
    values = b.history.filter(pl.col("unique_id") == uid)["y"]
    top, typical = float(values.max()), float(values.filter(values > 0).median())
    zero, burst, huge = judge(
        [(uid, D(2024, 1, 1), 0.0), (uid, D(2024, 2, 1), typical), (uid, D(2024, 3, 1), 10 * top)],
        lookup,
    )
    assert zero.status == "EXPECTED" and zero.lo == 0.0
    assert burst.status == "EXPECTED"
    assert huge.status == "ANOMALY" and huge.direction == "above"
    (smooth,) = judge([("total/a/y", D(2024, 1, 1), 0.0)], lookup)  # not intermittent
    assert smooth.status == "ANOMALY" and smooth.direction == "below"
