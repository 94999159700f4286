"""forecasting.monitoring.forecast: the per-series lookup of a bundle, path intervals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from forecasting.monitoring.forecast import index_bundle, interval_from_paths
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


def test_interval_from_paths_nests():
    paths = np.random.default_rng(0).normal(size=(500, 3))
    lo80, hi80 = interval_from_paths(paths, 80)
    lo95, hi95 = interval_from_paths(paths, 95)
    assert (lo95 <= lo80).all() and (hi80 <= hi95).all()


def test_stored_forecast_is_frozen_and_the_index_lists_children():
    s = LOOKUP["total/a"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mean = np.zeros(12)  # type: ignore[misc]
    assert LOOKUP.children == {
        "total": ["total/a", "total/b"],
        "total/a": ["total/a/x", "total/a/y"],
        "total/b": ["total/b/z"],
    }
    assert set(LOOKUP.conditioners) == set(LOOKUP) == set(IDS)


def test_paths_give_intervals_at_untrained_levels_and_nothing_is_cached():
    s = LOOKUP["total"]
    lo50, hi50 = s.interval(50)
    np.testing.assert_array_equal(lo50, interval_from_paths(s.paths, 50)[0])
    assert (lo50 <= hi50).all() and 50 not in s.bounds
