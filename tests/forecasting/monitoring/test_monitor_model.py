"""Monitoring judges with its own model: by default the combination, whatever planners got."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from forecasting.bundle import Bundle
from forecasting.monitoring.calibration import calibrate
from forecasting.monitoring.forecast import index_bundle
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import TrainResult, fit
from tests.panels import make_panel

# no margin, no wins asked: single models win the selection of most series
CONFIG: dict[str, Any] = {
    "models": ["SeasonalNaive", "AutoETS"],
    "ensembles": ["mean"],
    "horizon": 6,
    "n_paths": 60,
    "levels": [80, 99],
    "selection_margin": 0.0,
    "selection_wins": 0.0,
    "selection_windows": 1,
}


@pytest.fixture(scope="module")
def runs() -> dict[str, TrainResult]:
    panel, meta = make_panel(n_fam=3, n_exe=4, months=72, seed=4)  # 200+ one-step ratios
    return {
        kind: fit(panel, meta, TrainConfig(**CONFIG, monitor_model=kind))
        for kind in ("combination", "selected")
    }


def _single(res: TrainResult) -> list[str]:
    """Series whose selected model is a single candidate."""
    return res.selection.filter(~pl.col("model").str.starts_with("Ensemble"))["unique_id"].to_list()


def test_planners_get_the_same_selection_either_way(runs: dict[str, TrainResult]) -> None:
    a, b = runs["combination"], runs["selected"]
    assert _single(a), "the panel should give some series a single model"
    assert a.selection.equals(b.selection)
    assert_frame_equal(a.bundle.forecasts, b.bundle.forecasts, check_exact=False)
    assert np.allclose(a.bundle.paths, b.bundle.paths)
    assert_frame_equal(
        a.bundle.backtest.drop("yhat_monitor"), b.bundle.backtest.drop("yhat_monitor")
    )


def test_the_combination_judges_every_series_with_a_backtest(
    runs: dict[str, TrainResult],
) -> None:
    res = runs["combination"]
    series = res.bundle.series
    assert set(series["monitor_model"]) == {"Ensemble-mean"}
    assert set(series["monitor_members"]) == {"AutoETS,SeasonalNaive"}
    conditioners = index_bundle(res.bundle).conditioners
    assert res.bundle.conditioning is not None
    for uid in series["unique_id"]:
        c = conditioners[uid]
        assert (c.members, c.kind) == (("AutoETS", "SeasonalNaive"), "mean")
        stored = res.bundle.conditioning.get(uid)
        assert stored is not None and stored[0] == c.members  # fitted at training, not at load
    # its backtest rows are the combination's, the planners' rows the chosen model's
    bt = res.bundle.backtest.join(res.cv, on=["unique_id", "ds", "cutoff"], suffix="_cv")
    assert np.allclose(bt["yhat_monitor"], bt["Ensemble-mean"])
    chosen = dict(res.selection.select("unique_id", "model").iter_rows())
    for uid in _single(res):
        part = bt.filter(pl.col("unique_id") == uid)
        assert np.allclose(part["yhat"], part[chosen[uid]])
        assert not np.allclose(part["yhat"], part["yhat_monitor"])


def test_the_selected_setting_judges_with_the_chosen_model(runs: dict[str, TrainResult]) -> None:
    res = runs["selected"]
    series = res.bundle.series
    assert series["monitor_model"].to_list() == series["model"].to_list()
    bt = res.bundle.backtest
    assert np.array_equal(bt["yhat_monitor"].to_numpy(), bt["yhat"].to_numpy())
    conditioners = index_bundle(res.bundle).conditioners
    for uid in _single(res):
        assert conditioners[uid].members == (series.filter(pl.col("unique_id") == uid)["model"][0],)


def _onestep_scale(bt: pl.DataFrame, uid: str, col: str) -> float:
    """Mean relative one-step backtest error of ``col`` (the series are positive)."""
    one = bt.filter((pl.col("unique_id") == uid) & (pl.col("h") == 1))
    return float(((one["y"] - one[col]).abs() / one[col]).mean())  # type: ignore[arg-type]


def test_bounds_are_calibrated_on_the_judging_models_errors(
    runs: dict[str, TrainResult],
) -> None:
    for kind, col in (("combination", "yhat_monitor"), ("selected", "yhat")):
        res = runs[kind]
        cal = calibrate(res.bundle)
        bt = runs["combination"].bundle.backtest
        for uid in _single(res):
            assert uid in cal.relative
            assert cal.scales[uid] == pytest.approx(_onestep_scale(bt, uid, col))


def test_a_bundle_before_the_monitoring_model_judges_with_the_selected_one(
    runs: dict[str, TrainResult],
) -> None:
    new, old_style = runs["combination"].bundle, runs["selected"].bundle
    old = Bundle(
        **{
            **new.__dict__,
            "series": new.series.drop("monitor_model", "monitor_members"),
            "backtest": new.backtest.drop("yhat_monitor"),
            "conditioning": None,
        }
    )
    ref = index_bundle(old_style)
    got = index_bundle(old)
    for uid in _single(runs["combination"]):
        assert got.conditioners[uid].members == ref.conditioners[uid].members
        assert got.calibration.scales[uid] == pytest.approx(ref.calibration.scales[uid])
    # and the configuration is part of the bundle's record
    assert new.meta.config["monitor_model"] == "combination"
