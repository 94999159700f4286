"""Exceptional months adjusted before fitting: known events, robust outliers, never the end."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.training.adjust import EVENTS, KEEP_LAST, adjust

START = dt.date(2015, 1, 1)


def _series(y: np.ndarray, uid: str = "total/a") -> pl.DataFrame:
    ds = pl.date_range(START, dt.date(2040, 1, 1), "1mo", eager=True)[: y.size]
    return pl.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def _seasonal(n: int, seed: int = 0, noise: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.3 * t + 15 * np.sin(2 * np.pi * t / 12) + rng.normal(0, noise, n)


def test_clean_series_are_almost_always_left_alone() -> None:
    frames = [_series(_seasonal(96, seed), f"total/s{seed}") for seed in range(50)]
    history = pl.concat(frames)
    adjusted, table = adjust(history, None)
    assert table.height <= 0.005 * history.height  # Gaussian noise: ~0.1 % of months
    same = adjusted.join(history, on=["unique_id", "ds"]).filter(pl.col("y") == pl.col("y_right"))
    assert same.height == history.height - table.height


def test_a_spike_is_replaced_by_what_the_series_implies() -> None:
    y = _seasonal(96)
    clean = y.copy()
    y[40] += 80  # a one-off regularisation
    adjusted, table = adjust(_series(y), None)
    assert table["ds"].to_list() == [dt.date(2018, 5, 1)]
    assert table["reason"][0].startswith("outlier")
    new = adjusted["y"].to_numpy()
    assert abs(new[40] - clean[40]) < 10  # back near the seasonal pattern (noise sd 2)
    mask = np.arange(96) != 40
    assert np.array_equal(new[mask], y[mask])  # nothing else moved


def test_the_last_months_are_never_treated_as_outliers() -> None:
    y = _seasonal(96)
    y[-KEEP_LAST:] += 80  # a new level at the end, or an outlier: too early to tell
    history = _series(y)
    _, table = adjust(history, None)
    assert not set(table["ds"]) & set(history["ds"].tail(KEEP_LAST))
    assert table.height <= 1  # nor does the jump make the months before it look low


def test_known_events_are_adjusted_whatever_their_size() -> None:
    y = _seasonal(96, noise=1.0)
    lockdown = [i for i, d in enumerate(_series(y)["ds"]) if d in EVENTS["france"]]
    y[lockdown] *= 0.97  # a small dip: no outlier by itself
    _, none = adjust(_series(y), None)
    adjusted, table = adjust(_series(y), "france")
    assert none.height == 0
    assert sorted(table["ds"]) == sorted(EVENTS["france"])
    assert all(r.startswith("event: COVID-19") for r in table["reason"])
    assert adjusted.height == 96


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=80),
    scale=st.floats(min_value=1e-3, max_value=1e6),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_rows_and_signs_are_kept(n: int, scale: float, seed: int) -> None:
    y = np.abs(_seasonal(n, seed)) * scale
    history = _series(y)
    adjusted, table = adjust(history, "france")
    assert adjusted.height == history.height
    assert (adjusted["y"] >= 0).all()
    assert set(table["ds"]) <= set(history["ds"])
    changed = adjusted.join(history, on=["unique_id", "ds"]).filter(
        pl.col("y") != pl.col("y_right")
    )
    assert set(changed["ds"]) == set(table["ds"])


@pytest.mark.parametrize("n", [0, 10, 24])
def test_short_series_are_not_decomposed(n: int) -> None:
    adjusted, table = adjust(_series(_seasonal(n)), "france")
    assert table.height == 0 and adjusted.height == n
