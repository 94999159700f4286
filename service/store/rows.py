"""How the store's rows are made from judgements, and the listing's keyset cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from forecasting.errors import InputError
from forecasting.monitoring.judgement import Judgement

if TYPE_CHECKING:
    from service.store.core import StoredJudgement

__all__ = ["observation_row", "result_row", "encode_cursor", "decode_cursor"]


def observation_row(
    j: Judgement, revision: int, now: dt.datetime, request_id: str | None
) -> dict[str, Any]:
    """The ``observations`` row of a judged value stored as ``revision``."""
    return {
        "unique_id": j.unique_id,
        "ds": j.ds,
        "y": j.y,
        "revision": revision,
        "received_at": now,
        "request_id": request_id,
        "as_of": j.as_of,
    }


def result_row(s: StoredJudgement, model_version: str, now: dt.datetime) -> dict[str, Any]:
    """The ``results`` row of a stored judgement (JSON columns serialized here)."""
    j = s.judgement
    return {
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
        "level_shift_since": j.level_shift_since,
    }


def _conditioning_json(conditioning: Mapping[dt.date, float] | None) -> str | None:
    """``{"YYYY-MM-DD": value}`` JSON text of what conditioned a judgement."""
    if conditioning is None:
        return None
    return json.dumps({d.isoformat(): v for d, v in conditioning.items()})


def encode_cursor(row: Mapping[str, Any]) -> str:
    """The opaque cursor after ``row`` (its month, series, revision and result id)."""
    key = [row["ds"].isoformat(), row["unique_id"], int(row["revision"]), int(row["id"])]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.date, str, int, int]:
    """The key a cursor holds, or :class:`InputError` naming ``after``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ds, uid, rev, rid = json.loads(raw)
        key = (dt.date.fromisoformat(ds), str(uid), int(rev), int(rid))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(
            "not a cursor of this listing",
            column="after",
            hint="pass the next_after value of the previous page unchanged",
        ) from exc
    return key
