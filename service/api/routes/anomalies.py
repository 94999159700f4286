"""Anomaly detection on new observations, stored results and in-sample flags."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query

from forecasting.monitoring.judge import Obs, judge
from forecasting.monitoring.judgement import Judgement, insample_levels, judge_insample
from service.api.common import check_served, series_of
from service.api.deps import ApiKey, MetricsDep, ModelDep, RequestId, SettingsDep, StoreDep
from service.api.schemas import (
    DetectRequest,
    DetectResponse,
    HistoricalJudgements,
    JudgementPublic,
    StoredJudgementPublic,
    StoredJudgements,
)
from service.errors import InvalidParameter
from service.store import Known, StoredJudgement

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

    **Expected** is the forecast of the month by the series' monitoring model (its
    ``monitor_model`` in ``/v1/series``: the combination by default, whatever model the
    planners' forecast uses; the model whose backtest errors calibrate the bounds), not the
    reconciled planners' forecast of ``/v1/forecast``, which can differ from it so that the
    hierarchy adds up.

    **One step ahead.** Months after the model's training end that are already stored (latest
    revision) or earlier in this request condition the expectation of later months: the
    series' monitoring model is updated on them (statsforecast ``forward``, parameters fixed), so
    each month is judged one step after the last known one (``conditioned_on`` months, listed
    in ``conditioning``). A month that is itself flagged conditions later months with its
    expectation, not its value.

    **Bounds** are split-conformal: the series' mean one-step backtest error of that model
    (relative to the expectation for a positive series) times the quantile at ``level`` of the
    ratios of later to earlier one-step errors pooled over the series (grown by the
    step-ahead profile after a gap); a series with too short a backtest takes its in-sample
    one-step scale times the typical backtest-to-in-sample ratio.

    **Score** is the two-sided tail probability of ``y`` under a normal predictive
    distribution fitted to that interval (``2 (1 - Phi(|y - expected| / sigma))``; small =
    surprising).

    **Care basis**: ``age`` = months from ``ds`` to ``as_of`` (per observation, else the
    request's ``as_of``, else the latest ``ds`` posted); ``expected``, ``lo``, ``hi`` are
    multiplied by the expected ``paid_share`` at that age, so a fresh, partly paid month is
    not a drop.

    A flagged parent lists in ``explained_by`` its children judged for the same month (in
    the request or stored) with their deviations, largest first.

    **Level shifts.** After ``SPENDCAST_SHIFT_AFTER`` (default 3) months in a row on the same
    side of their expectations, the first an anomaly and at most one inside the bounds (by
    default two out of three beyond them; the one inside nearer the run's level than the old
    one), the last of them is reported as ``LEVEL_SHIFT`` (a flag; ``level_shift_since``: the
    first month of the run) and the new level is accepted: later months are judged against it
    and carry ``level_shift_since`` (0 turns this off: a lasting shift stays flagged every
    month until the model is retrained).

    **Storage.** Reading the stored months, judging and storing run under the store's write
    lock, so concurrent calls are judged one after the other and each stored verdict is the
    one answered. A value equal to the latest stored revision of its (series, month) (same
    ``y``, same effective ``as_of``) is not stored again (``new`` false); any other value is
    stored as the next ``revision`` (A, B, then A again: three revisions) and later months
    are judged on it. ``UNKNOWN_SERIES`` and ``OUT_OF_HORIZON`` observations are answered,
    not stored (``revision`` null).

    A request naming a withheld series (privacy: a month under the threshold of acts; the
    total of a flat panel) gets 404 (problem type ``small-cell`` or ``flat-total``) and
    nothing is stored."""
    if len(body.observations) > settings.max_observations:
        raise InvalidParameter(
            f"{len(body.observations)} observations; at most {settings.max_observations} per call",
            field="observations",
        )
    rows = _effective_rows(body, care=model.bundle.meta.basis == "care")
    ids = {o.unique_id for o in body.observations}
    check_served(model, sorted(ids), field="observations")  # nothing stored for a withheld id
    ids |= {c for u in list(ids) for c in model.lookup.children.get(u, ())}

    def judge_on(known: list[Known]) -> list[Judgement]:
        return judge(
            rows,
            model.lookup,
            level=body.level,
            stored=known,
            as_of=body.as_of,
            shift_after=settings.shift_after,
        )

    judgements, stored = store.judge_and_record(
        sorted(ids),
        dt.date.fromisoformat(model.bundle.meta.last_ds),
        judge_on,
        model_version=model.version_label,
        request_id=request_id,
    )
    metrics.count_judged(judgements)
    return DetectResponse(
        model_version=model.version_label,
        level=body.level,
        n_anomalies=sum(j.is_anomaly for j in judgements),
        results=[_public(j, s) for j, s in zip(judgements, stored, strict=True)],
    )


