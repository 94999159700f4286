"""Growth rates against the previous year, observed and projected, and the adjusted series."""

from __future__ import annotations

import math
from typing import Literal

from fastapi import APIRouter, Query

from forecasting.monitoring.adjustment import Adjustment
from forecasting.monitoring.growth import STATISTICS, GrowthTable, growth_table, timeline
from service.api.common import check_levels, series_of
from service.api.deps import ModelDep
from service.api.schemas import (
    AdjustedMonth,
    AdjustedPublic,
    GrowthMonth,
    GrowthPublic,
    StatisticInterval,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["growth"])


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _source(projected: bool) -> Literal["observed", "projected"]:
    return "projected" if projected else "observed"


def _months(g: GrowthTable) -> list[GrowthMonth]:
    rows = []
    for t, d in enumerate(g.ds):
        row = {name: _num(g.values[name][t]) for name in STATISTICS}
        bounds = None
        if g.projected[t] and g.intervals:
            bounds = {
                name: [
                    StatisticInterval(level=lv, lo=_num(lo[t]), hi=_num(hi[t]))
                    for lv, (lo, hi) in g.intervals[name].items()
                ]
                for name in STATISTICS
            }
        source = _source(bool(g.projected[t]))
        rows.append(GrowthMonth(ds=d, source=source, **row, intervals=bounds))
    return rows


def _adjusted(a: Adjustment) -> AdjustedPublic:
    months = [
        AdjustedMonth(
            ds=d,
            source=_source(bool(a.projected[t])),
            value=_num(a.value[t]),
            mom_pct=_num(a.mom_pct[t]),
            yoy_pct=_num(a.yoy_pct[t]),
        )
        for t, d in enumerate(a.ds)
    ]
    return AdjustedPublic(
        available=a.available,
        working_day_correction=a.working_days,
        working_day_effect=a.working_day_effect,
        multiplicative=a.multiplicative,
        method=a.note,
        months=months if a.available else [],
    )


@router.get("/growth", response_model=GrowthPublic, summary="Growth rates")
async def get_growth(
    model: ModelDep,
    unique_id: str = Query(..., min_length=1, max_length=512, description="The series."),
    level: list[int] | None = Query(None, description="Interval levels (default: all trained)."),
) -> GrowthPublic:
    """Per month, observed then projected: the amount, its year-on-year growth, the rolling
    12-month total (année complète mobile) and its growth, the year-to-date total and its
    growth against the same months of the previous year (PCAP), all in percent.

    Projected months use the forecast means for the point and carry `intervals` computed on
    the model's joint sample paths: each statistic is computed on every path (a projected
    month's growth = its path value / the value 12 months earlier, observed or on the same
    path) and the interval is the paths' quantiles. `adjusted` is the series corrected for
    French working days (Open DAMIR and legacy data only) and seasonality (STL), computed at
    model load; see the README for how it differs from X-13-ARIMA-SEATS."""
    s = series_of(model, unique_id)
    tl = timeline(s.history_ds, s.history_y, s.ds, s.mean, s.paths)
    g = growth_table(tl, check_levels(model, level))
    return GrowthPublic(
        unique_id=unique_id,
        label=model.labels[unique_id],
        model_version=model.version_label,
        levels=g.levels,
        last_observed=s.history_ds[-1] if s.history_ds else None,
        months=_months(g),
        adjusted=_adjusted(model.adjusted[unique_id]),
    )
