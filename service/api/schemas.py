"""Request and response bodies of the HTTP API (pydantic), split by role."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from forecasting.monitoring.judgement import Direction, Status

__all__ = [
    "Health",
    "StorePublic",
    "Readiness",
    "ModelPublic",
    "SeriesPublic",
    "SeriesList",
    "Interval",
    "ForecastSeries",
    "ForecastRequest",
    "ForecastColumns",
    "ProjectionMonth",
    "TotalInterval",
    "AnnualGrowthPublic",
    "AnnualProjectionPublic",
    "StatisticInterval",
    "GrowthMonth",
    "AdjustedMonth",
    "AdjustedPublic",
    "GrowthPublic",
    "Observation",
    "DetectRequest",
    "JudgementPublic",
    "ContributionPublic",
    "DetectResponse",
    "StoredJudgementPublic",
    "StoredJudgements",
    "HistoricalJudgements",
    "ReloadResult",
    "Level",
    "FIRST_MONTH",
    "LAST_MONTH",
    "MAX_ABS_Y",
]

Level = Annotated[int, Field(ge=1, le=99, description="Interval level in percent.")]
FIRST_MONTH, LAST_MONTH = dt.date(1990, 1, 1), dt.date(2100, 12, 31)
"""The months an observation may be about (``ds``, ``as_of``)."""
MAX_ABS_Y = 1e15
"""An observed amount is finite and below this in absolute value."""
SeriesId = Annotated[
    str, Field(min_length=1, max_length=512, examples=["total/pharmacie/officine"])
]


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class StorePublic(BaseModel):
    """The observation store as ``/readyz`` sees it."""

    status: Literal["ok", "unavailable", "outdated"] = Field(
        description="ok; unavailable (the database does not answer: detect and stored "
        "results answer 503); outdated (run `spendcast db upgrade`)."
    )
    schema_version: str | None = Field(description="The database's schema version.")
    expected_version: str = Field(description="The schema version this service needs.")


class Readiness(BaseModel):
    """Readiness: ``degraded`` when the model came from the local cache or the store is not
    usable (the reasons say which, without internals)."""

    status: Literal["ready", "degraded"]
    reason: str | None = None
    model_uri: str
    model_version: str | None = None
    loaded_at: dt.datetime
    store: StorePublic


class ModelPublic(BaseModel):
    """What the served model is and how well it backtested."""

    uri: str
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    from_cache: bool
    trained_at: str
    first_ds: str
    last_ds: str
    horizon: int
    levels: list[int]
    hierarchy: list[str]
    measure: str
    basis: str
    source: str
    reconciliation: str
    primary_metric: str
    models: list[str]
    n_series: int
    metrics: dict[str, float]


class SeriesPublic(BaseModel):
    """One series of the model."""

    model_config = ConfigDict(extra="allow")

    unique_id: str
    label: str = Field(
        description="Display label: the French label of the category (code lists), a tidy "
        "file's own value, 'Total' for the root."
    )
    level: str | None = None
    parent: str | None = None
    last_ds: dt.date | None = None
    model: str | None = Field(None, description="The model of the planners' forecast.")
    monitor_model: str | None = Field(
        None,
        description="The model monitoring judges the series with, one step ahead: the "
        "combination by default, whatever planners got (null in models trained before it).",
    )
    mase: float | None = None
    smape: float | None = None
    fallback_reason: str | None = None
    coverage: dict[str, float | None] = Field(
        default_factory=dict, description="Backtest interval coverage by level ('80': 0.81)."
    )


class SeriesList(BaseModel):
    """Every series of the model."""

    count: int
    series: list[SeriesPublic]


class Interval(BaseModel):
    """Bounds at one level, one value per month."""

    level: int
    lo: list[float | None]
    hi: list[float | None]


class ForecastSeries(BaseModel):
    """Forecast of one series: months, point forecasts and intervals."""

    unique_id: str
    model_version: str
    ds: list[dt.date]
    mean: list[float | None]
    intervals: list[Interval]


class ForecastRequest(BaseModel):
    """Many series at once."""

    model_config = ConfigDict(extra="forbid")

    unique_ids: list[SeriesId] = Field(min_length=1, max_length=10_000)
    horizon: int | None = Field(None, ge=1, description="Months ahead (default: trained).")
    levels: list[Level] | None = Field(None, description="Default: every trained level.")


class ForecastColumns(BaseModel):
    """Columnar forecast: equal-length arrays, one element per (series, month)."""

    model_version: str
    horizon: int
    levels: list[int]
    unique_id: list[str]
    ds: list[dt.date]
    mean: list[float | None]
    lo: dict[str, list[float | None]] = Field(description="Lower bounds by level ('80': [...]).")
    hi: dict[str, list[float | None]] = Field(description="Upper bounds by level ('80': [...]).")


class ProjectionMonth(BaseModel):
    """One month of an annual projection."""

    ds: dt.date
    value: float
    source: Literal["observed", "projected"]
    lo: float | None = None
    hi: float | None = None


class TotalInterval(BaseModel):
    """Interval of the annual total at one level."""

    level: int
    lo: float
    hi: float


class AnnualGrowthPublic(BaseModel):
    """The year's growth over the previous year, from the same sample paths as the total."""

    previous_year: int
    previous_total: float = Field(description="The previous year's total.")
    growth_pct: float | None = Field(
        description="100 (total / previous_total - 1); null when the previous total is not "
        "positive."
    )
    intervals: list[TotalInterval] = Field(
        description="Intervals of the growth (percent), from the paths; empty when both years "
        "are observed."
    )
    target_growth: float | None = Field(None, description="The target rate asked about (percent).")
    prob_over_target: float | None = Field(None, description="P(growth > target_growth).")