def _effective_rows(body: DetectRequest, *, care: bool) -> list[Obs]:
    """``(unique_id, ds, y, as_of)`` with the ``as_of`` each row is judged and stored with:
    its own, else the request's, else (care basis) the request's latest month."""
    default = body.as_of
    if default is None and care:
        default = max(o.ds for o in body.observations)
    return [(o.unique_id, o.ds, o.y, o.as_of or default) for o in body.observations]


def _public(j: Judgement, s: StoredJudgement | None) -> JudgementPublic:
    if s is None:
        return JudgementPublic(**vars(j))
    return JudgementPublic(**vars(j), revision=s.revision, new=s.new)


@router.get("", response_model=StoredJudgements, summary="Stored results")
def list_results(
    store: StoreDep,
    unique_id: str | None = Query(None, max_length=512, description="Only this series."),
    since: dt.date | None = Query(None, description="Only months on or after this date."),
    flagged: bool | None = Query(None, description="true: anomalies only; false: the others."),
    limit: int = Query(1000, ge=1, le=10_000, description="Most results in this page."),
    after: str | None = Query(
        None, max_length=1024, description="The `next_after` of the previous page."
    ),
    offset: int = Query(
        0,
        ge=0,
        le=100_000,
        deprecated=True,
        description="Deprecated (slow on a long store): page with `after` instead.",
    ),
) -> StoredJudgements:
    """Stored judgements (every revision), oldest month first, a page at a time: pass the
    answer's `next_after` as `after` for the next page (null: no more)."""
    if after is not None and offset:
        raise InvalidParameter("give either after or offset, not both", field="offset")
    rows, next_after = store.list_results(
        unique_id=unique_id, since=since, flagged=flagged, limit=limit, after=after, offset=offset
    )
    return StoredJudgements(
        count=len(rows), results=[StoredJudgementPublic(**r) for r in rows], next_after=next_after
    )


@router.get("/historical", response_model=HistoricalJudgements, summary="In-sample flags")
def historical(
    model: ModelDep,
    unique_id: str = Query(..., min_length=1, max_length=512, description="The series."),
    level: int | None = Query(None, ge=1, le=99, description="Default: 99 or the widest."),
    flagged: bool | None = Query(None, description="true: anomalies only."),
) -> HistoricalJudgements:
    """Each training month's value against the model's one-step in-sample interval."""
    series_of(model, unique_id)
    stored = insample_levels(model.bundle.insample)
    lv = level if level is not None else (99 if 99 in stored or not stored else max(stored))
    frame = judge_insample(model.bundle.insample, level=lv, unique_id=unique_id)
    if flagged is not None:
        frame = frame.filter(frame["is_anomaly"] == flagged)
    rows = [JudgementPublic(**r) for r in frame.to_dicts()]
    return HistoricalJudgements(
        unique_id=unique_id,
        level=lv,
        count=len(rows),
        n_anomalies=sum(r.is_anomaly for r in rows),
        results=rows,
    )
