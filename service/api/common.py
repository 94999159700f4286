"""Helpers the routes share: series lookup, horizon/level checks, model description."""

from __future__ import annotations

import math
from collections.abc import Sequence

from forecasting.monitoring.judge import SeriesForecast
from service.api.schemas import ModelPublic
from service.errors import InvalidParameter, UnknownSeries
from service.serving import ServedModel, clean

__all__ = ["series_of", "check_horizon", "check_levels", "model_public", "clean"]


def series_of(model: ServedModel, unique_id: str) -> SeriesForecast:
    """The series, or :class:`UnknownSeries` (404) naming what exists."""
    s = model.lookup.get(unique_id)
    if s is None:
        raise UnknownSeries(
            f"unknown series '{unique_id}'; GET /v1/series lists the "
            f"{len(model.lookup)} series of this model",
            field="unique_id",
        )
    return s


def check_horizon(model: ServedModel, horizon: int | None) -> int:
    """The horizon asked for, at most the trained one."""
    trained = model.bundle.meta.horizon
    if horizon is None:
        return trained
    if not 1 <= horizon <= trained:
        raise InvalidParameter(
            f"horizon {horizon} is outside 1..{trained} (the model was trained for "
            f"{trained} months)",
            field="horizon",
        )
    return horizon


def check_levels(model: ServedModel, levels: Sequence[int] | None) -> list[int]:
    """The levels asked for, each one a trained level (default: all of them)."""
    trained = list(model.bundle.meta.levels)
    if not levels:
        return trained
    unknown = sorted(set(levels) - set(trained))
    if unknown:
        raise InvalidParameter(
            f"level(s) {unknown} not trained; choose among {trained}", field="level"
        )
    return sorted(set(levels))


def model_public(model: ServedModel) -> ModelPublic:
    """Describe the served model."""
    m, meta = model.loaded, model.bundle.meta
    return ModelPublic(
        uri=m.uri,
        name=m.name,
        version=m.version,
        alias=m.alias,
        run_id=m.run_id or meta.run_id,
        from_cache=m.from_cache,
        trained_at=meta.trained_at,
        first_ds=meta.first_ds,
        last_ds=meta.last_ds,
        horizon=meta.horizon,
        levels=list(meta.levels),
        hierarchy=list(meta.hierarchy),
        measure=meta.measure,
        basis=meta.basis,
        source=meta.source,
        reconciliation=meta.reconciliation,
        primary_metric=meta.primary_metric,
        models=list(meta.models),
        n_series=len(model.lookup),
        metrics={k: float(v) for k, v in meta.metrics.items() if math.isfinite(float(v))},
    )
