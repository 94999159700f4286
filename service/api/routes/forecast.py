"""Point forecasts and intervals, as JSON or as a CSV a French spreadsheet opens."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, Query, Response

from service.api.common import check_horizon, check_levels, check_served, series_of
from service.api.deps import ModelDep
from service.api.schemas import ForecastColumns, ForecastRequest, ForecastSeries
from service.errors import UnknownSeries
from service.serving import ServedModel

__all__ = ["router", "CSV_DOC"]

router = APIRouter(prefix="/v1", tags=["forecast"])

CSV_DOC = """With `format=csv` the answer is `text/csv` made for Excel in French: UTF-8 with a
byte-order mark, `;` as separator, decimal comma, one row per (series, month). Headers:
`serie` (unique_id), `libelle` (the series' label), `mois` (month, AAAA-MM), `prevision`
(point forecast), `borne_basse_<L>` / `borne_haute_<L>` (lower / upper bound of the L %
interval, per level). Text cells starting with `=`, `+`, `-`, `@`, a tab or a carriage return
get a leading `'` (so a spreadsheet never runs them as formulas); cells holding `;` or quotes
are quoted."""

_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "OK"}
}


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _num(v: float) -> str:
    return f"{v:.2f}".replace(".", ",") if math.isfinite(v) else ""


def _text(cell: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a ``'``."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _csv(model: ServedModel, ids: Sequence[str], horizon: int, levels: list[int]) -> Response:
    buf = io.StringIO()
    buf.write("\ufeff")
    out = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    head = ["serie", "libelle", "mois", "prevision"]
    for lv in levels:
        head += [f"borne_basse_{lv}", f"borne_haute_{lv}"]
    out.writerow(head)
    for uid in ids:
        s = model.lookup[uid]
        bounds = [s.bounds[lv] for lv in levels]
        for k, d in enumerate(s.ds[:horizon]):
            cells = [_text(uid), _text(model.labels[uid]), f"{d:%Y-%m}", _num(s.mean[k])]
            for lo, hi in bounds:
                cells += [_num(lo[k]), _num(hi[k])]
            out.writerow(cells)
    return Response(
        buf.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="prevision.csv"'},
    )


@router.get("/forecast", response_model=ForecastSeries, responses=_CSV, description=CSV_DOC)
async def get_forecast(
    model: ModelDep,
    unique_id: str = Query(..., min_length=1, max_length=512, description="The series."),
    horizon: int | None = Query(None, ge=1, description="Months ahead (default: trained)."),
    level: list[int] | None = Query(None, description="Interval levels (default: all trained)."),
    format: Literal["json", "csv"] = Query("json", description="`csv` for a spreadsheet."),
) -> ForecastSeries | Response:
    """Point forecast and intervals for one series, month by month."""
    series_of(model, unique_id)
    h, levels = check_horizon(model, horizon), check_levels(model, level)
    if format == "csv":
        return _csv(model, [unique_id], h, levels)
    payload = model.forecast_json(unique_id, h, tuple(levels))  # a ForecastSeries
    return Response(payload, media_type="application/json")


@router.post(
    "/forecast",
    response_model=ForecastColumns,
    responses=_CSV,
    description="Columnar forecast for many series (a read: no key needed). " + CSV_DOC,
    openapi_extra={"x-read-only": True},
)
def post_forecast(
    model: ModelDep,
    body: ForecastRequest,
    format: Literal["json", "csv"] = Query("json", description="`csv` for a spreadsheet."),
) -> ForecastColumns | Response:
    """The same as GET for many ids at once; arrays have one element per (series, month)."""
    ids = list(dict.fromkeys(body.unique_ids))
    check_served(model, ids, field="unique_ids")
    unknown = [u for u in ids if u not in model.lookup]
    if unknown:
        raise UnknownSeries(
            f"{len(unknown)} unknown series, first '{unknown[0]}'", field="unique_ids"
        )
    h, levels = check_horizon(model, body.horizon), check_levels(model, body.levels)
    if format == "csv":
        return _csv(model, ids, h, levels)
    payload = model.forecast_columns_json(ids, h, tuple(levels))  # a ForecastColumns
    return Response(payload, media_type="application/json")
