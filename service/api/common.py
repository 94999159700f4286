"""Helpers the routes share: series lookup, horizon/level checks, model description."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

from forecasting.monitoring.forecast import SeriesForecast
from service.api.schemas import ModelPublic
from service.errors import InvalidParameter, SeriesWithheld, UnknownSeries
from service.serving import ServedModel, clean

__all__ = [
    "series_of",
    "check_served",
    "check_horizon",
    "check_levels",
    "model_public",
    "clean",
]


def check_served(model: ServedModel, unique_ids: Sequence[str], field: str = "unique_id") -> None:
    """:class:`SeriesWithheld` (404, problem type ``small-cell`` or ``flat-total``) for the
    first withheld series among ``unique_ids``: the service never serves nor stores one."""
    for uid in unique_ids:
        if uid in model.withheld:
            kind, why = model.withheld[uid]
            raise SeriesWithheld(f"series '{uid}' is withheld: {why}", kind=kind, field=field)


def series_of(model: ServedModel, unique_id: str) -> SeriesForecast:
    """The series, or 404: :class:`SeriesWithheld` saying why, :class:`UnknownSeries`."""
    check_served(model, [unique_id])
    s = model.lookup.get(unique_id)
    if s is None:
        raise UnknownSeries(
            f"unknown series '{unique_id}'; GET /v1/series lists the "
            f"{len(model.lookup) - len(model.withheld)} series of this model",
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


_OWN = ("run_id", "metrics")  # facts of the bundle that ModelPublic reports its own way


def model_public(model: ServedModel) -> ModelPublic:
    """Describe the served model: the loaded model's registry facts and the bundle's."""
    m, meta = model.loaded, model.bundle.meta
    facts = {
        k: v for k, v in asdict(meta).items() if k in ModelPublic.model_fields and k not in _OWN
    }
    return ModelPublic(
        **facts,
        uri=m.uri,
        name=m.name,
        version=m.version,
        alias=m.alias,
        run_id=m.run_id or meta.run_id,
        from_cache=m.from_cache,
        n_series=len(model.lookup) - len(model.withheld),
        metrics={k: float(v) for k, v in meta.metrics.items() if math.isfinite(float(v))},
    )
