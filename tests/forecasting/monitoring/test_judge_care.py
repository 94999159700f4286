"""Care basis end to end: synth -> ingest (triangle) -> fit (completion) -> detect by age."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pytest

from forecasting.data import synth
from forecasting.data.ingest import ingest
from forecasting.data.panel import PanelMeta, read_panel
from forecasting.monitoring.completion import load_triangle
from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.judge import detect
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import aggregate_panel
from forecasting.training.pipeline import fit

CUT = dt.date(2022, 12, 1)


@pytest.fixture(scope="module")
def care(tmp_path_factory):
    root = tmp_path_factory.mktemp("care")
    synth.generate(root / "raw", start="2019-01", end="2023-03", rows_per_month=1000, seed=3)
    out = root / "panel.parquet"
    ingest([root / "raw"], out, basis="care")
    _, meta = read_panel(out)
    tri = load_triangle(meta, out)
    levels = list(meta.hierarchy)
    known = tri.filter(pl.col("processing_ds") <= CUT)  # what the files said at the cut
    train = known.group_by(*levels, "ds").agg(pl.col("y").sum()).sort(*levels, "ds")
    result = fit(
        train,
        meta,
        TrainConfig(models=["SeasonalNaive"], windows=3, n_paths=50, calendar_arima=False),
        triangle=known,
    )

    def seen(as_of: dt.date) -> pl.DataFrame:
        """Care months after the cut as paid by the end of processing month ``as_of``."""
        part = tri.filter((pl.col("processing_ds") <= as_of) & (pl.col("ds") > CUT))
        bottom = part.group_by(*levels, "ds").agg(pl.col("y").sum()).sort(*levels, "ds")
        return aggregate_panel(bottom, PanelMeta(hierarchy=meta.hierarchy, basis="care"))[0]

    return result.bundle, seen


def test_fresh_care_months_are_judged_against_their_paid_share(care):
    bundle, seen = care
    assert bundle.meta.basis == "care" and bundle.completion is not None
    as_of = dt.date(2023, 3, 1)
    obs = seen(as_of)
    judged = detect(obs, index_bundle(bundle), level=99, as_of=as_of)
    ages = dict(zip(judged["ds"].to_list(), judged["age"].to_list(), strict=False))
    assert ages == {dt.date(2023, 1, 1): 2, dt.date(2023, 2, 1): 1, dt.date(2023, 3, 1): 0}
    fresh = judged.filter(pl.col("age") == 0)
    assert fresh["paid_share"].min() > 0.5 and fresh["paid_share"].max() < 0.7
    assert judged["is_anomaly"].mean() <= 0.05
    # the same numbers compared with complete-month forecasts: the fresh month looks like a drop
    naive = dataclasses.replace(bundle, completion=None)
    flagged = detect(obs, index_bundle(naive), level=99).filter(pl.col("ds") == as_of)
    assert flagged["is_anomaly"].mean() > 0.5
    assert (flagged.filter(pl.col("is_anomaly"))["direction"] == "below").all()
