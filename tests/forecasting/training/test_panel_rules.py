"""What the panel's metadata changes in training: flat panels, counts and withheld series."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from forecasting.data.ingest import ingest
from forecasting.data.panel import COUNT_COL, PanelMeta, read_panel
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import TrainResult, fit
from tests.forecasting.data.test_long_format import long_frame
from tests.panels import make_panel

pytestmark = pytest.mark.slow
FAST = TrainConfig(models=["SeasonalNaive", "AutoETS"], horizon=6, n_paths=60, levels=[80, 95])


def _flat(tmp: Path, ids: tuple[str, ...]) -> TrainResult:
    """A unique_id, ds, y file of unrelated series, ingested with no flag, then trained."""
    src = tmp / f"{len(ids)}.csv"
    long_frame(ids, months=48).write_csv(src)
    ingest([src], tmp / f"{len(ids)}.parquet")
    panel, meta = read_panel(tmp / f"{len(ids)}.parquet")
    assert meta.flat and meta.hierarchy == ("unique_id",)  # a level named like the id column
    return fit(panel, meta, FAST)


def test_flat_panel_forecasts_are_not_moved_by_a_meaningless_total(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spendcast.training"):
        two = _flat(tmp_path, ("airline", "beds"))
    assert "flat panel" in caplog.text and "reconciliation = none" in caplog.text
    assert two.bundle.meta.reconciliation == "none" and two.bundle.meta.measure == "value"
    assert not [k for k in two.metrics if k.endswith(".level.total")]
    series = two.bundle.series.select("unique_id", "withheld", "min_cell")
    withheld = dict(series.select("unique_id", "withheld").iter_rows())
    assert withheld["total"].startswith("flat-total") and withheld["total/airline"] is None
    assert series["min_cell"].null_count() == series.height  # a long file has no counts
    # a third series of another unit (thousands of times larger) changes nothing for the others
    three = _flat(tmp_path, ("airline", "beds", "cost"))
    for uid in ("total/airline", "total/beds"):
        a, b = (r.bundle.forecasts.filter(pl.col("unique_id") == uid)["mean"] for r in (two, three))
        assert a.to_list() == pytest.approx(b.to_list(), rel=1e-9)


def test_counts_reach_the_series_table_and_small_series_are_withheld() -> None:
    """A panel with counts that was not pooled (written by hand): the bundle withholds."""
    panel, meta = make_panel(n_fam=2, n_exe=2, months=40, seed=2)
    small = (pl.col("famille") == "F1") & (pl.col("executant") == "E1")
    panel = panel.with_columns(
        pl.when(small & (pl.col("ds") == pl.col("ds").min()))
        .then(4)
        .otherwise(50)
        .cast(pl.Int64)
        .alias(COUNT_COL)
    )
    meta = PanelMeta(hierarchy=meta.hierarchy, count="acts", min_cell=10)
    res = fit(panel, meta, FAST)
    rows = {r["unique_id"]: r for r in res.bundle.series.to_dicts()}
    assert rows["total/F1/E1"]["min_cell"] == 4
    assert rows["total/F1/E1"]["withheld"].startswith("small-cell")
    assert rows["total/F1"]["min_cell"] == 54 and rows["total/F1"]["withheld"] is None
    assert rows["total"]["min_cell"] == 154
    assert res.bundle.meta.reconciliation == "mint_shrink"  # not flat: reconciled as ever
