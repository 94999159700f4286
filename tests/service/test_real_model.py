"""The app on a really trained, registered champion: load path, forecasts, cached start."""

from __future__ import annotations

import time

import numpy as np
import pytest

from service.serving import default_loader
from tests.service.conftest import AUTH, wait_ready


@pytest.mark.slow
def test_serves_the_registered_champion(make_client, real_model, tmp_path):
    t0 = time.monotonic()
    c = make_client(loader=default_loader, model_uri=real_model["uri"])
    ready = wait_ready(c)
    assert time.monotonic() - t0 < 5  # ready within 5 s
    assert ready["status"] == "ready"
    bundle = real_model["bundle"]
    m = c.get("/v1/model").json()
    assert m["name"] == "spendcast-svc" and m["alias"] == "champion"
    assert m["horizon"] == bundle.meta.horizon and m["levels"] == bundle.meta.levels
    uid = bundle.ids[1]
    f = c.get("/v1/forecast", params={"unique_id": uid}).json()
    ref = bundle.forecast([uid])
    np.testing.assert_allclose(f["mean"], ref["mean"].to_numpy(), rtol=1e-6)
    year = ref["ds"][-1].year
    p = c.get("/v1/projections/annual", params={"unique_id": uid, "year": year, "budget": 0})
    assert p.status_code == 200, p.text
    assert p.json()["prob_over_budget"] is not None
    obs = [{"unique_id": uid, "ds": str(ref["ds"][0]), "y": float(ref["mean"][0])}]
    d = c.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH).json()
    assert d["results"][0]["status"] in ("EXPECTED", "INSUFFICIENT_DATA")
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
