"""Administration: reload the champion without a restart."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.common import model_public
from service.api.deps import ApiKey, HolderDep, MetricsDep
from service.api.schemas import ReloadResult
from service.errors import ReloadFailed

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[ApiKey])


@router.post("/reload", response_model=ReloadResult, summary="Load the current champion")
def reload(holder: HolderDep, metrics: MetricsDep) -> ReloadResult:
    """Load the model URI again and swap it in atomically; requests in flight finish on the
    old model. On failure the old model keeps serving and the answer is 503."""
    previous = holder.current.version_label if holder.current else None
    try:
        served = holder.load()
    except Exception as exc:
        raise ReloadFailed(f"could not load {holder.uri}: {exc}") from exc
    m = served.loaded
    metrics.set_model(
        name=m.name, version=m.version, alias=m.alias, run_id=m.run_id, from_cache=m.from_cache
    )
    return ReloadResult(
        previous_version=previous, model=model_public(served), load_seconds=served.load_seconds
    )
