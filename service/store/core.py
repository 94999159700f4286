"""The observation store: observations, their revisions and the judgements made of them.

A detect call runs :meth:`Store.judge_and_record`: one transaction that first takes the
store's write lock (``BEGIN IMMEDIATE`` on SQLite, ``LOCK TABLE ... SHARE ROW EXCLUSIVE`` on
PostgreSQL), reads the latest revision of the months that condition the judgement, judges,
and writes. Concurrent calls are therefore serialised: none loses or duplicates an
observation, revisions stay dense, and every stored verdict is the one that was answered.

Revisions (per ``(unique_id, ds)``): a posted value is a duplicate when it equals the
**latest** revision (same ``y`` and same effective ``as_of``), else it is stored as the next
revision, so A -> B -> A stores three revisions and later months are judged on A.
Observations judged ``UNKNOWN_SERIES`` or ``OUT_OF_HORIZON`` are answered, never stored.

Before its first use the store checks that the schema is at the version this code needs
(:func:`~service.store.migrate.head`); it never changes the schema itself (``spendcast db
upgrade`` does). Database failures surface as :class:`~service.store.engine.StoreUnavailable`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, func, insert, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from forecasting.monitoring.judgement import Judgement
from service.store import migrate
from service.store.engine import (
    StoreOutdated,
    StoreUnavailable,
    Timeouts,
    guard,
    make_engine,
)
from service.store.rows import decode_cursor, encode_cursor, observation_row, result_row
from service.store.tables import JSON_COLUMNS, VERDICT_COLUMNS, metadata, observations, results

__all__ = ["Store", "StoredJudgement", "StoreStatus", "Known", "NOT_STORED"]

NOT_STORED = frozenset({"UNKNOWN_SERIES", "OUT_OF_HORIZON"})
"""Statuses answered but never stored: nothing to compare them with, now or later."""
_CHUNK = 500
Known = tuple[str, dt.date, float, dt.date | None]
"""A stored latest revision: ``(unique_id, ds, y, as_of)``."""


@dataclass(frozen=True)
class StoredJudgement:
    """A judgement with where it was stored."""

    judgement: Judgement
    observation_id: int
    revision: int
    new: bool


@dataclass(frozen=True)
class StoreStatus:
    """What ``/readyz`` says of the store."""

    status: Literal["ok", "unavailable", "outdated"]
    schema_version: str | None
    expected_version: str


@dataclass
class _Latest:
    """The latest revision of one (series, month), stored or about to be."""

    revision: int
    y: float
    as_of: dt.date | None
    observation_id: int | None = None
    pending: bool = False  # inserted by this call


class Store:
    """Observations and results in a SQL database (SQLite or PostgreSQL).

    Args:
        url: SQLAlchemy URL (``sqlite:///file.db`` or ``postgresql+psycopg://...``).
        schema: PostgreSQL schema that holds the tables (made by ``spendcast db upgrade``).
        timeouts: bounds on every wait for the database.
    """

    def __init__(
        self, url: str, *, schema: str | None = None, timeouts: Timeouts | None = None
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.schema = schema if not self.is_sqlite else None
        self.timeouts = timeouts or Timeouts()
        engine = make_engine(url, self.timeouts)
        if self.schema:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        self.engine = engine
        self._verified = False

    # ----------------------------------------------------------------- lifecycle
    def version(self) -> str | None:
        """The schema version of the database (None: never upgraded)."""
        with guard("version"), self.engine.connect() as conn:
            return migrate.current(conn, self.schema)

    def status(self) -> StoreStatus:
        """Whether the database answers and holds the schema this code needs."""
        expected = migrate.head()
        try:
            found = self.version()
        except StoreUnavailable:
            return StoreStatus("unavailable", None, expected)
        self._verified = found == expected
        return StoreStatus("ok" if self._verified else "outdated", found, expected)

    def _verify(self, conn: Connection) -> None:
        if self._verified:
            return
        found, expected = migrate.current(conn, self.schema), migrate.head()
        if found != expected:
            raise StoreOutdated(
                f"the database schema is at version {found or 'none'}, this service needs "
                f"{expected}: run `spendcast db upgrade`"
            )
        self._verified = True

    def drop(self) -> None:
        """Drop the tables, the version table and (PostgreSQL) the schema. For tests."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            if self.schema:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                conn.execute(text(f"DROP TABLE IF EXISTS {migrate.VERSION_TABLE}"))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    @contextmanager
    def _connect(self, what: str, *, write: bool = False) -> Iterator[Connection]:
        """A verified connection; for ``write``, in a transaction holding the write lock."""
        with guard(what), self.engine.connect() as conn:
            if not write:
                self._verify(conn)
                yield conn
                return
            conn = conn.execution_options(spendcast_write=True)
            with conn.begin():
                self._verify(conn)
                if not self.is_sqlite:
                    name = f'"{self.schema}".{observations.name}' if self.schema else None
                    conn.execute(
                        text(f"LOCK TABLE {name or observations.name} IN SHARE ROW EXCLUSIVE MODE")
                    )
                yield conn

    # ----------------------------------------------------------------- writes
    def judge_and_record(
        self,
        unique_ids: Sequence[str],
        since: dt.date,
        judge: Callable[[list[Known]], Sequence[Judgement]],
        *,
        model_version: str,
        request_id: str | None = None,
    ) -> tuple[list[Judgement], list[StoredJudgement | None]]:
        """Read the latest revisions, judge on them and store, under the write lock.

        Args:
            unique_ids: the series whose stored months condition the judgement.
            since: the first month that counts (the model's training end).
            judge: ``known rows -> judgements`` (pure; called once, inside the lock).
            model_version: the model that judges.
            request_id: stored with new observations.

        Returns:
            The judgements and, per judgement, where it was stored (None: not stored).
        """
        with self._connect("judge_and_record", write=True) as conn:
            judgements = list(judge(self._latest(conn, unique_ids, since)))
            stored = self._record(conn, judgements, model_version, request_id)
        return judgements, stored

    def record(
        self,
        judgements: Sequence[Judgement],
        *,
        model_version: str,
        request_id: str | None = None,
    ) -> list[StoredJudgement | None]:
        """Store judgements already made (one locked transaction); None where not stored."""
        with self._connect("record", write=True) as conn:
            return self._record(conn, list(judgements), model_version, request_id)

    def _record(
        self,
        conn: Connection,
        judgements: list[Judgement],
        model_version: str,
        request_id: str | None,
    ) -> list[StoredJudgement | None]:
        now = dt.datetime.now(dt.UTC)
        keep = [j for j in judgements if j.status not in NOT_STORED]
        latest = self._latest_revisions(conn, {(j.unique_id, j.ds) for j in keep})
        rows: list[dict[str, Any]] = []
        pending: list[_Latest] = []
        slots: list[tuple[_Latest, bool] | None] = []
        for j in judgements:
            if j.status in NOT_STORED:
                slots.append(None)
                continue
            cur = latest.get((j.unique_id, j.ds))
            if cur is None or cur.y != j.y or cur.as_of != j.as_of:
                cur = latest[(j.unique_id, j.ds)] = _Latest(
                    (cur.revision if cur else 0) + 1, j.y, j.as_of, pending=True
                )
                rows.append(observation_row(j, cur.revision, now, request_id))
                pending.append(cur)
            slots.append((cur, cur.pending))
        if rows:
            ids = list(
                conn.execute(
                    insert(observations).returning(observations.c.id, sort_by_parameter_order=True),
                    rows,
                ).scalars()
            )
            for cur, oid in zip(pending, ids, strict=True):
                cur.observation_id = int(oid)
        out = [
            None if s is None else StoredJudgement(j, int(s[0].observation_id or 0), *_rev(s))
            for j, s in zip(judgements, slots, strict=True)
        ]
        self._upsert_results(conn, [s for s in out if s is not None], model_version, now)
        return out

    def _latest_revisions(
        self, conn: Connection, keys: set[tuple[str, dt.date]]
    ) -> dict[tuple[str, dt.date], _Latest]:
        """The latest stored revision of each (series, month) in ``keys``."""
        out: dict[tuple[str, dt.date], _Latest] = {}
        if not keys:
            return out
        ids, months = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
        c = observations.c
        for i in range(0, len(ids), _CHUNK):
            stmt = select(c.id, c.unique_id, c.ds, c.y, c.revision, c.as_of).where(
                c.unique_id.in_(ids[i : i + _CHUNK]), c.ds.between(months[0], months[-1])
            )
            for oid, uid, ds, y, rev, as_of in conn.execute(stmt):
                prev = out.get((uid, ds))
                if (uid, ds) in keys and (prev is None or rev > prev.revision):
                    out[(uid, ds)] = _Latest(int(rev), float(y), as_of, observation_id=int(oid))
        return out

    def _upsert_results(
        self, conn: Connection, stored: list[StoredJudgement], model_version: str, now: dt.datetime
    ) -> None:
        """Insert each verdict, or replace the one stored for the same observation and level."""
        rows = {
            (s.observation_id, s.judgement.level): result_row(s, model_version, now) for s in stored
        }
        if not rows:
            return
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        stmt = dialect_insert(results)
        stmt = stmt.on_conflict_do_update(
            index_elements=["observation_id", "model_version", "level"],
            set_={col: stmt.excluded[col] for col in VERDICT_COLUMNS},
        )
        values = list(rows.values())
        for i in range(0, len(values), _CHUNK):
            conn.execute(stmt, values[i : i + _CHUNK])

    # ----------------------------------------------------------------- reads
    def _latest(self, conn: Connection, unique_ids: Sequence[str], since: dt.date) -> list[Known]:
        c = observations.c
        ids = sorted(set(unique_ids))
        latest: dict[tuple[str, dt.date], tuple[int, float, dt.date | None]] = {}
        for i in range(0, len(ids), _CHUNK):
            stmt = select(c.unique_id, c.ds, c.revision, c.y, c.as_of).where(
                c.unique_id.in_(ids[i : i + _CHUNK]), c.ds >= since
            )
            for uid, ds, rev, y, as_of in conn.execute(stmt):
                prev = latest.get((uid, ds))
                if prev is None or int(rev) > prev[0]:
                    latest[(uid, ds)] = (int(rev), float(y), as_of)
        return [(u, d, y, a) for (u, d), (_, y, a) in sorted(latest.items())]

    def latest(self, unique_ids: Sequence[str], since: dt.date) -> list[Known]:
        """Latest revision ``(unique_id, ds, y, as_of)`` of every stored month on or after
        ``since``: what conditions one-step-ahead judging."""
        with self._connect("latest") as conn:
            return self._latest(conn, unique_ids, since)

    def list_results(
        self,
        *,
        unique_id: str | None = None,
        since: dt.date | None = None,
        flagged: bool | None = None,
        limit: int = 1000,
        after: str | None = None,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Stored results joined with their observations, oldest month first.

        Args:
            unique_id: only this series.
            since: only months on or after this date.
            flagged: only anomalies (``True``) or only non-anomalies (``False``).
            limit: most rows returned.
            after: the cursor a previous page returned (keyset pagination).
            offset: rows skipped (deprecated: slow on long tables; use ``after``).

        Returns:
            The rows (``conditioning`` and ``explained_by`` parsed from their JSON) and the
            cursor of the next page (None on the last one).
        """
        o, r = observations.c, results.c
        stmt = select(
            *(o[k] for k in ("unique_id", "ds", "y", "revision", "received_at", "as_of")),
            *(r[k] for k in ("id", "model_version", "level", *VERDICT_COLUMNS)),
        ).join_from(observations, results, o.id == r.observation_id)
        if unique_id is not None:
            stmt = stmt.where(o.unique_id == unique_id)
        if since is not None:
            stmt = stmt.where(o.ds >= since)
        if flagged is not None:
            stmt = stmt.where(r.is_anomaly.is_(flagged))
        if after is not None:
            ds, uid, rev, rid = decode_cursor(after)
            key = tuple_(o.ds, o.unique_id, o.revision)
            stmt = stmt.where(
                or_(key > tuple_(ds, uid, rev), and_(key == tuple_(ds, uid, rev), r.id > rid))
            )
        stmt = stmt.order_by(o.ds, o.unique_id, o.revision, r.id).limit(limit).offset(offset)
        with self._connect("list_results") as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        for row in rows:
            for col in JSON_COLUMNS:
                row[col] = None if row[col] is None else json.loads(row[col])
        last = rows[-1] if len(rows) == limit else None
        cursor = None if last is None else encode_cursor(last)
        for row in rows:
            del row["id"]
        return rows, cursor

    def counts(self) -> dict[str, int]:
        """Row counts (observations, results, distinct (series, month) pairs)."""
        with self._connect("counts") as conn:
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
        with self._connect("observations_of") as conn:
            return [(int(a), float(b)) for a, b in conn.execute(stmt)]

    def all_observations(self) -> list[dict[str, Any]]:
        """Every stored observation (series, month, revision, y, as_of), in key order."""
        c = observations.c
        stmt = select(c.unique_id, c.ds, c.revision, c.y, c.as_of).order_by(
            c.unique_id, c.ds, c.revision
        )
        with self._connect("all_observations") as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]


def _rev(slot: tuple[_Latest, bool]) -> tuple[int, bool]:
    return slot[0].revision, slot[1]
