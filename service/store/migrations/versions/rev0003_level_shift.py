"""Judgements remember the level shift they belong to.

* ``spendcast_results.level_shift_since`` (date, nullable): the first month of an accepted
  level shift (``forecasting.monitoring.judge``: status ``LEVEL_SHIFT`` on the month that
  accepted it, and later months judged against the new level). Older rows keep null.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.add_column(
        "spendcast_results", sa.Column("level_shift_since", sa.Date, nullable=True), schema=schema
    )


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_column("spendcast_results", "level_shift_since", schema=schema)
