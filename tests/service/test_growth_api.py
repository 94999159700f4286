"""GET /v1/growth, growth in GET /v1/projections/annual, labels in /v1/series and the CSV."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.data import codes
from service.serving import default_loader
from tests.service.conftest import wait_ready

STATS = ("value", "yoy_pct", "rolling_12m", "rolling_12m_growth_pct", "ytd", "ytd_growth_pct")


def _history(bundle, uid):
    h = bundle.history.filter(bundle.history["unique_id"] == uid).sort("ds")
    return h["ds"].to_list(), h["y"].to_numpy().astype(np.float64)


def _paths(bundle, uid):
    return np.asarray(bundle.paths[bundle.path_ids.index(uid)], dtype=np.float64)


def test_growth_of_observed_and_projected_months(client, synthetic_bundle):
    r = client.get("/v1/growth", params={"unique_id": "total/a"})
    assert r.status_code == 200, r.text
    g = r.json()
    ds, y = _history(synthetic_bundle, "total/a")
    months = g["months"]
    assert len(months) == len(ds) + 12 and g["levels"] == [80, 95, 99]
    assert g["label"] == "a"  # a bundle without labels: the last member
    assert [m["source"] for m in months] == ["observed"] * len(ds) + ["projected"] * 12
    for k in range(12, len(ds)):
        assert months[k]["yoy_pct"] == pytest.approx(100 * (y[k] / y[k - 12] - 1))
        assert months[k]["rolling_12m"] == pytest.approx(y[k - 11 : k + 1].sum())
        assert months[k]["intervals"] is None
    assert months[11]["yoy_pct"] is None and months[10]["rolling_12m"] is None
    dec = len(ds) - 1  # December of the last observed year: year to date = the year
    assert months[dec]["ytd_growth_pct"] == pytest.approx(
        100 * (y[-12:].sum() / y[-24:-12].sum() - 1)
    )
    # projected months: point from the means, intervals from the paths
    mean = synthetic_bundle.forecast(["total/a"])["mean"].to_numpy()
    paths = _paths(synthetic_bundle, "total/a")
    first = months[len(ds)]
    assert first["value"] == pytest.approx(mean[0])
    assert first["yoy_pct"] == pytest.approx(100 * (mean[0] / y[-12] - 1))
    iv = {b["level"]: b for b in first["intervals"]["yoy_pct"]}
    want = np.quantile(100 * (paths[:, 0] / y[-12] - 1), [0.1, 0.9])
    assert (iv[80]["lo"], iv[80]["hi"]) == pytest.approx(tuple(want))
    assert set(first["intervals"]) == set(STATS)


def test_growth_levels_and_errors(client):
    r = client.get("/v1/growth", params={"unique_id": "total", "level": 95})
    assert r.status_code == 200 and r.json()["levels"] == [95]
    last = r.json()["months"][-1]
    assert [b["level"] for b in last["intervals"]["rolling_12m_growth_pct"]] == [95]
    for params, status, field in [
        ({"unique_id": "nope"}, 404, "unique_id"),
        ({"unique_id": "total", "level": 50}, 422, "level"),
        ({}, 422, "unique_id"),
    ]:
        r = client.get("/v1/growth", params=params)
        assert r.status_code == status and r.json()["field"] == field, r.text


def test_adjusted_series_of_a_tidy_source_is_only_seasonally_adjusted(client):
    a = client.get("/v1/growth", params={"unique_id": "total"}).json()["adjusted"]
    assert a["available"] and not a["working_day_correction"]
    assert a["working_day_effect"] is None
    assert "no working-day correction" in a["method"]
    assert len(a["months"]) == 48 and a["months"][-1]["source"] == "projected"


def test_annual_growth_and_the_probability_of_exceeding_a_target(client, synthetic_bundle):
    _, y = _history(synthetic_bundle, "total")
    prev = y[-12:].sum()  # 2023, observed
    base = {"unique_id": "total", "year": 2024}
    p = client.get("/v1/projections/annual", params={**base, "target_growth": 1.5}).json()
    g = p["growth"]
    assert g["previous_year"] == 2023 and g["previous_total"] == pytest.approx(prev)
    assert g["growth_pct"] == pytest.approx(100 * (p["total"] / prev - 1))
    assert g["target_growth"] == 1.5
    budget = client.get("/v1/projections/annual", params={**base, "budget": prev * 1.015}).json()
    assert g["prob_over_target"] == pytest.approx(budget["prob_over_budget"])
    for iv in g["intervals"]:
        assert iv["lo"] <= g["growth_pct"] <= iv["hi"]
    probs = [
        client.get("/v1/projections/annual", params={**base, "target_growth": t}).json()["growth"][
            "prob_over_target"
        ]
        for t in (-20, 0, 5, 20)
    ]
    assert probs == sorted(probs, reverse=True)
    first = client.get("/v1/projections/annual", params={"unique_id": "total", "year": 2021})
    assert first.json()["growth"] is None  # 2020 is not in the data
    for bad in ("abc", "-101", "inf"):
        r = client.get("/v1/projections/annual", params={**base, "target_growth": bad})
        assert r.status_code == 422 and r.json()["field"] == "target_growth", bad


def test_labels_of_a_bundle_without_them(client):
    rows = {s["unique_id"]: s["label"] for s in client.get("/v1/series").json()["series"]}
    assert rows == {"total": "Total", "total/a": "a", "total/b": "b"} | {
        f"total/{p}/{c}": c for p, c in (("a", "x"), ("a", "y"), ("b", "z"))
    }
    csv = client.get("/v1/forecast", params={"unique_id": "total/a/x", "format": "csv"})
    lines = csv.content.decode("utf-8-sig").strip().split("\r\n")
    assert lines[0].startswith("serie;libelle;mois;prevision;")
    assert lines[1].startswith("total/a/x;x;")


@pytest.mark.slow
def test_real_open_damir_model_speaks_french(make_client, damir_model):
    """Trained on generated Open DAMIR files: code labels, French working days, honest
    growth intervals from the model's own paths."""
    c = make_client(loader=default_loader, model_uri=damir_model["uri"])
    wait_ready(c, timeout=60)
    labels = {s["unique_id"]: s["label"] for s in c.get("/v1/series").json()["series"]}
    bundle = damir_model["bundle"]
    assert labels == dict(bundle.series.select("unique_id", "label").iter_rows())
    assert labels["total/pharmacie"] == "Médicaments et honoraires de pharmacie"
    actors = codes.level_labels("executant")
    bottom = sorted(u for u in labels if u.count("/") == 2)
    assert bottom and all(labels[u] == actors[u.rsplit("/", 1)[1]] for u in bottom)
    leaf = next(u for u in bottom if u.startswith("total/specialistes/"))
    assert labels[leaf] != leaf.rsplit("/", 1)[1]  # e.g. "Gastro-entérologie et hépatologie"
    csv = c.get("/v1/forecast", params={"unique_id": leaf, "format": "csv"}).content
    assert f"{leaf};{labels[leaf]};" in csv.decode("utf-8-sig")
    for uid in ("total", "total/pharmacie", leaf):
        g = c.get("/v1/growth", params={"unique_id": uid}).json()
        assert g["label"] == labels[uid]
        adj = g["adjusted"]
        assert adj["available"] and adj["working_day_correction"]
        assert 0 < adj["working_day_effect"] < 10  # percent per working day
        for m in (m for m in g["months"] if m["source"] == "projected"):
            for name in STATS:
                point = m[name]
                for b in m["intervals"][name]:
                    if point is not None:
                        assert b["lo"] <= point * (1 + 1e-9) + 1e-9, (uid, m["ds"], name)
                        assert point <= b["hi"] * (1 + 1e-9) + 1e-9, (uid, m["ds"], name)
        year = int(g["months"][-1]["ds"][:4])
        p = c.get("/v1/projections/annual", params={"unique_id": uid, "year": year}).json()
        assert p["growth"]["growth_pct"] == pytest.approx(
            100 * (p["total"] / p["growth"]["previous_total"] - 1)
        )
