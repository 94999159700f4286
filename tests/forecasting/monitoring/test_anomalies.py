"""forecasting.monitoring.judge: statuses, bounds, scores (vs a slow reference), in-sample flags."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.errors import InputError
from forecasting.monitoring.judge import (
    detect,
    index_bundle,
    interval_from_paths,
    judge,
    judge_insample,
    tail_probability,
)
from tests.service.synthetic import IDS, make_bundle

BUNDLE = make_bundle(seed=11)
LOOKUP = index_bundle(BUNDLE)


def test_index_matches_bundle_forecast():
    for uid in IDS:
        ref = BUNDLE.forecast([uid])
        s = LOOKUP[uid]
        assert s.ds == ref["ds"].to_list()
        np.testing.assert_allclose(s.mean, ref["mean"].to_numpy())
        np.testing.assert_allclose(s.bounds[95][1], ref["hi_95"].to_numpy())
        assert s.paths.shape == (200, 12)
        assert len(s.history_ds) == 36


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


def test_interval_from_paths_nests():
    paths = np.random.default_rng(0).normal(size=(500, 3))
    lo80, hi80 = interval_from_paths(paths, 80)
    lo95, hi95 = interval_from_paths(paths, 95)
    assert (lo95 <= lo80).all() and (hi80 <= hi95).all()


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
    assert (flagged["status"] == "ANOMALY").all()
    assert ((flagged["y"] > flagged["hi"]) | (flagged["y"] < flagged["lo"])).all()


def test_detect_names_missing_column():
    with pytest.raises(InputError, match="'y'"):
        detect(pl.DataFrame({"unique_id": ["total"], "ds": [D(2024, 1, 1)]}), BUNDLE)


def test_judge_insample_counts_outside_points():
    ins = BUNDLE.insample.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(pl.col("hi_95") + 1)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    out = judge_insample(ins, level=95, unique_id="total/a")
    one = ins.filter(pl.col("unique_id") == "total/a")
    outside = ((one["y"] < one["lo_95"]) | (one["y"] > one["hi_95"])).sum()
    assert out.height == 36 and outside > 0 and out["is_anomaly"].sum() == outside
    assert out.filter(pl.col("is_anomaly"))["score"].max() <= 0.05 + 1e-9
    assert out.filter(~pl.col("is_anomaly"))["score"].min() >= 0.05 - 1e-9
    with pytest.raises(InputError, match="level 42"):
        judge_insample(BUNDLE.insample, level=42)
