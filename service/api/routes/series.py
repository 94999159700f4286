"""The model's series."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query

from service.api.deps import ModelDep
from service.api.schemas import SeriesList, SeriesPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["series"])


def _public(row: dict[str, Any]) -> SeriesPublic:
    cov = {
        k.removeprefix("coverage_"): (float(v) if v is not None and math.isfinite(v) else None)
        for k, v in row.items()
        if k.startswith("coverage_")
    }
    known = {
        "unique_id",
        "label",
        "level",
        "parent",
        "last_ds",
        "model",
        "monitor_model",
        "fallback_reason",
    }
    out: dict[str, Any] = {k: row.get(k) for k in known}
    for k in ("mase", "smape"):
        v = row.get(k)
        out[k] = float(v) if v is not None and math.isfinite(v) else None
    out["level"] = None if out["level"] is None else str(out["level"])
    return SeriesPublic(**out, coverage=cov)


@router.get("/series", response_model=SeriesList, summary="Every series")
def list_series(
    model: ModelDep,
    level: str | None = Query(None, description="Only series of this hierarchy level."),
) -> SeriesList:
    """Id, display label, level, parent, last observed month, chosen model, the model
    monitoring judges it with, backtest MASE and coverage.

    Withheld series are not listed: a series with a month under the privacy threshold of
    acts (its amounts are in its parent's ``autres``), or the total of a flat panel."""
    rows = [_public(r) for r in model.series_rows if r["unique_id"] not in model.withheld]
    if level is not None:
        rows = [r for r in rows if r.level == level]
    return SeriesList(count=len(rows), series=rows)