class AnnualProjectionPublic(BaseModel):
    """A calendar year's total: observed months plus projected months."""

    unique_id: str
    year: int
    model_version: str
    complete: bool = Field(description="True when every month is observed (no projection).")
    months_observed: int
    months_projected: int
    observed_total: float
    projected_total: float
    total: float
    intervals: list[TotalInterval]
    budget: float | None = None
    prob_over_budget: float | None = Field(None, description="P(total > budget).")
    growth: AnnualGrowthPublic | None = Field(
        None,
        description="Growth over the previous year; null unless both years are fully covered "
        "(observed or projected).",
    )
    months: list[ProjectionMonth]


def _month(d: dt.date) -> int:
    return d.year * 12 + d.month


def _check_as_of(as_of: dt.date, months: list[dt.date]) -> dt.date:
    """``as_of`` is not before any of ``months`` nor after next month (a processing month)."""
    today = dt.date.today()
    if _month(as_of) > _month(today) + 1:
        raise ValueError(f"as_of {as_of} is after next month ({today:%Y-%m} + 1)")
    late = max(months, default=None)
    if late is not None and _month(as_of) < _month(late):
        raise ValueError(f"as_of {as_of} is before the observed month {late:%Y-%m}")
    return as_of


class StatisticInterval(BaseModel):
    """Interval of one statistic of a projected month at one level."""

    level: int
    lo: float | None
    hi: float | None


class GrowthMonth(BaseModel):
    """One month's amount and growth figures; percentages are 100 (ratio - 1)."""

    ds: dt.date
    source: Literal["observed", "projected"]
    value: float | None = Field(description="Observed amount, or the forecast mean.")
    yoy_pct: float | None = Field(description="Against the same month a year earlier.")
    rolling_12m: float | None = Field(
        description="Total of the 12 months ending here (année complète mobile)."
    )
    rolling_12m_growth_pct: float | None = Field(
        description="rolling_12m against the 12 months ending a year earlier."
    )
    ytd: float | None = Field(description="Total from January to this month.")
    ytd_growth_pct: float | None = Field(
        description="ytd against the same months of the previous year (PCAP)."
    )
    intervals: dict[str, list[StatisticInterval]] | None = Field(
        None,
        description="Projected months: each statistic's intervals, from the sample paths "
        "(e.g. yoy_pct of a path = path value / the value 12 months earlier, observed or on "
        "the same path).",
    )


class AdjustedMonth(BaseModel):
    """One month of the working-day and seasonally adjusted series."""

    ds: dt.date
    source: Literal["observed", "projected"]
    value: float | None
    mom_pct: float | None = Field(description="Against the previous month (adjusted).")
    yoy_pct: float | None = Field(description="Against the same month a year earlier (adjusted).")


class AdjustedPublic(BaseModel):
    """The series corrected for working days (French calendar only) and seasonality."""

    available: bool
    working_day_correction: bool = Field(
        description="True when corrected for French working days (Open DAMIR and legacy data); "
        "tidy files are only seasonally adjusted."
    )
    working_day_effect: float | None = Field(
        None,
        description="Estimated effect of one more working day in a month: percent "
        "(multiplicative) or units of the series (additive).",
    )
    multiplicative: bool
    method: str = Field(description="How it was done, or why it could not be.")
    months: list[AdjustedMonth]


class GrowthPublic(BaseModel):
    """Growth rates of one series, observed and projected, and its adjusted series."""

    unique_id: str
    label: str
    model_version: str
    levels: list[int]
    last_observed: dt.date | None
    months: list[GrowthMonth]
    adjusted: AdjustedPublic


