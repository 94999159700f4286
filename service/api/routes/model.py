"""The served model."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.common import model_public
from service.api.deps import ModelDep
from service.api.schemas import ModelPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelPublic, summary="The served model")
async def get_model(model: ModelDep) -> ModelPublic:
    """Registered name, version, alias, run id, training date, data range, horizon, levels
    and backtest metrics."""
    return model_public(model)
