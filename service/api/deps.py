"""Dependencies, declared once as ``Annotated[..., Depends()]`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings, get_settings
from service.errors import AuthNotConfigured, NotReady, Unauthorized
from service.serving import ModelHolder, ServedModel
from service.store import Store
from service.telemetry import Metrics

__all__ = [
    "SettingsDep",
    "ModelDep",
    "HolderDep",
    "StoreDep",
    "MetricsDep",
    "ApiKey",
    "RequestId",
    "require_api_key",
]

_bearer = HTTPBearer(auto_error=False, description="An API key from SPENDCAST_API_KEYS.")


def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def _model(holder: Annotated[ModelHolder, Depends(_holder)]) -> ServedModel:
    current = holder.current  # taken once: the request finishes on this model
    if current is None:
        why = f" ({holder.last_error})" if holder.last_error else ""
        raise NotReady(f"no model is loaded yet{why}; retry shortly")
    return current


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
ModelDep = Annotated[ServedModel, Depends(_model)]
StoreDep = Annotated[Store, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RequestId = Annotated[str | None, Depends(_request_id)]


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept ``Authorization: Bearer KEY`` with KEY in ``SPENDCAST_API_KEYS`` (constant time)."""
    keys = settings.keys
    if not keys:
        raise AuthNotConfigured(
            "this server has no API key configured, so write and admin endpoints refuse "
            "every request; set SPENDCAST_API_KEYS=key1,key2 (e.g. a value from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and restart"
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer KEY'")
    given = credentials.credentials.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    if not ok:
        raise Unauthorized("wrong API key")


ApiKey = Depends(require_api_key)
