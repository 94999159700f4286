"""Administration: reload the champion without a restart."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from forecasting.redact import redact
from service.api.common import model_public
from service.api.deps import ApiKey, HolderDep, RequestId
from service.api.schemas import ReloadResult
from service.errors import ReloadFailed

__all__ = ["router"]

log = logging.getLogger("spendcast.service")

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[ApiKey])


@router.post("/reload", response_model=ReloadResult, summary="Load the current champion")
def reload(holder: HolderDep, request_id: RequestId) -> ReloadResult:
    """Load the model URI again from the registry and swap it in atomically; requests in
    flight finish on the old model. On failure (registry down, broken new champion) the old
    model keeps serving and the answer is 503 (the log has why, under the request id); the
    local cached copy never stands in for a reload."""
    previous = holder.current.version_label if holder.current else None
    try:
        served = holder.load()
    except Exception as exc:
        log.warning(
            "model reload failed",
            extra={"request_id": request_id, "uri": holder.uri, "error": holder.last_error},
        )
        raise ReloadFailed(
            f"could not load {redact(holder.uri)}; the model served before keeps serving "
            f"(the service log has why, request id {request_id})"
        ) from exc
    return ReloadResult(
        previous_version=previous, model=model_public(served), load_seconds=served.load_seconds
    )
