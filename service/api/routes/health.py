"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import HolderDep
from service.api.schemas import Health, Readiness
from service.errors import NotReady

__all__ = ["router"]

router = APIRouter(tags=["health"])


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
async def readyz(holder: HolderDep) -> Readiness:
    """503 until a model is loaded; ``degraded`` (with the reason) when served from cache."""
    current = holder.current
    if current is None:
        why = f": {holder.last_error}" if holder.last_error else ""
        raise NotReady(f"no model loaded yet{why}")
    m = current.loaded
    return Readiness(
        status="degraded" if m.from_cache else "ready",
        reason=m.reason if m.from_cache else None,
        model_uri=m.uri,
        model_version=current.version_label,
        loaded_at=current.loaded_at,
    )
