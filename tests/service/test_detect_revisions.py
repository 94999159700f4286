"""Detect and the store: revisions keyed on the latest one, the effective as_of stored with
each value, and the stored verdict always the one answered."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from tests.service.conftest import AUTH
from tests.service.synthetic import fake_loader, make_bundle

UID = "total/a/x"
JAN, FEB = "2024-01-01", "2024-02-01"


def _mean(bundle, ds: str) -> float:
    fc = bundle.forecasts.filter((pl.col("unique_id") == UID) & (pl.col("ds").cast(str) == ds))
    return float(fc["mean"][0])


def _post(client, obs, **body):
    r = client.post("/v1/anomalies/detect", json={"observations": obs, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_a_value_posted_again_after_another_is_the_latest(client, synthetic_bundle):
    a = _mean(synthetic_bundle, JAN)
    b = a * 1.001
    seen = [_post(client, [{"unique_id": UID, "ds": JAN, "y": y}])[0] for y in (a, b, a, a)]
    assert [(v["revision"], v["new"]) for v in seen] == [
        (1, True),
        (2, True),
        (3, True),
        (3, False),
    ]
    (feb,) = _post(client, [{"unique_id": UID, "ds": FEB, "y": _mean(synthetic_bundle, FEB)}])
    assert feb["conditioning"] == {JAN: pytest.approx(a)}  # judged on A, the latest


def _care_bundle():
    """The synthetic bundle on the care basis: paid share 0.5 at age 0, 0.6 at age 1 (wide)."""
    bundle = make_bundle(seed=0)
    rows = [(u, age, share) for u in bundle.ids for age, share in ((0, 0.5), (1, 0.6))]
    completion = pl.DataFrame(
        {
            "unique_id": [r[0] for r in rows],
            "age": [r[1] for r in rows],
            "paid_share": [r[2] for r in rows],
            "paid_share_sd": [0.3] * len(rows),
        }
    )
    meta = dataclasses.replace(bundle.meta, basis="care")
    return dataclasses.replace(bundle, meta=meta, completion=completion)


def test_the_request_as_of_is_stored_and_later_months_use_it(make_client):
    bundle = _care_bundle()
    c = make_client(loader=fake_loader(bundle))
    y_jan = 0.5 * _mean(bundle, JAN)  # January as of January: half paid
    (jan,) = _post(c, [{"unique_id": UID, "ds": JAN, "y": y_jan}], as_of=JAN)
    assert (jan["age"], jan["paid_share"], jan["as_of"]) == (0, 0.5, JAN)
    stored = c.get("/v1/anomalies", params={"unique_id": UID}).json()["results"]
    assert [r["as_of"] for r in stored] == [JAN]
    (feb,) = _post(c, [{"unique_id": UID, "ds": FEB, "y": 0.5 * _mean(bundle, FEB)}])
    assert feb["as_of"] == FEB and feb["age"] == 0  # its own default: the request's month
    # January conditions February completed at its own age (0: / 0.5), not at age 1 (/ 0.6)
    assert feb["conditioning"] == {JAN: pytest.approx(y_jan / 0.5)}


def test_the_stored_verdict_is_the_one_answered(client, synthetic_bundle):
    feb_obs = [{"unique_id": UID, "ds": FEB, "y": _mean(synthetic_bundle, FEB)}]
    (first,) = _post(client, feb_obs)
    assert first["conditioned_on"] == 0
    _post(client, [{"unique_id": UID, "ds": JAN, "y": _mean(synthetic_bundle, JAN)}])
    (again,) = _post(client, feb_obs)  # same value: not a new revision, judged anew
    assert (again["new"], again["conditioned_on"]) == (False, 1)
    stored = client.get("/v1/anomalies", params={"unique_id": UID, "since": FEB}).json()
    (row,) = stored["results"]
    for key in ("conditioned_on", "expected", "lo", "hi", "score", "status", "conditioning"):
        assert row[key] == again[key], key
