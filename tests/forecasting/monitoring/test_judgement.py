"""forecasting.monitoring.judgement: in-sample flags."""

from __future__ import annotations

import polars as pl
import pytest

from forecasting.errors import InputError
from forecasting.monitoring.judgement import judge_insample
from tests.service.synthetic import make_bundle

BUNDLE = make_bundle(seed=11)


def test_judge_insample_counts_outside_points():
    ins = BUNDLE.insample.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(pl.col("hi_95") + 1)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    out = judge_insample(ins, level=95, unique_id="total/a")
    one = ins.filter(pl.col("unique_id") == "total/a")
    outside = ((one["y"] < one["lo_95"]) | (one["y"] > one["hi_95"])).sum()
    assert out.height == 36 and outside > 0 and out["is_anomaly"].sum() == outside
    assert out.filter(pl.col("is_anomaly"))["score"].max() <= 0.05 + 1e-9
    assert out.filter(~pl.col("is_anomaly"))["score"].min() >= 0.05 - 1e-9
    with pytest.raises(InputError, match="level 42"):
        judge_insample(BUNDLE.insample, level=42)
