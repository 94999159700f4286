"""Execution engines: the same statsforecast calls whatever spreads the work."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from forecasting.errors import SpendcastError
from forecasting.training.engines import LocalEngine, _chunks, open_engine, run_cv
from forecasting.training.hierarchy import aggregate_panel
from tests.panels import make_panel


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
def test_chunks_keep_whole_series_in_order(n: int) -> None:
    panel, meta = make_panel(n_fam=2, n_exe=3, months=24)
    y, _ = aggregate_panel(panel, meta)
    parts = _chunks(y, n)
    assert len(parts) <= n
    assert_frame_equal(pl.concat(parts), y)
    ids = [set(p["unique_id"]) for p in parts]
    assert sum(len(s) for s in ids) == y["unique_id"].n_unique()


def test_local_engine_runs_the_kernels() -> None:
    panel, meta = make_panel(n_fam=1, n_exe=2, months=48)
    y, _ = aggregate_panel(panel, meta)
    with LocalEngine() as engine:
        cv = engine.cross_validation(y, "SeasonalNaive", horizon=4, windows=3, step=2, levels=[80])
        fc, fitted = engine.forecast(y, "SeasonalNaive", horizon=5, levels=[80])
    expected, _ = run_cv(y, "SeasonalNaive", horizon=4, windows=3, step=2, levels=[80])
    assert_frame_equal(cv, expected)
    assert fc.height == 5 * y["unique_id"].n_unique()
    assert {"SeasonalNaive", "SeasonalNaive-lo-80", "SeasonalNaive-hi-80"} <= set(fc.columns)
    assert fitted.columns == ["unique_id", "ds", "SeasonalNaive"]
    assert fitted.height == y.height


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(SpendcastError, match="unknown engine 'spark'"):
        open_engine("spark")
