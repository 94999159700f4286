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
from forecasting.monitoring.judge import detect, judge
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
    assert (flagged["status"] == "ANOMALY").all()
    assert ((flagged["y"] > flagged["hi"]) | (flagged["y"] < flagged["lo"])).all()


def test_detect_names_missing_column():
    with pytest.raises(InputError, match="'y'"):
        detect(pl.DataFrame({"unique_id": ["total"], "ds": [D(2024, 1, 1)]}), BUNDLE)
