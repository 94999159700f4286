"""Anomaly detection on new observations, stored results and in-sample flags."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query

from forecasting.anomalies import judge, judge_insample
from service.api.common import series_of
from service.api.deps import ApiKey, MetricsDep, ModelDep, RequestId, SettingsDep, StoreDep
from service.errors import InvalidParameter
from service.schemas import (
    DetectRequest,
    DetectResponse,
    HistoricalResults,
    StoredResult,
    StoredResults,
    Verdict,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])


@router.post(
    "/detect", response_model=DetectResponse, dependencies=[ApiKey], summary="Judge observations"
)
def detect(
    body: DetectRequest,
    model: ModelDep,
    store: StoreDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    request_id: RequestId,
) -> DetectResponse:
    """Judge each observation against the model at ``level`` (default 99) and store both.

    ``score`` is the two-sided tail probability of the value under the model's sample paths
    at that month (``2 min(F(y), 1 - F(y))``; small = surprising), or, without paths, under a
    normal approximation fitted to the widest stored interval. The same (series, month, value)
    posted again is not stored twice; a new value for a stored (series, month) is stored as
    the next ``revision``."""
    if len(body.observations) > settings.max_observations:
        raise InvalidParameter(
            f"{len(body.observations)} observations; at most {settings.max_observations} per call",
            field="observations",
        )
    verdicts = judge(
        ((o.unique_id, o.ds, o.y) for o in body.observations), model.lookup, level=body.level
    )
    stored = store.record(verdicts, model_version=model.version_label, request_id=request_id)
    for v in verdicts:
        metrics.judged.labels(v.status).inc()
        if v.is_anomaly:
            metrics.flagged.labels(v.direction or "").inc()
    results = [Verdict(**vars(s.judgement), revision=s.revision, new=s.new) for s in stored]
    return DetectResponse(
        model_version=model.version_label,
        level=body.level,
        n_anomalies=sum(v.is_anomaly for v in verdicts),
        results=results,
    )


@router.get("", response_model=StoredResults, summary="Stored results")
def list_results(
    store: StoreDep,
    unique_id: str | None = Query(None, max_length=512, description="Only this series."),
    since: dt.date | None = Query(None, description="Only months on or after this date."),
    flagged: bool | None = Query(None, description="true: anomalies only; false: the others."),
    limit: int = Query(1000, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> StoredResults:
    """Stored judgements (every revision), oldest month first."""
    rows = store.list_results(
        unique_id=unique_id, since=since, flagged=flagged, limit=limit, offset=offset
    )
    return StoredResults(count=len(rows), results=[StoredResult(**r) for r in rows])


@router.get("/historical", response_model=HistoricalResults, summary="In-sample flags")
async def historical(
    model: ModelDep,
    unique_id: str = Query(..., min_length=1, max_length=512, description="The series."),
    level: int | None = Query(None, ge=1, le=99, description="Default: 99 or the widest."),
    flagged: bool | None = Query(None, description="true: anomalies only."),
) -> HistoricalResults:
    """Each training month's value against the model's one-step in-sample interval."""
    series_of(model, unique_id)
    stored = [int(c[3:]) for c in model.bundle.insample.columns if c.startswith("lo_")]
    lv = level if level is not None else (99 if 99 in stored or not stored else max(stored))
    frame = judge_insample(model.bundle.insample, level=lv, unique_id=unique_id)
    if flagged is not None:
        frame = frame.filter(frame["is_anomaly"] == flagged)
    rows = [Verdict(**r) for r in frame.to_dicts()]
    return HistoricalResults(
        unique_id=unique_id,
        level=lv,
        count=len(rows),
        n_anomalies=sum(r.is_anomaly for r in rows),
        results=rows,
    )
