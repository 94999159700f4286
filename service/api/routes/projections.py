"""Annual projections: observed-to-date plus projected months, against a budget and a growth
target."""

from __future__ import annotations

import math

from fastapi import APIRouter, Query

from forecasting.monitoring.projections import annual_projection
from service.api.common import check_levels, series_of
from service.api.deps import ModelDep
from service.api.schemas import (
    AnnualGrowthPublic,
    AnnualProjectionPublic,
    ProjectionMonth,
    TotalInterval,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/projections", tags=["projections"])


@router.get("/annual", response_model=AnnualProjectionPublic, summary="Annual total")
def annual(
    model: ModelDep,
    unique_id: str = Query(..., min_length=1, max_length=512, description="The series."),
    year: int = Query(..., ge=1900, le=2200, description="Calendar year."),
    budget: float | None = Query(None, allow_inf_nan=False, description="P(total > budget)."),
    target_growth: float | None = Query(
        None,
        ge=-100,
        le=1000,
        allow_inf_nan=False,
        description="A growth rate in percent (e.g. 3.2): P(growth over the previous year > it).",
    ),
    level: list[int] | None = Query(None, description="Levels of the total's interval."),
) -> AnnualProjectionPublic:
    """Observed months from the training data plus the forecast for the rest of the year.

    The interval and ``prob_over_budget`` come from the model's joint sample paths summed over
    the projected months; a year fully observed answers the observed total only. ``growth``
    compares the year's total with the previous year's, on the same paths (its intervals and
    ``prob_over_target`` = P(growth > target_growth)); null unless both years are covered."""
    s = series_of(model, unique_id)
    p = annual_projection(
        year,
        history_ds=s.history_ds,
        history_y=s.history_y,
        forecast_ds=s.ds,
        forecast_mean=s.mean,
        paths=s.paths,
        levels=check_levels(model, level),
        budget=budget,
        target_growth=target_growth,
    )
    g = p.growth
    return AnnualProjectionPublic(
        unique_id=unique_id,
        year=year,
        model_version=model.version_label,
        complete=p.complete,
        months_observed=p.months_observed,
        months_projected=p.months_projected,
        observed_total=p.observed_total,
        projected_total=p.projected_total,
        total=p.total,
        intervals=[TotalInterval(level=k, lo=a, hi=b) for k, (a, b) in p.intervals.items()],
        budget=budget,
        prob_over_budget=p.prob_over_budget,
        growth=None
        if g is None
        else AnnualGrowthPublic(
            previous_year=year - 1,
            previous_total=g.previous_total,
            growth_pct=g.growth_pct if math.isfinite(g.growth_pct) else None,
            intervals=[TotalInterval(level=k, lo=a, hi=b) for k, (a, b) in g.intervals.items()],
            target_growth=target_growth,
            prob_over_target=g.prob_over_target,
        ),
        months=[
            ProjectionMonth(ds=m.ds, value=m.value, source=m.source, lo=m.lo, hi=m.hi)
            for m in p.months
        ],
    )
