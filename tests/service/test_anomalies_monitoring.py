"""POST /v1/anomalies/detect month after month on a really trained champion."""

from __future__ import annotations

import pytest

from service.serving import default_loader
from tests.service.conftest import AUTH


@pytest.fixture
def real_client(make_client, real_model):
    return make_client(loader=default_loader, model_uri=real_model["uri"])


def _fc(bundle, uid: str) -> list[dict]:
    return bundle.forecasts.filter(bundle.forecasts["unique_id"] == uid).sort("ds").to_dicts()


def _post(client, obs, **body):
    r = client.post("/v1/anomalies/detect", json={"observations": obs, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_stored_months_condition_the_next_and_rejudging_is_idempotent(
    real_client, make_client, real_model
):
    bundle = real_model["bundle"]
    uid = "total/F0/E0"
    fc = _fc(bundle, uid)

    def obs(k: int, y: float) -> dict:
        return {"unique_id": uid, "ds": str(fc[k]["ds"]), "y": y}

    early = [obs(k, fc[k]["mean"] + 0.5 * (fc[k]["hi_80"] - fc[k]["mean"])) for k in range(5)]
    m6 = obs(5, fc[5]["mean"])
    firsts = _post(real_client, early)
    assert [v["conditioned_on"] for v in firsts] == [0, 1, 2, 3, 4]  # one request, month by month
    (sixth,) = _post(real_client, [m6])
    assert sixth["conditioned_on"] == 5
    assert list(sixth["conditioning"]) == [o["ds"] for o in early]
    # the same month judged on a store that knows nothing: six steps ahead, unconditioned
    (fresh,) = _post(make_client(loader=default_loader, model_uri=real_model["uri"]), [m6])
    assert fresh["conditioned_on"] == 0
    assert sixth["hi"] - sixth["lo"] < fresh["hi"] - fresh["lo"]
    assert sixth["expected"] > fresh["expected"]  # the stored months came in above
    # idempotent: same value, same judgement, not stored again
    (again,) = _post(real_client, [m6])
    assert again["new"] is False and again["revision"] == 1
    assert again["expected"] == pytest.approx(sixth["expected"], rel=1e-12)
    # revisions of months 1-5 (back to their expectations) move month 6's judgement back
    revs = _post(real_client, [obs(k, fc[k]["mean"]) for k in range(5)])
    assert all(r["revision"] == 2 and r["new"] for r in revs)
    (rejudged,) = _post(real_client, [m6])
    assert rejudged["conditioning"][early[0]["ds"]] == pytest.approx(fc[0]["mean"])
    moved, before = rejudged["expected"] - fresh["expected"], sixth["expected"] - fresh["expected"]
    assert abs(moved) < abs(before)
    stored = real_client.get("/v1/anomalies", params={"unique_id": uid}).json()["results"]
    assert [r["conditioned_on"] for r in stored if r["ds"] == m6["ds"]] == [5]  # same model+level
    assert all("conditioning" in r and "explained_by" in r for r in stored)


def test_flagged_parent_is_explained_by_its_stored_children(real_client, real_model):
    bundle = real_model["bundle"]
    parent = "total/F1"
    kids = bundle.series.filter(bundle.series["parent"] == parent)["unique_id"].to_list()
    month = _fc(bundle, parent)[0]["ds"]
    values = {u: _fc(bundle, u)[0]["mean"] for u in [parent, *kids]}
    bump = 0.5 * values[parent]
    children = [
        {"unique_id": u, "ds": str(month), "y": values[u] + (bump if u == kids[-1] else 0.0)}
        for u in kids
    ]
    _post(real_client, children)
    (judged,) = _post(
        real_client, [{"unique_id": parent, "ds": str(month), "y": values[parent] + bump}]
    )
    assert judged["is_anomaly"] and judged["direction"] == "above"
    parts = judged["explained_by"]
    assert parts[0]["unique_id"] == kids[-1] and parts[0]["share"] > 0.8
    assert {p["unique_id"] for p in parts} == set(kids)
    flagged = real_client.get("/v1/anomalies", params={"unique_id": parent, "flagged": True})
    assert flagged.json()["results"][0]["explained_by"][0]["unique_id"] == kids[-1]


def test_warm_up_fits_the_conditioning_models_after_load(real_model):
    import time

    from service.serving import ServedModel
    from tests.service.synthetic import FakeLoaded

    served = ServedModel.build(FakeLoaded(real_model["bundle"]))
    t0 = time.perf_counter()
    n = served.warm_up()  # the background thread may have done part of it already
    assert n == len(served.lookup)  # every series of this model can be conditioned
    assert all(c.ready() for c in served.lookup.conditioners.values())  # cached: no refit
    assert time.perf_counter() - t0 < 30


def test_a_lasting_shift_is_reported_once_stored_and_listed(real_client, real_model):
    bundle = real_model["bundle"]
    uid = "total/F0/E1"
    fc = _fc(bundle, uid)
    jump = 12 * (fc[0]["hi_95"] - fc[0]["mean"])  # far outside every one-step bound
    shifted = [
        {"unique_id": uid, "ds": str(fc[k]["ds"]), "y": fc[k]["mean"] + (jump if k >= 1 else 0)}
        for k in range(6)
    ]
    answered = [_post(real_client, [o])[0] for o in shifted]  # a monitoring job, month by month
    assert [a["status"] for a in answered[:4]] == ["EXPECTED", "ANOMALY", "ANOMALY", "LEVEL_SHIFT"]
    assert answered[3]["level_shift_since"] == shifted[1]["ds"]
    assert all(a["level_shift_since"] == shifted[1]["ds"] for a in answered[4:])
    assert all(a["status"] == "EXPECTED" for a in answered[4:])  # judged on the new level
    stored = real_client.get("/v1/anomalies", params={"unique_id": uid}).json()["results"]
    by_month = {r["ds"]: r for r in stored}
    assert by_month[shifted[3]["ds"]]["status"] == "LEVEL_SHIFT"
    assert by_month[shifted[5]["ds"]]["level_shift_since"] == shifted[1]["ds"]


def test_the_shift_policy_is_a_setting(make_client, real_model):
    bundle = real_model["bundle"]
    uid = "total/F0/E1"
    fc = _fc(bundle, uid)
    jump = 12 * (fc[0]["hi_95"] - fc[0]["mean"])
    shifted = [
        {"unique_id": uid, "ds": str(fc[k]["ds"]), "y": fc[k]["mean"] + jump} for k in range(6)
    ]
    off = make_client(loader=default_loader, model_uri=real_model["uri"], shift_after=0)
    answered = _post(off, shifted)
    assert [a["status"] for a in answered] == ["ANOMALY"] * 6  # flagged until retrained
    assert all(a["level_shift_since"] is None for a in answered)
