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
        cv = engine.cross_validation(
            y, ("SeasonalNaive",), horizon=4, windows=3, step=2, levels=[80]
        )
        out = engine.forecast(y, ("SeasonalNaive",), horizon=5, levels=[80])
    expected, _ = run_cv(y, ("SeasonalNaive",), horizon=4, windows=3, step=2, levels=[80])
    assert_frame_equal(cv, expected)
    fc, fitted, states = out.forecasts, out.fitted, out.states["SeasonalNaive"]
    assert fc.height == 5 * y["unique_id"].n_unique()
    assert {"SeasonalNaive", "SeasonalNaive-lo-80", "SeasonalNaive-hi-80"} <= set(fc.columns)
    assert fitted.columns == ["unique_id", "ds", "SeasonalNaive"]
    assert fitted.height == y.height
    assert set(states) == set(y["unique_id"]) and all(v is not None for v in states.values())
    assert out.seconds["SeasonalNaive"] > 0


@pytest.mark.parametrize("alias", ["AutoETS", "AutoTheta", "AutoCES", "SeasonalNaive"])
def test_the_kept_models_forecast_what_statsforecast_forecasts(alias: str) -> None:
    """fit + predict (keeping the models) gives statsforecast's ``forecast`` and its fitted
    values, and each kept state is the one a model fitted on that series alone has."""
    panel, meta = make_panel(n_fam=2, n_exe=2, months=40, seed=5)
    y, _ = aggregate_panel(panel, meta)
    out = run_forecast(y, (alias,), horizon=6, levels=None, n_jobs=2)
    fc, fitted, states = out.forecasts, out.fitted, out.states[alias]
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


def test_a_group_of_candidates_in_one_call_gives_what_each_alone_gives() -> None:
    """One statsforecast call for the whole group: the same forecasts, bounds, fitted values
    and kept states as one call per candidate, and each candidate's own fit seconds."""
    panel, meta = make_panel(n_fam=2, n_exe=2, months=40, seed=3)
    y, _ = aggregate_panel(panel, meta)
    group = ("AutoETS", "AutoTheta", "SeasonalNaive")
    together = run_forecast(y, group, horizon=6, levels=[80], n_jobs=2)
    cv = run_cv(y, group, horizon=4, windows=3, step=2, levels=None, refit=False, n_jobs=2)[0]
    keys = ["unique_id", "ds"]
    for alias in group:
        alone = run_forecast(y, (alias,), horizon=6, levels=[80], n_jobs=2)
        cols = [*keys, alias, f"{alias}-lo-80", f"{alias}-hi-80"]
        assert_frame_equal(together.forecasts.select(cols), alone.forecasts.select(cols))
        assert_frame_equal(together.fitted.select(*keys, alias), alone.fitted.select(*keys, alias))
        assert together.states[alias].keys() == alone.states[alias].keys()
        for uid, state in alone.states[alias].items():  # the kept states predict alike
            a, b = make_model(alias), make_model(alias)
            a.model_, b.model_ = state, together.states[alias][uid]
            np.testing.assert_array_equal(a.predict(h=6)["mean"], b.predict(h=6)["mean"])
        assert together.seconds[alias] > 0
        cv_alone, _ = run_cv(
            y, (alias,), horizon=4, windows=3, step=2, levels=None, refit=False, n_jobs=2
        )
        assert_frame_equal(
            cv.select(*keys, "cutoff", alias), cv_alone.select(*keys, "cutoff", alias)
        )


def test_a_timed_model_unpickles_in_a_fresh_process() -> None:
    """statsforecast's workers receive and return the timed models pickled: a process that
    never made the timed class (a spawned worker) still unpickles one, fitted."""
    import pickle
    import subprocess
    import sys

    from forecasting.training.engines import _timed

    fitted = _timed(make_model("AutoETS")).fit(np.arange(1.0, 37.0) + np.tile(np.arange(12), 3))
    assert fitted.fit_seconds_ > 0
    code = (
        "import pickle, sys; m = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(m).__name__, round(float(m.predict(h=1)['mean'][0]), 6))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(fitted), capture_output=True, check=True
    )
    name, value = done.stdout.decode().split()
    assert name == "_TimedAutoETS"
    assert float(value) == pytest.approx(float(fitted.predict(h=1)["mean"][0]), abs=1e-6)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(SpendcastError, match="unknown engine 'spark'"):
        open_engine("spark")
