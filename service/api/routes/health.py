"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import HolderDep, StoreDep
from service.api.schemas import Health, Readiness, StorePublic
from service.errors import NotReady
from service.store import StoreStatus

__all__ = ["router"]

router = APIRouter(tags=["health"])

_CACHED = (
    "serving the local cached copy of the model: the registry could not give it (the "
    "service log says why; it is retried in the background)"
)
_STORE = {
    "unavailable": "the observation store is unavailable: detect and stored results answer 503",
    "outdated": "the database schema is at version {schema_version}, this service needs "
    "{expected_version}: run `spendcast db upgrade`",
}


def _store_reason(st: StoreStatus) -> str | None:
    text = _STORE.get(st.status)
    return None if text is None else text.format(**vars(st))


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Always 200 while the process runs."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"description": "No model loaded yet (problem+json)."}},
)
def readyz(holder: HolderDep, store: StoreDep) -> Readiness:
    """503 until a model is loaded; ``degraded`` (with the reasons) when the model is the
    local cached copy or the store is unavailable or needs `spendcast db upgrade`."""
    st = store.status()
    current = holder.current
    if current is None:
        raise NotReady("no model loaded yet; retry shortly", store=vars(st))
    m = current.loaded
    reasons = [r for r in (_CACHED if m.from_cache else None, _store_reason(st)) if r]
    return Readiness(
        status="degraded" if reasons else "ready",
        reason="; ".join(reasons) or None,
        model_uri=m.uri,
        model_version=current.version_label,
        loaded_at=current.loaded_at,
        store=StorePublic(**vars(st)),
    )