class Observation(BaseModel):
    """One observed monthly value."""

    model_config = ConfigDict(extra="forbid")

    unique_id: SeriesId
    ds: dt.date = Field(
        ge=FIRST_MONTH,
        le=LAST_MONTH,
        description="The month (any day of it; the first is stored), 1990-01 to 2100-12.",
    )
    y: float = Field(
        allow_inf_nan=False,
        gt=-MAX_ABS_Y,
        lt=MAX_ABS_Y,
        description="The observed amount (finite, |y| < 1e15).",
    )
    as_of: dt.date | None = Field(
        None,
        ge=FIRST_MONTH,
        le=LAST_MONTH,
        description="Care basis: processing month of the extract this value comes from "
        "(its age = as_of - ds in months; not before ds, not after next month). Default: "
        "the request's as_of, else (care basis) its latest ds. Stored with the value.",
    )

    @field_validator("as_of")
    @classmethod
    def _as_of_in_range(cls, v: dt.date | None, info: ValidationInfo) -> dt.date | None:
        ds = info.data.get("ds")
        return None if v is None else _check_as_of(v, [ds] if ds else [])


class DetectRequest(BaseModel):
    """Observations to judge (at most 10,000)."""

    model_config = ConfigDict(extra="forbid")

    observations: list[Observation] = Field(min_length=1, max_length=10_000)
    level: Level = 99
    as_of: dt.date | None = Field(
        None,
        ge=FIRST_MONTH,
        le=LAST_MONTH,
        description="Care basis: processing month of observations without their own (not "
        "before their ds, not after next month).",
    )

    @field_validator("as_of")
    @classmethod
    def _as_of_in_range(cls, v: dt.date | None, info: ValidationInfo) -> dt.date | None:
        months = [o.ds for o in info.data.get("observations", ()) if o.as_of is None]
        return None if v is None else _check_as_of(v, months)


class ContributionPublic(BaseModel):
    """A child's part in a flagged parent's deviation."""

    unique_id: str
    deviation: float = Field(description="The child's observed - expected.")
    share: float | None = Field(None, description="deviation / the parent's deviation.")


class JudgementPublic(BaseModel):
    """The judgement of one observation."""

    unique_id: str
    ds: dt.date
    y: float
    status: Status
    level: int
    expected: float | None = Field(
        None,
        description="The series' monitoring model's forecast of the month (its monitor_model "
        "in /v1/series), conditioned on the known months before it: the centre of the bounds "
        "(not the reconciled /v1/forecast mean).",
    )
    lo: float | None = None
    hi: float | None = None
    is_anomaly: bool
    direction: Direction | None = None
    score: float | None = Field(
        None, description="Two-sided tail probability in [0, 1]: small = surprising."
    )
    revision: int | None = Field(
        None,
        description="Stored revision of this (series, month); null when not stored "
        "(UNKNOWN_SERIES, OUT_OF_HORIZON).",
    )
    new: bool | None = Field(
        None, description="False when this value (and as_of) is the latest stored revision."
    )
    conditioned_on: int | None = Field(
        None,
        description="Months after the training end whose values conditioned this judgement "
        "(0: the stored k-step forecast).",
    )
    conditioning: dict[dt.date, float] | None = Field(
        None,
        description="Those months and the value each contributed (a flagged month contributes "
        "its expectation; care basis: completed values).",
    )
    age: int | None = Field(None, description="Care basis: months between ds and as_of.")
    paid_share: float | None = Field(
        None, description="Care basis: expected share of the complete month paid at this age."
    )
    as_of: dt.date | None = None
    explained_by: list[ContributionPublic] | None = Field(
        None,
        description="Flagged parent: its children judged for the same month, largest "
        "|deviation| first.",
    )
    level_shift_since: dt.date | None = Field(
        None,
        description="First month of the accepted level shift this month belongs to (status "
        "LEVEL_SHIFT on the month that accepted it; later months are judged against the new "
        "level).",
    )


class DetectResponse(BaseModel):
    """Judgements, in the order of the observations."""

    model_version: str
    level: int
    n_anomalies: int
    results: list[JudgementPublic]


class StoredJudgementPublic(JudgementPublic):
    """A stored judgement."""

    model_version: str
    received_at: dt.datetime
    judged_at: dt.datetime


class StoredJudgements(BaseModel):
    """Stored judgements, oldest month first (a page of them)."""

    count: int
    results: list[StoredJudgementPublic]
    next_after: str | None = Field(
        None,
        description="Cursor of the next page (pass it as `after`); null on the last page.",
    )


class HistoricalJudgements(BaseModel):
    """In-sample flags over the training data."""

    unique_id: str | None
    level: int
    count: int
    n_anomalies: int
    results: list[JudgementPublic]


class ReloadResult(BaseModel):
    """The model served after a reload."""

    previous_version: str | None
    model: ModelPublic
    load_seconds: float
