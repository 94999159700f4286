"""The store's tables as the newest migration leaves them (what the queries are written for).

``observations``
    one row per stored revision of a (series, month): ``revision`` 1, 2, ... is dense per
    ``(unique_id, ds)``; ``as_of`` is the effective processing month the value was judged
    with (care basis). Nothing is ever overwritten.
``results``
    one judgement per ``(observation_id, model_version, level)``; re-judging the same
    observation with the same model and level updates it, so the stored verdict is always
    the last one answered.

The schema is created and changed only by the migrations in ``migrations/`` (``spendcast db
upgrade``); these definitions must match the newest one (a test checks it).
"""

from __future__ import annotations

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
)

__all__ = ["metadata", "observations", "results", "VERDICT_COLUMNS", "JSON_COLUMNS"]

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")

observations = Table(
    "spendcast_observations",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("unique_id", String(512), nullable=False),
    Column("ds", Date, nullable=False),
    Column("y", Double, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64)),
    Column("as_of", Date),
    UniqueConstraint("unique_id", "ds", "revision", name="uq_observation_revision"),
    Index("ix_observations_ds", "ds", "unique_id", "revision"),
)

results = Table(
    "spendcast_results",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column(
        "observation_id",
        ID,
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
    Column("level_shift_since", Date),
    UniqueConstraint("observation_id", "model_version", "level", name="uq_result"),
    Index("ix_results_flagged", "is_anomaly"),
)

VERDICT_COLUMNS = (
    "expected",
    "lo",
    "hi",
    "is_anomaly",
    "direction",
    "score",
    "status",
    "judged_at",
    "conditioned_on",
    "conditioning",
    "age",
    "paid_share",
    "explained_by",
    "level_shift_since",
)
"""What a re-judgement of a stored observation (same model and level) updates."""
JSON_COLUMNS = ("conditioning", "explained_by")
