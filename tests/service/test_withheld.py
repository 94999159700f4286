"""The service never serves nor stores a withheld series (small cells, a flat panel's total)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from forecasting.bundle import Bundle
from forecasting.data.panel import COUNT_COL, PanelMeta
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import fit
from tests.panels import make_panel
from tests.service.conftest import AUTH
from tests.service.synthetic import fake_loader

pytestmark = pytest.mark.slow
SMALL = "total/F1/E1"
TYPE = "https://spendcast.example/problems/"


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    """A real fit of a panel with counts where one series has a month of 4 acts."""
    panel, meta = make_panel(n_fam=2, n_exe=2, months=40, seed=2)
    small = (pl.col("famille") == "F1") & (pl.col("executant") == "E1")
    counts = pl.when(small & (pl.col("ds") == pl.col("ds").min())).then(4).otherwise(50)
    panel = panel.with_columns(counts.cast(pl.Int64).alias(COUNT_COL))
    meta = PanelMeta(hierarchy=meta.hierarchy, count="acts", min_cell=10)
    config = TrainConfig(models=["SeasonalNaive"], horizon=6, n_paths=60, levels=[80, 95])
    return fit(panel, meta, config).bundle


def test_small_cell_series_is_neither_listed_served_nor_stored(make_client, bundle) -> None:
    client = make_client(loader=fake_loader(bundle))
    listed = {s["unique_id"] for s in client.get("/v1/series").json()["series"]}
    assert SMALL not in listed and "total/F1" in listed
    assert client.get("/v1/model").json()["n_series"] == len(listed)
    gets = [
        f"/v1/forecast?unique_id={SMALL}",
        f"/v1/forecast?unique_id={SMALL}&format=csv",
        f"/v1/projections/annual?unique_id={SMALL}&year=2020",
        f"/v1/anomalies/historical?unique_id={SMALL}",
    ]
    answers = [client.get(u) for u in gets]
    answers.append(client.post("/v1/forecast", json={"unique_ids": ["total", SMALL]}))
    obs = [{"unique_id": u, "ds": "2030-01-01", "y": 1.0} for u in ("total/F1", SMALL)]
    answers.append(client.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH))
    for r in answers:
        assert r.status_code == 404, r.text
        body = r.json()
        assert body["type"] == TYPE + "small-cell" and "privacy" in body["detail"]
    assert client.get("/v1/anomalies").json()["count"] == 0  # nothing stored
    assert client.get("/v1/forecast?unique_id=total/F1").status_code == 200


def test_flat_total_is_not_presented_as_a_series(make_client, bundle) -> None:
    series = bundle.series.with_columns(
        pl.when(pl.col("unique_id") == "total")
        .then(pl.lit("flat-total: the sum of unrelated series (flat panel) is not a series"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("withheld")
    )
    client = make_client(loader=fake_loader(dataclasses.replace(bundle, series=series)))
    listed = {s["unique_id"] for s in client.get("/v1/series").json()["series"]}
    assert "total" not in listed and SMALL in listed
    r = client.get("/v1/forecast?unique_id=total")
    assert r.status_code == 404 and r.json()["type"] == TYPE + "flat-total"
