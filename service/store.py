"""The observation store: the only module that touches the database (SQLAlchemy 2).

SQLite (WAL journal) by default, PostgreSQL through the same code. Two tables:

``observations``
    ``(unique_id, ds, y)`` is unique: re-posting the same value is idempotent. A new value for
    the same ``(unique_id, ds)`` is a new row with the next ``revision`` (1, 2, ...); nothing
    is ever overwritten.
``results``
    one judgement per ``(observation_id, model_version, level)``, with what conditioned it
    (``conditioned_on`` months, ``conditioning`` JSON month -> value used), the care-basis
    ``age`` / ``paid_share`` and, for a flagged parent, ``explained_by`` (JSON). Both JSON
    columns are written and read here: callers see plain data.

Columns added after a table was first created are added in place at start (nullable
``ALTER TABLE ... ADD COLUMN``), so existing databases keep working.

Writes of one detect call run in one transaction that first takes the store's write lock
(``BEGIN IMMEDIATE`` on SQLite, ``LOCK TABLE ... SHARE ROW EXCLUSIVE`` on PostgreSQL), so
concurrent calls neither lose nor duplicate observations and revisions stay dense.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from forecasting.monitoring.judgement import Judgement

__all__ = ["Store", "StoredJudgement", "metadata", "observations", "results"]

metadata = MetaData()
_ID = BigInteger().with_variant(Integer, "sqlite")

observations = Table(
    "spendcast_observations",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("unique_id", String(512), nullable=False),
    Column("ds", Date, nullable=False),
    Column("y", Double, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64)),
    Column("as_of", Date),
    UniqueConstraint("unique_id", "ds", "y", name="uq_observation_value"),
    UniqueConstraint("unique_id", "ds", "revision", name="uq_observation_revision"),
)

results = Table(
    "spendcast_results",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "observation_id",
        _ID,
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
    Column("conditioned_on", Integer),
    Column("conditioning", Text),
    Column("age", Integer),
    Column("paid_share", Double),
    Column("explained_by", Text),
    UniqueConstraint("observation_id", "model_version", "level", name="uq_result"),
    Index("ix_results_flagged", "is_anomaly"),
)

_CHUNK = 500
_JSON_COLUMNS = ("conditioning", "explained_by")


def _conditioning_json(conditioning: Mapping[dt.date, float] | None) -> str | None:
    """``{"YYYY-MM-DD": value}`` JSON text of what conditioned a judgement."""
    if conditioning is None:
        return None
    return json.dumps({d.isoformat(): v for d, v in conditioning.items()})


@dataclass(frozen=True)
class StoredJudgement:
    """A judgement with where it was stored."""

    judgement: Judgement
    observation_id: int
    revision: int
    new: bool


class Store:
    """Observations and results in a SQL database.

    Args:
        url: SQLAlchemy URL (``sqlite:///file.db`` or ``postgresql+psycopg://...``).
        schema: PostgreSQL schema to hold the tables (created when missing).
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {}
        if schema and not self.is_sqlite:
            options["schema_translate_map"] = {None: schema}
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 60}
            )
            _sqlite_events(self.engine)
        else:
            self.engine = create_engine(
                url, pool_size=10, max_overflow=30, pool_timeout=60, pool_pre_ping=True
            )
        if options:
            self.engine = self.engine.execution_options(**options)

    # ----------------------------------------------------------------- lifecycle
    def create(self) -> None:
        """Create the schema and tables when missing."""
        with self.engine.begin() as conn:
            if self.schema and not self.is_sqlite:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn)
            self._add_missing_columns(conn)

    def _add_missing_columns(self, conn: Connection) -> None:
        """Add nullable columns that a table created by an older version lacks."""
        insp = inspect(conn)
        for table in (observations, results):
            have = {c["name"] for c in insp.get_columns(table.name, schema=self.schema)}
            for col in table.columns:
                if col.name in have or not col.nullable:
                    continue
                kind = col.type.compile(dialect=conn.dialect)
                conn.execute(text(f"ALTER TABLE {self._name(table)} ADD COLUMN {col.name} {kind}"))

    def drop(self) -> None:
        """Drop the tables (and the schema, on PostgreSQL). For tests."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            if self.schema and not self.is_sqlite:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ----------------------------------------------------------------- writes
    def _lock(self, conn: Connection) -> None:
        if not self.is_sqlite:
            conn.execute(text(f"LOCK TABLE {self._name(observations)} IN SHARE ROW EXCLUSIVE MODE"))

    def _name(self, table: Table) -> str:
        return f'"{self.schema}".{table.name}' if self.schema and not self.is_sqlite else table.name

    def record(
        self,
        judgements: Sequence[Judgement],
        *,
        model_version: str,
        request_id: str | None = None,
    ) -> list[StoredJudgement]:
        """Store observations (idempotent, revisions) and their judgements in one transaction.

        Returns:
            One :class:`StoredJudgement` per input, in input order.
        """
        if not judgements:
            return []
        now = dt.datetime.now(dt.UTC)
        with self.engine.connect().execution_options(spendcast_write=True) as conn:
            with conn.begin():
                self._lock(conn)
                known, max_rev = self._existing(conn, {(j.unique_id, j.ds) for j in judgements})
                new_rows: list[dict[str, Any]] = []
                pending: dict[tuple[str, dt.date, float], int] = {}
                for j in judgements:
                    key = (j.unique_id, j.ds, j.y)
                    if key in known or key in pending:
                        continue
                    rev = max_rev.get((j.unique_id, j.ds), 0) + 1
                    max_rev[(j.unique_id, j.ds)] = rev
                    pending[key] = rev
                    new_rows.append(
                        {
                            "unique_id": j.unique_id,
                            "ds": j.ds,
                            "y": j.y,
                            "revision": rev,
                            "received_at": now,
                            "request_id": request_id,
                            "as_of": j.as_of,
                        }
                    )
                if new_rows:
                    ids = conn.execute(
                        insert(observations).returning(
                            observations.c.id, sort_by_parameter_order=True
                        ),
                        new_rows,
                    ).scalars()
                    for row, oid in zip(new_rows, ids, strict=True):
                        known[(row["unique_id"], row["ds"], row["y"])] = (int(oid), row["revision"])
                out = [
                    StoredJudgement(
                        j,
                        *known[(j.unique_id, j.ds, j.y)],
                        new=(j.unique_id, j.ds, j.y) in pending,
                    )
                    for j in judgements
                ]
                self._insert_results(conn, out, model_version, now)
        return out

    def _existing(
        self, conn: Connection, keys: set[tuple[str, dt.date]]
    ) -> tuple[dict[tuple[str, dt.date, float], tuple[int, int]], dict[tuple[str, dt.date], int]]:
        known: dict[tuple[str, dt.date, float], tuple[int, int]] = {}
        max_rev: dict[tuple[str, dt.date], int] = {}
        ids = sorted({k[0] for k in keys})
        months = sorted({k[1] for k in keys})
        c = observations.c
        for i in range(0, len(ids), _CHUNK):
            stmt = select(c.id, c.unique_id, c.ds, c.y, c.revision).where(
                c.unique_id.in_(ids[i : i + _CHUNK]), c.ds.between(months[0], months[-1])
            )
            for oid, uid, ds, y, rev in conn.execute(stmt):
                if (uid, ds) not in keys:
                    continue
                known[(uid, ds, float(y))] = (int(oid), int(rev))
                max_rev[(uid, ds)] = max(max_rev.get((uid, ds), 0), int(rev))
        return known, max_rev

    def _insert_results(
        self,
        conn: Connection,
        stored: Iterable[StoredJudgement],
        model_version: str,
        now: dt.datetime,
    ) -> None:
        rows: dict[tuple[int, int], dict[str, Any]] = {}
        for s in stored:
            j = s.judgement
            rows.setdefault(
                (s.observation_id, j.level),
                {
                    "observation_id": s.observation_id,
                    "model_version": model_version,
                    "level": j.level,
                    "expected": j.expected,
                    "lo": j.lo,
                    "hi": j.hi,
                    "is_anomaly": j.is_anomaly,
                    "direction": j.direction,
                    "score": j.score,
                    "status": j.status,
                    "judged_at": now,
                    "conditioned_on": j.conditioned_on,
                    "conditioning": _conditioning_json(j.conditioning),
                    "age": j.age,
                    "paid_share": j.paid_share,
                    "explained_by": None if j.explained_by is None else json.dumps(j.explained_by),
                },
            )
        if not rows:
            return
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        stmt = dialect_insert(results).on_conflict_do_nothing(
            index_elements=["observation_id", "model_version", "level"]
        )
        values = list(rows.values())
        for i in range(0, len(values), _CHUNK):
            conn.execute(stmt, values[i : i + _CHUNK])

    # ----------------------------------------------------------------- reads
    def list_results(
        self,
        *,
        unique_id: str | None = None,
        since: dt.date | None = None,
        flagged: bool | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Stored results joined with their observations, oldest month first.

        Args:
            unique_id: only this series.
            since: only months on or after this date.
            flagged: only anomalies (``True``) or only non-anomalies (``False``).
            limit: most rows returned.
            offset: rows skipped (paging).

        Returns:
            One dict per result; ``conditioning`` and ``explained_by`` parsed from their JSON.
        """
        o, r = observations.c, results.c
        stmt = select(
            o.unique_id,
            o.ds,
            o.y,
            o.revision,
            o.received_at,
            r.model_version,
            r.level,
            r.expected,
            r.lo,
            r.hi,
            r.is_anomaly,
            r.direction,
            r.score,
            r.status,
            r.judged_at,
            r.conditioned_on,
            r.conditioning,
            r.age,
            r.paid_share,
            r.explained_by,
            o.as_of,
        ).join_from(observations, results, o.id == r.observation_id)
        if unique_id is not None:
            stmt = stmt.where(o.unique_id == unique_id)
        if since is not None:
            stmt = stmt.where(o.ds >= since)
        if flagged is not None:
            stmt = stmt.where(r.is_anomaly.is_(flagged))
        stmt = stmt.order_by(o.ds, o.unique_id, o.revision, r.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        for row in rows:
            for col in _JSON_COLUMNS:
                row[col] = None if row[col] is None else json.loads(row[col])
        return rows

    def latest(
        self, unique_ids: Sequence[str], since: dt.date
    ) -> list[tuple[str, dt.date, float, dt.date | None]]:
        """Latest revision of every stored (series, month) on or after ``since``.

        Returns ``(unique_id, ds, y, as_of)`` rows: what conditions one-step-ahead judging.
        """
        c = observations.c
        ids = sorted(set(unique_ids))
        latest: dict[tuple[str, dt.date], tuple[int, float, dt.date | None]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                stmt = select(c.unique_id, c.ds, c.revision, c.y, c.as_of).where(
                    c.unique_id.in_(ids[i : i + _CHUNK]), c.ds >= since
                )
                for uid, ds, rev, y, as_of in conn.execute(stmt):
                    prev = latest.get((uid, ds))
                    if prev is None or int(rev) > prev[0]:
                        latest[(uid, ds)] = (int(rev), float(y), as_of)
        return [(u, d, y, a) for (u, d), (_, y, a) in sorted(latest.items())]

    def counts(self) -> dict[str, int]:
        """Row counts (observations, results, distinct (series, month) pairs)."""
        with self.engine.connect() as conn:
            n_obs = conn.execute(select(func.count()).select_from(observations)).scalar_one()
            n_res = conn.execute(select(func.count()).select_from(results)).scalar_one()
            pairs = conn.execute(
                select(func.count()).select_from(
                    select(observations.c.unique_id, observations.c.ds).distinct().subquery()
                )
            ).scalar_one()
        return {"observations": int(n_obs), "results": int(n_res), "pairs": int(pairs)}

    def observations_of(self, unique_id: str, ds: dt.date) -> list[tuple[int, float]]:
        """``(revision, y)`` of every stored value of one (series, month)."""
        c = observations.c
        stmt = (
            select(c.revision, c.y).where(c.unique_id == unique_id, c.ds == ds).order_by(c.revision)
        )
        with self.engine.connect() as conn:
            return [(int(a), float(b)) for a, b in conn.execute(stmt)]


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("spendcast_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
