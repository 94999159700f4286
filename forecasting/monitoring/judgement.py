"""What a judgement is: the record of one observation's judgement and the frames of them.

:class:`Judgement` is what :func:`forecasting.monitoring.judge.judge` gives per observation
(plain data: the service's store and HTTP schemas serialize it at their edges);
:func:`judgements_frame` is the frame ``spendcast detect`` writes; :func:`judge_insample`
flags the training months against their stored one-step in-sample intervals.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import polars as pl

from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.errors import InputError
from forecasting.monitoring.calibration import normal_tail_probability

__all__ = [
    "Status",
    "Direction",
    "Contribution",
    "Judgement",
    "JUDGEMENT_SCHEMA",
    "DETECT_SCHEMA",
    "DETECT_COLUMNS",
    "judgements_frame",
    "judge_insample",
    "insample_levels",
]

Status = Literal[
    "ANOMALY", "LEVEL_SHIFT", "EXPECTED", "INSUFFICIENT_DATA", "OUT_OF_HORIZON", "UNKNOWN_SERIES"
]
Direction = Literal["above", "below"]

JUDGEMENT_SCHEMA: dict[str, Any] = {
    ID_COL: pl.String,
    TIME_COL: pl.Date,
    TARGET_COL: pl.Float64,
    "expected": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "level": pl.Int64,
    "is_anomaly": pl.Boolean,
    "direction": pl.String,
    "score": pl.Float64,
    "status": pl.String,
}
"""Columns of every judgement frame (:func:`judgements_frame` and :func:`judge_insample`)."""
DETECT_SCHEMA: dict[str, Any] = JUDGEMENT_SCHEMA | {
    "conditioned_on": pl.Int64,
    "age": pl.Int64,
    "paid_share": pl.Float64,
    "explained_by": pl.String,
    "level_shift_since": pl.Date,
}
"""Columns of ``detect``'s frame (:func:`judgements_frame`; ``explained_by`` as JSON text)."""
DETECT_COLUMNS = tuple(DETECT_SCHEMA)


class Contribution(TypedDict):
    """A child's part in a flagged parent's deviation (``share``: of the parent's)."""

    unique_id: str
    deviation: float
    share: float | None


@dataclass(frozen=True)
class Judgement:
    """The judgement of one observation.

    ``conditioned_on``: months after the training end that conditioned it; ``conditioning``:
    ``{month: value used}`` of those months; ``age`` / ``paid_share``: care basis only;
    ``explained_by``: for a flagged parent, its children's contributions;
    ``level_shift_since``: the first month of an accepted level shift the month belongs to
    (status ``LEVEL_SHIFT`` on the month that accepted it).
    """

    unique_id: str
    ds: dt.date
    y: float
    status: Status
    level: int
    expected: float | None = None
    lo: float | None = None
    hi: float | None = None
    is_anomaly: bool = False
    direction: Direction | None = None
    score: float | None = None
    conditioned_on: int = 0
    age: int | None = None
    paid_share: float | None = None
    explained_by: list[Contribution] | None = None
    conditioning: dict[dt.date, float] | None = None
    as_of: dt.date | None = None
    level_shift_since: dt.date | None = None


def judgements_frame(rows: Sequence[Judgement]) -> pl.DataFrame:
    """:data:`DETECT_SCHEMA` frame of judgements (``explained_by`` as JSON text)."""
    names = {ID_COL: "unique_id", TIME_COL: "ds", TARGET_COL: "y"}
    data = {c: [getattr(r, names.get(c, c)) for r in rows] for c in DETECT_COLUMNS}
    data["explained_by"] = [
        json.dumps(r.explained_by) if r.explained_by is not None else None for r in rows
    ]
    return pl.DataFrame(data, schema=DETECT_SCHEMA)


def insample_levels(insample: pl.DataFrame) -> list[int]:
    """Levels of the stored in-sample intervals (``lo_L`` columns), ascending."""
    return sorted(int(c[3:]) for c in insample.columns if c.startswith("lo_"))


def judge_insample(
    insample: pl.DataFrame, *, level: int, unique_id: str | None = None
) -> pl.DataFrame:
    """In-sample flags: each training month's value against its one-step fitted interval.

    Args:
        insample: ``unique_id, ds, y, fitted, lo_L, hi_L`` (``Bundle.insample``).
        level: a level stored in ``insample``.
        unique_id: keep only this series.

    Returns:
        :data:`JUDGEMENT_SCHEMA` columns (``expected`` = the fitted value; no score where
        the status is ``INSUFFICIENT_DATA``).
    """
    lo_c, hi_c = f"lo_{level}", f"hi_{level}"
    if lo_c not in insample.columns:
        raise InputError(
            f"no in-sample interval at level {level}",
            column="level",
            hint=f"use one of {insample_levels(insample)}",
        )
    df = insample if unique_id is None else insample.filter(pl.col(ID_COL) == unique_id)
    y, mean, lo, hi = (pl.col(c).cast(pl.Float64) for c in (TARGET_COL, "fitted", lo_c, hi_c))
    finite = y.is_finite() & mean.is_finite() & lo.is_finite() & hi.is_finite()
    direction = (
        pl.when(~finite)
        .then(None)
        .when(y > hi)
        .then(pl.lit("above"))
        .when(y < lo)
        .then(pl.lit("below"))
        .otherwise(None)
    )
    out = df.sort(ID_COL, TIME_COL).select(
        pl.col(ID_COL),
        pl.col(TIME_COL),
        y,
        mean.alias("expected"),
        lo.alias("lo"),
        hi.alias("hi"),
        pl.lit(level, dtype=pl.Int64).alias("level"),
        direction.is_not_null().alias("is_anomaly"),
        direction.alias("direction"),
        pl.when(direction.is_not_null())
        .then(pl.lit("ANOMALY"))
        .when(finite)
        .then(pl.lit("EXPECTED"))
        .otherwise(pl.lit("INSUFFICIENT_DATA"))
        .alias("status"),
        finite.alias("_judged"),
    )
    cols = (out[c].to_list() for c in (TARGET_COL, "expected", "lo", "hi", "_judged"))
    scores = [
        normal_tail_probability(y_, m, lo_, hi_, level) if ok else None
        for y_, m, lo_, hi_, ok in zip(*cols, strict=True)
    ]
    return out.with_columns(pl.Series("score", scores, dtype=pl.Float64)).select(*JUDGEMENT_SCHEMA)
