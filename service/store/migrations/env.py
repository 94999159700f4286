"""Alembic environment: runs the migrations on the connection ``migrate.upgrade`` hands over.

The connection (in ``config.attributes["connection"]``) is already in a transaction, so the
whole upgrade commits or rolls back as one; on PostgreSQL an advisory lock serialises
concurrent upgrades. ``config.attributes["schema"]`` is the PostgreSQL schema holding the
tables (None: the default one); the version table lives beside them under its own name, so
the store can share a database with MLflow (whose tables Alembic also versions).
"""

from __future__ import annotations

from alembic import context

from service.store.migrate import ADVISORY_LOCK, VERSION_TABLE

config = context.config
connection = config.attributes["connection"]
schema = config.attributes.get("schema")
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    version_table_schema=schema,
    render_as_batch=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})")
    context.run_migrations()
