"""The store's schema is an explicit step (`spendcast db upgrade`, Alembic migrations shipped
in the package): new and older databases upgrade, the service only checks the version."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    inspect,
    text,
)
from typer.testing import CliRunner

from cli.main import app as cli
from forecasting.monitoring.judgement import Judgement
from service.store import Store, StoreOutdated, head, metadata, upgrade
from service.store.migrate import VERSION_TABLE
from tests.service.conftest import AUTH

runner = CliRunner()
NOW = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def legacy_tables(*, oldest: bool) -> MetaData:
    """The tables as spendcast made them at start before migrations: ``oldest`` = the first
    release (no as_of, no conditioning columns), else the last one (all columns)."""
    md = MetaData()
    ident = BigInteger().with_variant(Integer, "sqlite")
    extra_obs = [] if oldest else [Column("as_of", Date)]
    extra_res = (
        []
        if oldest
        else [
            Column("conditioned_on", Integer),
            Column("conditioning", Text),
            Column("age", Integer),
            Column("paid_share", Double),
            Column("explained_by", Text),
        ]
    )
    Table(
        "spendcast_observations",
        md,
        Column("id", ident, primary_key=True, autoincrement=True),
        Column("unique_id", String(512), nullable=False),
        Column("ds", Date, nullable=False),
        Column("y", Double, nullable=False),
        Column("revision", Integer, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("request_id", String(64)),
        *extra_obs,
        UniqueConstraint("unique_id", "ds", "y", name="uq_observation_value"),
        UniqueConstraint("unique_id", "ds", "revision", name="uq_observation_revision"),
    )
    Table(
        "spendcast_results",
        md,
        Column("id", ident, primary_key=True, autoincrement=True),
        Column(
            "observation_id",
            ident,
            ForeignKey("spendcast_observations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("model_version", String(512), nullable=False),
        Column("level", Integer, nullable=False),
        Column("expected", Double),
        Column("lo", Double),
        Column("hi", Double),
        Column("is_anomaly", Boolean, nullable=False),
        Column("direction", String(8)),
        Column("score", Double),
        Column("status", String(32), nullable=False),
        Column("judged_at", DateTime(timezone=True), nullable=False),
        *extra_res,
        UniqueConstraint("observation_id", "model_version", "level", name="uq_result"),
        Index("ix_results_flagged", "is_anomaly"),
    )
    return md


def _legacy(url: str, schema: str | None, *, oldest: bool) -> None:
    """A database as an older spendcast left it, with two revisions and their results."""
    engine = create_engine(url)
    if schema:
        engine = engine.execution_options(schema_translate_map={None: schema})
    with engine.begin() as conn:
        if schema:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        md = legacy_tables(oldest=oldest)
        md.create_all(conn)
        obs, res = md.tables["spendcast_observations"], md.tables["spendcast_results"]
        for rev, y in ((1, 10.0), (2, 11.0)):
            oid = conn.execute(
                obs.insert()
                .returning(obs.c.id)
                .values(
                    unique_id="total", ds=dt.date(2024, 1, 1), y=y, revision=rev, received_at=NOW
                )
            ).scalar_one()
            conn.execute(
                res.insert().values(
                    observation_id=oid, model_version="m/1", level=99, is_anomaly=False,
                    status="EXPECTED", judged_at=NOW,
                )
            )  # fmt: skip
    engine.dispose()


def _j(y: float) -> Judgement:
    return Judgement("total", dt.date(2024, 1, 1), y, "EXPECTED", 99, 1.0, 0.0, 2.0)


@pytest.mark.parametrize("oldest", [True, False], ids=["first-release", "last-release"])
def test_an_older_database_upgrades_and_keeps_its_rows(db, oldest):
    url, schema = db
    _legacy(url, schema, oldest=oldest)
    store = Store(url, schema=schema)
    assert store.status().status == "outdated"
    with pytest.raises(StoreOutdated, match="spendcast db upgrade"):
        store.latest(["total"], dt.date(2024, 1, 1))
    done = upgrade(url, schema=schema)
    assert (done.before, done.after) == (None, head())
    assert store.observations_of("total", dt.date(2024, 1, 1)) == [(1, 10.0), (2, 11.0)]
    (back,) = store.record([_j(10.0)], model_version="m/1")  # A -> B -> A: a revision now
    assert (back.revision, back.new) == (3, True)
    rows, _ = store.list_results(unique_id="total")
    assert [r["revision"] for r in rows] == [1, 2, 3] and rows[0]["as_of"] is None
    assert store.status().status == "ok"
    assert not upgrade(url, schema=schema).changed  # again: nothing to do
    store.drop()
    store.dispose()


def test_the_tables_match_the_newest_migration(db):
    url, schema = db
    upgrade(url, schema=schema)
    store = Store(url, schema=schema)
    insp = inspect(store.engine)
    for table in metadata.sorted_tables:
        have = {c["name"]: c["nullable"] for c in insp.get_columns(table.name, schema=schema)}
        assert have == {c.name: c.nullable for c in table.columns}, table.name
        indexes = {ix["name"] for ix in insp.get_indexes(table.name, schema=schema)}
        assert {ix.name for ix in table.indexes} <= indexes
        uniques = {u["name"] for u in insp.get_unique_constraints(table.name, schema=schema)}
        assert uniques == {c.name for c in table.constraints if isinstance(c, UniqueConstraint)}, (
            table.name
        )
    store.dispose()


def test_the_version_table_leaves_mlflow_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # MLflow versions its own tables in alembic_version
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('mlflow-head')"))
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "mlflow-head"
        )
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head()
    engine.dispose()


def test_the_service_checks_the_schema_and_never_creates_it(make_client, tmp_path):
    c = make_client(upgraded=False)
    ready = c.get("/readyz").json()
    assert ready["status"] == "degraded" and "spendcast db upgrade" in ready["reason"]
    assert ready["store"] == {
        "status": "outdated",
        "schema_version": None,
        "expected_version": head(),
    }
    obs = {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1.0}]}
    r = c.post("/v1/anomalies/detect", json=obs, headers=AUTH)
    assert r.status_code == 503 and r.json()["type"].endswith("store-outdated")
    assert "spendcast db upgrade" in r.json()["detail"] and r.headers["retry-after"]
    assert c.get("/v1/anomalies").status_code == 503
    assert c.get("/v1/forecast", params={"unique_id": "total"}).status_code == 200
    store = c.app.state.store
    assert inspect(store.engine).get_table_names() == []  # the start made no table
    upgrade(store.url)  # the operator runs the step: the running service serves the store
    assert c.post("/v1/anomalies/detect", json=obs, headers=AUTH).status_code == 200
    assert c.get("/readyz").json()["store"]["status"] == "ok"


def test_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    r = runner.invoke(cli, ["db", "status", "--database-url", url])
    assert r.exit_code == 1 and "outdated" in r.output and "spendcast db upgrade" in r.output
    r = runner.invoke(cli, ["db", "upgrade", "--database-url", url])
    assert r.exit_code == 0, r.output
    assert f"none -> {head()}" in r.output
    r = runner.invoke(cli, ["db", "upgrade", "--database-url", url])
    assert r.exit_code == 0 and "up to date" in r.output
    r = runner.invoke(cli, ["db", "status", "--database-url", url])
    assert r.exit_code == 0 and f"ok, schema {head()}" in r.output
    secret = "postgresql+psycopg://u:TopSecret@127.0.0.1:1/x"
    r = runner.invoke(cli, ["db", "upgrade", "--database-url", secret])
    assert r.exit_code == 2 and "unavailable" in r.output and "TopSecret" not in r.output
