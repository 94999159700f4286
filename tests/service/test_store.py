"""The store on SQLite and PostgreSQL: idempotence, revisions, and 1,000 concurrent posts."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import defaultdict

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from forecasting.monitoring.judgement import Judgement
from service.config import Settings
from service.main import create_app
from service.store import Store
from tests.service.conftest import AUTH, KEY
from tests.service.server import running
from tests.service.synthetic import IDS, fake_loader


def _j(uid: str, month: int, y: float) -> Judgement:
    return Judgement(uid, dt.date(2024, month, 1), y, "EXPECTED", 99, 1.0, 0.0, 2.0)


@pytest.fixture
def store(db):
    url, schema = db
    s = Store(url, schema=schema)
    s.create()
    yield s
    s.dispose()


def test_idempotent_and_revisions(store):
    first = store.record([_j("total", 1, 10.0), _j("total", 1, 10.0)], model_version="m/1")
    assert [(s.revision, s.new) for s in first] == [(1, True), (1, True)]
    assert first[0].observation_id == first[1].observation_id
    again = store.record([_j("total", 1, 10.0)], model_version="m/1")
    assert (again[0].revision, again[0].new) == (1, False)
    rev = store.record([_j("total", 1, 11.5), _j("total", 2, 3.0)], model_version="m/1")
    assert [s.revision for s in rev] == [2, 1]
    back = store.record([_j("total", 1, 10.0)], model_version="m/1")
    assert back[0].revision == 1 and not back[0].new  # an old value is not a new revision
    assert store.observations_of("total", dt.date(2024, 1, 1)) == [(1, 10.0), (2, 11.5)]
    assert store.counts() == {"observations": 3, "results": 3, "pairs": 2}
    store.record([_j("total", 1, 10.0)], model_version="m/2")  # another model judges again
    assert store.counts()["results"] == 4
    rows = store.list_results(unique_id="total", since=dt.date(2024, 2, 1))
    assert [(r["ds"], r["revision"]) for r in rows] == [(dt.date(2024, 2, 1), 1)]


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
    path = tmp_path_factory.mktemp("h") / "s.db"
    store = Store(f"sqlite:///{path}")
    store.create()
    order: dict[tuple[str, int], list[float]] = defaultdict(list)
    for post in posts:
        store.record([_j(*o) for o in post], model_version="m")
        for uid, m, y in post:
            if y not in order[(uid, m)]:
                order[(uid, m)].append(y)
    for (uid, m), ys in order.items():
        assert store.observations_of(uid, dt.date(2024, m, 1)) == list(enumerate(ys, start=1))
    assert store.counts()["observations"] == sum(map(len, order.values()))
    store.dispose()


@pytest.mark.slow
def test_1000_concurrent_detect_posts(db, tmp_path, synthetic_bundle):
    url, schema = db
    cfg = Settings(
        database_url=url,
        database_schema=schema,
        api_keys=SecretStr(KEY),
        cache_dir=tmp_path / "cache",
        log_level="WARNING",
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
    seen_rev: dict[tuple[str, str, float], set[int]] = defaultdict(set)
    for r in responses:
        for v in r.json()["results"]:
            seen_rev[(v["unique_id"], v["ds"], v["y"])].add(v["revision"])
    assert all(len(revs) == 1 for revs in seen_rev.values())  # one value, one revision
    keys = [(s["unique_id"], s["ds"], s["y"]) for s in stored]
    assert len(keys) == len(set(keys)) == len(posted)  # nothing duplicated, nothing lost
    assert set(keys) == posted
    by_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in stored:
        by_pair[(s["unique_id"], s["ds"])].append(s["revision"])
    assert all(sorted(r) == list(range(1, len(r) + 1)) for r in by_pair.values())
