"""The store's schema version: :func:`upgrade` (``spendcast db upgrade``) and its check.

Schema changes are Alembic migrations shipped in the package (``migrations/versions``). The
version is kept in the table ``spendcast_schema_version`` (Alembic's, under a name of its
own so the store can share a database with MLflow, which versions its tables with Alembic
too). The service never changes the schema: it reads the version (:func:`current`) and
serves the store only when it is :func:`head`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from service.store.engine import Timeouts, guard, make_engine

__all__ = ["VERSION_TABLE", "ADVISORY_LOCK", "Upgrade", "head", "current", "upgrade"]

VERSION_TABLE = "spendcast_schema_version"
ADVISORY_LOCK = 7_114_012  # pg_advisory_xact_lock key: one upgrade at a time per database
MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: the version before (None: no version table) and after."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: Connection | None = None, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes.update(connection=connection, schema=schema)
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    """The newest schema version this code knows (and needs)."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None, "no migration shipped"
    return rev


def current(conn: Connection, schema: str | None = None) -> str | None:
    """The schema version of the database behind ``conn`` (None: never upgraded)."""
    opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
    return MigrationContext.configure(conn, opts=opts).get_current_revision()


def upgrade(url: str, *, schema: str | None = None, timeouts: Timeouts | None = None) -> Upgrade:
    """Bring the database at ``url`` (and ``schema``) to :func:`head`, in one transaction.

    Works on an empty database, on one created by a spendcast older than the migrations
    (tables without a version table), and on one already at head (nothing to do).

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    engine = make_engine(url, timeouts or Timeouts(), pooled=False)
    try:
        with guard("upgrade"), engine.connect() as conn:
            conn = conn.execution_options(spendcast_write=True)
            with conn.begin():
                if schema and conn.dialect.name == "postgresql":
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                before = current(conn, schema)
                command.upgrade(_config(conn, schema), "head")
                after = current(conn, schema)
    finally:
        engine.dispose()
    assert after is not None
    return Upgrade(before, after)
