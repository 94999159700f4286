"""Engines with bounded waits, and database failures turned into two domain errors.

Every wait on the database is bounded (:class:`Timeouts`, from the service settings):

* PostgreSQL: ``connect_timeout`` (libpq), ``statement_timeout`` and ``lock_timeout``
  (session options), and the pool's checkout wait;
* SQLite: the busy timeout (``PRAGMA busy_timeout``) is the lock timeout; SQLite has no
  connect or statement timeout (a local file).

:func:`guard` turns what a down, restarting or overloaded database raises (SQLAlchemy's
``OperationalError``, ``InterfaceError``, pool ``TimeoutError``, invalidated connections)
into :class:`StoreUnavailable`, which the service answers with 503 and ``Retry-After``; the
log gets the driver's message with passwords masked, never the statement's parameters
(``hide_parameters``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from forecasting.errors import SpendcastError
from forecasting.redact import redact

__all__ = [
    "Timeouts",
    "StoreUnavailable",
    "StoreOutdated",
    "make_engine",
    "guard",
    "masked_url",
]

log = logging.getLogger("spendcast.store")


class StoreUnavailable(SpendcastError):
    """The database cannot be reached or did not answer in time: retry later."""


class StoreOutdated(SpendcastError):
    """The database schema is not the version this code needs (``spendcast db upgrade``)."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds the store waits for the database.

    Attributes:
        connect: to open a connection (PostgreSQL).
        statement: for one statement (PostgreSQL ``statement_timeout``).
        lock: for a lock (PostgreSQL ``lock_timeout``, SQLite busy timeout).
    """

    connect: float = 5.0
    statement: float = 30.0
    lock: float = 30.0


def masked_url(url: str) -> str:
    """The URL with its password masked (for logs and banners)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: mask what looks like a password
        return redact(url)


def make_engine(url: str, timeouts: Timeouts, *, pooled: bool = True) -> Engine:
    """An engine on ``url`` whose every wait is bounded by ``timeouts``.

    Args:
        url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        timeouts: the bounds.
        pooled: False for one-off work (migrations): no pool, SQLite foreign keys off (a
            table rebuilt by a migration must not cascade deletes).
    """
    ms = {k: int(getattr(timeouts, k) * 1000) for k in ("statement", "lock")}
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": timeouts.lock},
            **({} if pooled else {"poolclass": NullPool}),
        )
        _sqlite_events(engine, busy_ms=ms["lock"], foreign_keys=pooled)
        return engine
    connect_args = {
        "connect_timeout": max(1, math.ceil(timeouts.connect)),
        "options": f"-c statement_timeout={ms['statement']} -c lock_timeout={ms['lock']}",
    }
    pool: dict[str, Any] = (
        {"pool_size": 10, "max_overflow": 30, "pool_timeout": timeouts.statement}
        if pooled
        else {"poolclass": NullPool}
    )
    return create_engine(
        url, hide_parameters=True, pool_pre_ping=True, connect_args=connect_args, **pool
    )


def _sqlite_events(engine: Engine, *, busy_ms: int, foreign_keys: bool) -> None:
    """WAL journal, the busy timeout, and ``BEGIN`` issued by us (``IMMEDIATE`` for writes)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("spendcast_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Raise :class:`StoreUnavailable` for what a down or overloaded database raises.

    Args:
        what: the operation, for the log line.
    """
    try:
        yield
    except _DOWN as exc:
        _log_down(what, exc)
        raise StoreUnavailable("the database is unavailable; retry shortly") from exc
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        _log_down(what, exc)
        raise StoreUnavailable("the database connection was lost; retry shortly") from exc


def _log_down(what: str, exc: BaseException) -> None:
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    log.warning(
        "database unavailable",
        extra={"operation": what, "error": f"{type(cause).__name__}: {redact(cause)}"[:500]},
    )
