"""Rolling-origin backtest and scoring; the backtest plan and the persistence of errors."""

import datetime as dt
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from forecasting.training.backtest import backtest_plan, rank_models, residual_matrix, score
from forecasting.training.engines import run_cv
from forecasting.training.hierarchy import aggregate_panel
from forecasting.training.intervals import Calibration
from forecasting.training.paths import persistence, window_sd
from tests.panels import make_panel


def test_cv_windows_and_scores() -> None:
    panel, meta = make_panel(n_fam=1, n_exe=2, months=48)
    y, _ = aggregate_panel(panel, meta)
    cv, secs = run_cv(y, "SeasonalNaive", horizon=4, windows=3, step=2, levels=[80])
    assert secs >= 0
    assert cv["cutoff"].n_unique() == 3
    assert cv.group_by("unique_id", "cutoff").len()["len"].unique().to_list() == [4]
    assert {"SeasonalNaive-lo-80", "SeasonalNaive-hi-80"} <= set(cv.columns)
    sc = score(cv, ["SeasonalNaive"], y)
    assert sc.columns == ["unique_id", "model", "mase", "smape", "rmsse", "bias"]
    assert sc.height == y["unique_id"].n_unique()
    assert (sc["mase"] > 0).all() and (sc["smape"] <= 1).all()
    # bias is the mean error (forecast - actual) over the windows
    row = cv.filter(pl.col("unique_id") == "total")
    assert sc.filter(pl.col("unique_id") == "total")["bias"][0] == pytest.approx(
        (row["SeasonalNaive"] - row["y"]).to_numpy().mean()
    )


def test_rank_puts_nan_last() -> None:
    sc = pl.DataFrame(
        {"unique_id": ["a"] * 3, "model": ["X", "Y", "Z"], "mase": [0.5, float("nan"), 0.2]}
    )
    ranks = rank_models(sc, "mase").sort("rank")
    assert ranks["model"].to_list() == ["Z", "X", "Y"]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (24, None),
        (25, (1, 1)),
        (30, (6, 1)),
        (36, (12, 1)),
        (40, (12, 5)),
        (60, (12, 13)),
        (100, (12, 25)),
    ],
)
def test_backtest_plan_gives_short_series_a_backtest(n: int, expected: tuple | None) -> None:
    # a 60-month series is first fitted on 36 months (60 %), not 24: 13 windows, not 25
    plan = backtest_plan({"a": n, "long": 200}, horizon=12, windows=25, step=1)
    got = next((k for k, ids in plan.items() if "a" in ids), None)
    assert got == expected
    assert plan[(12, 25)][-1] == "long"


def _ar1_backtest(phi: float, n_series: int = 40, n_windows: int = 30, h: int = 12) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for s in range(n_series):
        for w in range(n_windows):
            cutoff = dt.date(2000, 1, 1) + dt.timedelta(days=31 * w)
            z = np.empty(h)
            z[0] = rng.standard_normal()
            for t in range(1, h):
                z[t] = phi * z[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
            rows += [
                {
                    "unique_id": f"s{s}",
                    "ds": cutoff,
                    "cutoff": cutoff,
                    "h": t + 1,
                    "y": z[t],
                    "yhat": 0.0,
                }
                for t in range(h)
            ]
    return pl.DataFrame(rows)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_persistence_recovers_how_errors_persist_over_a_window(phi: float) -> None:
    """Window sums of AR(1) errors with unit steps: the calibrated phi is the true one."""
    bt = _ar1_backtest(phi)
    ids = bt["unique_id"].unique().to_list()
    cal = Calibration(
        profile=np.ones(12),
        quantiles={80: NormalDist().inv_cdf(0.9)},
        scales=dict.fromkeys(ids, 1.0),
        early=dict.fromkeys(ids, 1.0),
        split=dict.fromkeys(ids, dt.date(1999, 1, 1)),
    )
    assert persistence(bt, cal, ids) == pytest.approx(phi, abs=0.12)
    # and the implied spread of a window sum is the one observed
    sums = bt.group_by("unique_id", "cutoff").agg(pl.col("y").sum())["y"].to_numpy()
    implied = window_sd(cal.profile, persistence(bt, cal, ids))
    assert np.quantile(np.abs(sums), 0.8) / NormalDist().inv_cdf(0.9) == pytest.approx(
        implied, rel=0.1
    )


def test_a_series_with_few_aligned_errors_draws_its_full_spread() -> None:
    """Series "b" has errors at 4 of the 40 cross-sections (a short backtest, or other
    months): its draws are still standardised (mean 0, sd 1) and spread, not one value
    repeated (what counting its missing errors as zeros gave)."""
    from forecasting.training.paths import _error_draws

    rng = np.random.default_rng(0)
    rows = []
    for w in range(40):
        cutoff = dt.date(2000, 1, 1) + dt.timedelta(days=31 * w)
        rows.append(
            {"unique_id": "a", "ds": cutoff, "cutoff": cutoff, "y": rng.normal(), "yhat": 0.0}
        )
        if w % 10 == 0:
            rows.append(
                {
                    "unique_id": "b",
                    "ds": cutoff,
                    "cutoff": cutoff,
                    "y": rng.normal(5, 2),
                    "yhat": 0.0,
                }
            )
    res = residual_matrix(pl.DataFrame(rows), ["a", "b", "c"])  # "c": no backtest at all
    assert np.isnan(res[1]).sum() == 36 and np.isnan(res[2]).all()
    eps = _error_draws(res, (4000, 3), np.random.default_rng(1))
    for j in range(3):
        e = eps[..., j].ravel()
        assert abs(e.mean()) < 0.1 and abs(e.std() - 1) < 0.1, (j, e.mean(), e.std())
        _, counts = np.unique(e, return_counts=True)
        assert counts.max() < 0.2 * e.size, j  # no value drawn most of the time
