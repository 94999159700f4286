"""The app on a really trained, registered champion: load path, forecasts, cached start."""

from __future__ import annotations

import time

import numpy as np
import pytest

from service.serving import default_loader
from tests.service.conftest import AUTH, wait_ready


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real_model", "pbs_model"])
def test_serves_the_registered_champion(make_client, which, request):
    """Every read endpoint and detect on a champion trained on generated data, and on one
    trained on real data (PBS)."""
    model = request.getfixturevalue(which)
    t0 = time.monotonic()
    c = make_client(loader=default_loader, model_uri=model["uri"])
    ready = wait_ready(c)
    assert time.monotonic() - t0 < 5  # ready within 5 s
    assert ready["status"] == "ready"
    bundle = model["bundle"]
    m = c.get("/v1/model").json()
    assert m["name"] == model["uri"].split("/")[1].split("@")[0] and m["alias"] == "champion"
    assert m["horizon"] == bundle.meta.horizon and m["levels"] == bundle.meta.levels
    series = c.get("/v1/series").json()
    assert series["count"] == len(bundle.ids)
    served = {r["unique_id"]: r["monitor_model"] for r in series["series"]}
    assert served == dict(bundle.series.select("unique_id", "monitor_model").iter_rows())
    uid = bundle.ids[1]
    f = c.get("/v1/forecast", params={"unique_id": uid}).json()
    ref = bundle.forecast([uid])
    np.testing.assert_allclose(f["mean"], ref["mean"].to_numpy(), rtol=1e-6)
    many = c.post("/v1/forecast", json={"unique_ids": bundle.ids[:3], "horizon": 2}).json()
    assert many["unique_id"] == [u for u in bundle.ids[:3] for _ in range(2)]
    csv = c.get("/v1/forecast", params={"unique_id": uid, "format": "csv"})
    assert csv.status_code == 200 and csv.text.lstrip("\ufeff").startswith(
        "serie;libelle;mois;prevision"
    )
    year = ref["ds"][0].year  # covered to December by the 12-month horizon
    p = c.get("/v1/projections/annual", params={"unique_id": uid, "year": year, "budget": 0})
    assert p.status_code == 200, p.text
    body = p.json()
    assert body["prob_over_budget"] == 1.0
    widest = body["intervals"][-1]
    assert widest["lo"] <= body["total"] <= widest["hi"]
    past = c.get("/v1/projections/annual", params={"unique_id": uid, "year": year - 3}).json()
    assert past["complete"] and past["intervals"] == []
    obs = [{"unique_id": uid, "ds": str(ref["ds"][0]), "y": float(ref["mean"][0])}]
    d = c.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH).json()
    assert d["results"][0]["status"] in ("EXPECTED", "INSUFFICIENT_DATA")
    assert c.get("/v1/anomalies", params={"unique_id": uid}).json()["count"] == 1
    h = c.get("/v1/anomalies/historical", params={"unique_id": uid})
    assert h.status_code == 200, h.text


@pytest.mark.slow
def test_cached_start_when_store_unreachable(make_client, real_model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = make_client(loader=default_loader, model_uri=real_model["uri"], cache_dir=cache)
    assert wait_ready(first)["status"] == "ready"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    second = make_client(loader=default_loader, model_uri=real_model["uri"], cache_dir=cache)
    body = wait_ready(second, timeout=30)
    assert body["status"] == "degraded" and body["reason"]
    uid = real_model["bundle"].ids[0]
    assert second.get("/v1/forecast", params={"unique_id": uid}).status_code == 200
