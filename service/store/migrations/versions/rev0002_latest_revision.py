"""Revisions are keyed on the latest one; listing by month has an index.

* ``uq_observation_value`` (``unique_id, ds, y`` unique) goes: a value posted again after
  another one (A -> B -> A) is a new revision, not a no-op.
* ``ix_observations_ds`` (``ds, unique_id, revision``) serves ``GET /v1/anomalies``'s order
  and its keyset cursor.

On SQLite the table is rebuilt (Alembic batch mode, foreign keys off during the copy).

Revision ID: 0002
"""

from __future__ import annotations

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    with op.batch_alter_table("spendcast_observations", schema=schema) as batch:
        batch.drop_constraint("uq_observation_value", type_="unique")
        batch.create_index("ix_observations_ds", ["ds", "unique_id", "revision"])


def downgrade() -> None:
    raise NotImplementedError("0002 has no downgrade (A -> B -> A revisions may exist)")
