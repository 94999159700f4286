"""Execution engines: the same statsforecast calls whatever spreads the work."""

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from forecasting.errors import SpendcastError
from forecasting.training.engines import (
    LocalEngine,
    _chunks,
    make_sf,
    open_engine,
    run_cv,
    run_forecast,
)
from forecasting.training.hierarchy import aggregate_panel
from forecasting.training.models import make_model
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
        fc, fitted, states = engine.forecast(y, "SeasonalNaive", horizon=5, levels=[80])
    expected, _ = run_cv(y, "SeasonalNaive", horizon=4, windows=3, step=2, levels=[80])
    assert_frame_equal(cv, expected)
    assert fc.height == 5 * y["unique_id"].n_unique()
    assert {"SeasonalNaive", "SeasonalNaive-lo-80", "SeasonalNaive-hi-80"} <= set(fc.columns)
    assert fitted.columns == ["unique_id", "ds", "SeasonalNaive"]
    assert fitted.height == y.height
    assert set(states) == set(y["unique_id"]) and all(v is not None for v in states.values())


@pytest.mark.parametrize("alias", ["AutoETS", "AutoTheta", "AutoCES", "SeasonalNaive"])
def test_the_kept_models_forecast_what_statsforecast_forecasts(alias: str) -> None:
    """fit + predict (keeping the models) gives statsforecast's ``forecast`` and its fitted
    values, and each kept state is the one a model fitted on that series alone has."""
    panel, meta = make_panel(n_fam=2, n_exe=2, months=40, seed=5)
    y, _ = aggregate_panel(panel, meta)
    fc, fitted, states = run_forecast(y, alias, horizon=6, levels=None, n_jobs=2)
    sf = make_sf([make_model(alias)])
    ref = pl.DataFrame(sf.forecast(h=6, df=y, fitted=True))
    ref_fitted = pl.DataFrame(sf.forecast_fitted_values()).select("unique_id", "ds", alias)
    assert_frame_equal(fc.sort("unique_id", "ds"), ref.sort("unique_id", "ds"))
    assert_frame_equal(fitted.sort("unique_id", "ds"), ref_fitted.sort("unique_id", "ds"))
    uid = "total"
    alone = make_model(alias).fit(y.filter(pl.col("unique_id") == uid)["y"].to_numpy())
    kept = make_model(alias)
    kept.model_ = states[uid]
    np.testing.assert_allclose(kept.predict(h=6)["mean"], alone.predict(h=6)["mean"])


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(SpendcastError, match="unknown engine 'spark'"):
        open_engine("spark")
