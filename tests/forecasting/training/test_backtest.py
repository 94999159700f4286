"""Rolling-origin backtest and scoring."""

import polars as pl
import pytest

from forecasting.training.backtest import rank_models, score
from forecasting.training.engines import run_cv
from forecasting.training.hierarchy import aggregate_panel
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
