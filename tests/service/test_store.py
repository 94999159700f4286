"""The store on SQLite and PostgreSQL: idempotence, revisions, and 1,000 concurrent posts."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import defaultdict
from dataclasses import replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import inspect

from forecasting.errors import InputError
from forecasting.monitoring.judgement import Judgement
from service.config import Settings
from service.main import create_app
from service.store import Store, upgrade
from tests.service.conftest import AUTH, KEY, sqlite_store
from tests.service.server import running
from tests.service.synthetic import IDS, fake_loader


def _j(uid: str, month: int, y: float) -> Judgement:
    return Judgement(uid, dt.date(2024, month, 1), y, "EXPECTED", 99, 1.0, 0.0, 2.0)


@pytest.fixture
def store(db):
    url, schema = db
    upgrade(url, schema=schema)
    s = Store(url, schema=schema)
    yield s
    s.dispose()


def test_duplicate_only_of_the_latest_revision(store):
    first = store.record([_j("total", 1, 10.0), _j("total", 1, 10.0)], model_version="m/1")
    assert [(s.revision, s.new) for s in first] == [(1, True), (1, True)]
    assert first[0].observation_id == first[1].observation_id
    again = store.record([_j("total", 1, 10.0)], model_version="m/1")
    assert (again[0].revision, again[0].new) == (1, False)
    rev = store.record([_j("total", 1, 11.5), _j("total", 2, 3.0)], model_version="m/1")
    assert [s.revision for s in rev] == [2, 1]
    back = store.record([_j("total", 1, 10.0)], model_version="m/1")
    assert (back[0].revision, back[0].new) == (3, True)  # A -> B -> A: A is the latest again
    assert store.latest(["total"], dt.date(2024, 1, 1))[0][2] == 10.0
    same = store.record([_j("total", 1, 10.0)], model_version="m/1")
    assert (same[0].revision, same[0].new) == (3, False)
    assert store.observations_of("total", dt.date(2024, 1, 1)) == [(1, 10.0), (2, 11.5), (3, 10.0)]
    assert store.counts() == {"observations": 4, "results": 4, "pairs": 2}
    store.record([_j("total", 1, 10.0)], model_version="m/2")  # another model judges again
    assert store.counts()["results"] == 5
    rows, _ = store.list_results(unique_id="total", since=dt.date(2024, 2, 1))
    assert [(r["ds"], r["revision"]) for r in rows] == [(dt.date(2024, 2, 1), 1)]


def test_effective_as_of_is_stored_and_part_of_the_revision(store):
    jan, feb, mar = (dt.date(2024, m, 1) for m in (1, 2, 3))
    store.record([replace(_j("total", 1, 10.0), as_of=feb)], model_version="m")
    assert store.latest(["total"], jan) == [("total", jan, 10.0, feb)]
    (b,) = store.record([replace(_j("total", 1, 10.0), as_of=feb)], model_version="m")
    assert (b.revision, b.new) == (1, False)
    (c,) = store.record([replace(_j("total", 1, 10.0), as_of=mar)], model_version="m")
    assert (c.revision, c.new) == (2, True)  # same value, one month older: a new revision
    assert store.latest(["total"], jan) == [("total", jan, 10.0, mar)]


def test_the_stored_verdict_is_the_last_one_answered(store):
    store.record([_j("total", 1, 10.0)], model_version="m")
    later = replace(_j("total", 1, 10.0), status="ANOMALY", is_anomaly=True, direction="above")
    (s,) = store.record([later], model_version="m")
    assert s is not None and not s.new
    rows, _ = store.list_results(unique_id="total")
    assert [(r["status"], r["is_anomaly"], r["direction"]) for r in rows] == [
        ("ANOMALY", True, "above")
    ]


def test_unknown_and_out_of_horizon_are_not_stored(store):
    out = store.record(
        [
            replace(_j("nope", 1, 1.0), status="UNKNOWN_SERIES"),
            replace(_j("total", 1, 1.0), status="OUT_OF_HORIZON"),
            _j("total", 2, 2.0),
        ],
        model_version="m",
    )
    assert out[0] is None and out[1] is None and out[2] is not None
    assert store.counts() == {"observations": 1, "results": 1, "pairs": 1}


def test_listing_pages_with_a_cursor(store):
    for m in (3, 1, 2):
        store.record(
            [_j(u, m, float(m)) for u in ("total/b", "total", "total/a")], model_version="m"
        )
    everything, last = store.list_results(limit=100)
    assert last is None and len(everything) == 9
    keys = [(r["ds"], r["unique_id"]) for r in everything]
    assert keys == sorted(keys)
    pages, after = [], None
    while True:
        rows, after = store.list_results(limit=4, after=after)
        pages.append(rows)
        if after is None:
            break
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [r for p in pages for r in p] == everything
    old_way, _ = store.list_results(limit=4, offset=4)  # offset still works (deprecated)
    assert old_way == everything[4:8]
    with pytest.raises(InputError, match="cursor") as err:
        store.list_results(after="not-a-cursor")
    assert err.value.column == "after"


def test_the_listing_order_has_an_index(store):
    indexes = inspect(store.engine).get_indexes("spendcast_observations", schema=store.schema)
    assert any(ix["column_names"][0] == "ds" for ix in indexes)


values = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["total", "total/a"]),
            st.integers(1, 3),
            st.sampled_from([0.0, 1.5, -2.25, 1e9]),
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(posts=values)
def test_no_lost_no_duplicated_revisions_dense(tmp_path_factory, posts):
    """Any sequence of posts stores, per (series, month), exactly the values that differ from
    the one before (revisions 1, 2, ... in posting order)."""
    path = tmp_path_factory.mktemp("h") / "s.db"
    store = Store(sqlite_store(path))
    order: dict[tuple[str, int], list[float]] = defaultdict(list)
    for post in posts:
        store.record([_j(*o) for o in post], model_version="m")
        for uid, m, y in post:
            if not order[(uid, m)] or order[(uid, m)][-1] != y:
                order[(uid, m)].append(y)
    for (uid, m), ys in order.items():
        assert store.observations_of(uid, dt.date(2024, m, 1)) == list(enumerate(ys, start=1))
    assert store.counts()["observations"] == sum(map(len, order.values()))
    store.dispose()


@pytest.mark.slow
def test_1000_concurrent_detect_posts(db, tmp_path, synthetic_bundle):
    url, schema = db
    upgrade(url, schema=schema)
    cfg = Settings(
        database_url=url,
        database_schema=schema,
        api_keys=SecretStr(KEY),
        cache_dir=tmp_path / "cache",
        log_level="WARNING",
        db_lock_timeout=300,  # correctness under contention here, not latency: never 503
    )
    app = create_app(cfg, loader=fake_loader(synthetic_bundle))
    rng = random.Random(7)
    pool = [(u, f"2024-0{m}-01", v) for u in IDS[:3] for m in (1, 2) for v in (100.0, 200.5, 300.0)]
    posts = [rng.sample(pool, rng.randint(1, 3)) for _ in range(1000)]

    async def drive(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as c:
            sem = asyncio.Semaphore(64)

            async def one(post):
                body = {"observations": [{"unique_id": u, "ds": d, "y": y} for u, d, y in post]}
                async with sem:
                    return await c.post("/v1/anomalies/detect", json=body, headers=AUTH)

            return await asyncio.gather(*(one(p) for p in posts))

    with running(app) as base:
        responses = asyncio.run(drive(base))
        stored = httpx.get(base + "/v1/anomalies", params={"limit": 10000}).json()["results"]
    assert [r.status_code for r in responses if r.status_code != 200] == []
    posted = {(u, d, y) for p in posts for u, d, y in p}
    acknowledged = {
        (v["unique_id"], v["ds"], v["revision"], v["y"])
        for r in responses
        for v in r.json()["results"]
    }
    got = {(s["unique_id"], s["ds"], s["revision"], s["y"]) for s in stored}
    assert len(got) == len(stored)  # one result per observation (one model, one level)
    assert acknowledged == got  # nothing acknowledged is lost, nothing stored unacknowledged
    assert {(u, d, y) for u, d, _, y in got} == posted
    by_pair: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for u, d, rev, y in got:
        by_pair[(u, d)][rev] = y
    for revs in by_pair.values():
        assert sorted(revs) == list(range(1, len(revs) + 1))  # dense
        assert all(revs[k] != revs[k + 1] for k in range(1, len(revs)))  # no repeat stored
