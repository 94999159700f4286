"""Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(m: MetricsDep) -> Response:
    """Requests by route and status, latency histogram, model version, anomalies flagged."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
