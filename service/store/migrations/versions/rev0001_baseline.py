"""Baseline: the tables as spendcast created them before migrations existed.

A database created by an older spendcast (tables made at start, columns added in place)
has the tables but no version table: this revision then only adds the nullable columns it
lacks, as those versions did at every start. A new database gets the tables.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OBSERVATIONS = "spendcast_observations"
RESULTS = "spendcast_results"
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _observation_columns() -> list[sa.Column]:
    return [
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("ds", sa.Date, nullable=False),
        sa.Column("y", sa.Double, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("as_of", sa.Date),
    ]


def _result_columns(schema: str | None) -> list[sa.Column]:
    target = f"{schema}.{OBSERVATIONS}.id" if schema else f"{OBSERVATIONS}.id"
    return [
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("observation_id", _ID, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(512), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("expected", sa.Double),
        sa.Column("lo", sa.Double),
        sa.Column("hi", sa.Double),
        sa.Column("is_anomaly", sa.Boolean, nullable=False),
        sa.Column("direction", sa.String(8)),
        sa.Column("score", sa.Double),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conditioned_on", sa.Integer),
        sa.Column("conditioning", sa.Text),
        sa.Column("age", sa.Integer),
        sa.Column("paid_share", sa.Double),
        sa.Column("explained_by", sa.Text),
    ]


def _add_missing(table: str, columns: list[sa.Column], schema: str | None) -> None:
    """The in-place path of the versions before migrations: add absent nullable columns."""
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table, schema=schema)}
    for col in columns:
        if col.name not in have and col.nullable and not col.primary_key:
            op.add_column(table, col.copy(), schema=schema)


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    tables = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    if OBSERVATIONS in tables:
        _add_missing(OBSERVATIONS, _observation_columns(), schema)
    else:
        op.create_table(
            OBSERVATIONS,
            *_observation_columns(),
            sa.UniqueConstraint("unique_id", "ds", "y", name="uq_observation_value"),
            sa.UniqueConstraint("unique_id", "ds", "revision", name="uq_observation_revision"),
            schema=schema,
        )
    if RESULTS in tables:
        _add_missing(RESULTS, _result_columns(schema), schema)
    else:
        op.create_table(
            RESULTS,
            *_result_columns(schema),
            sa.UniqueConstraint("observation_id", "model_version", "level", name="uq_result"),
            schema=schema,
        )
        op.create_index("ix_results_flagged", RESULTS, ["is_anomaly"], schema=schema)


def downgrade() -> None:
    raise NotImplementedError("the baseline has no downgrade")
