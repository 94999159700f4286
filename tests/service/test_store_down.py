"""The database down, slow or locked: 503 problems with Retry-After, a degraded start that
recovers by itself, and bounded waits (connect, statement, lock timeouts as settings)."""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from service.store import Store, Timeouts, upgrade
from tests.service.conftest import AUTH
from tests.service.pg_instance import Postgres, postgres_binaries
from tests.service.server import free_port

OBS = {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1.0}]}


def _down_url() -> str:
    return f"postgresql+psycopg://postgres:pw@127.0.0.1:{free_port()}/nowhere"


def test_start_with_the_database_down_is_degraded_and_answers_503(make_client):
    c = make_client(db=(_down_url(), None), upgraded=False, db_connect_timeout=1)
    ready = c.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded" and body["store"]["status"] == "unavailable"
    for r in (
        c.post("/v1/anomalies/detect", json=OBS, headers=AUTH),
        c.get("/v1/anomalies"),
    ):
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("store-unavailable") and r.headers["retry-after"]
        assert "pw" not in r.text and "nowhere" not in r.text
    assert c.get("/v1/forecast", params={"unique_id": "total"}).status_code == 200


@pytest.mark.slow
@pytest.mark.postgres
def test_the_service_recovers_when_the_database_comes_back(make_client):
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
    pg = Postgres()
    try:
        c = make_client(db=(pg.url, None), upgraded=False, db_connect_timeout=1)
        assert c.post("/v1/anomalies/detect", json=OBS, headers=AUTH).status_code == 503
        pg.start()
        upgrade(pg.url)
        r = c.post("/v1/anomalies/detect", json=OBS, headers=AUTH)  # no restart needed
        assert r.status_code == 200 and r.json()["results"][0]["revision"] == 1
        assert c.get("/readyz").json()["store"]["status"] == "ok"
        pg.stop("immediate")
        assert c.get("/v1/anomalies").status_code == 503
        pg.start()
        assert c.get("/v1/anomalies").json()["count"] == 1
    finally:
        pg.__exit__(None, None, None)


@pytest.mark.postgres
def test_postgres_sessions_carry_the_timeouts(db):
    url, schema = db
    if url.startswith("sqlite"):
        pytest.skip("PostgreSQL settings")
    upgrade(url, schema=schema)
    store = Store(url, schema=schema, timeouts=Timeouts(connect=3, statement=7, lock=2))
    with store.engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "7s"
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "2s"
        raw = conn.connection.dbapi_connection
        assert raw is not None and raw.info.get_parameters()["connect_timeout"] == "3"
    store.dispose()


def _hold_lock(url: str, schema: str | None, held: threading.Event, done: threading.Event):
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test")
        conn.execute(f'LOCK TABLE "{schema}".spendcast_observations IN ACCESS EXCLUSIVE MODE')
    held.set()
    done.wait(30)
    conn.rollback()
    conn.close()


def test_a_held_lock_is_waited_for_a_bounded_time(db, make_client):
    url, schema = db
    c = make_client(db=db, db_lock_timeout=1)
    held, done = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(url, schema, held, done))
    holder.start()
    held.wait(10)
    answer: list = []
    t0 = time.monotonic()
    poster = threading.Thread(
        target=lambda: answer.append(c.post("/v1/anomalies/detect", json=OBS, headers=AUTH)),
        daemon=True,
    )
    poster.start()
    poster.join(timeout=15)
    done.set()
    holder.join()
    assert answer, "the detect call still waits for the lock"
    assert answer[0].status_code == 503 and answer[0].headers["retry-after"]
    assert time.monotonic() - t0 < 10
    assert c.post("/v1/anomalies/detect", json=OBS, headers=AUTH).status_code == 200
