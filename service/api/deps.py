"""Dependencies, declared once as ``Annotated[..., Depends()]`` aliases.

Every dependency here is an ``async def`` that does no I/O: FastAPI runs a plain ``def``
dependency in the thread pool, and on a cached forecast that hop cost more than the answer.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings
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
    "ReadKey",
    "RequestId",
    "check_key",
    "require_api_key",
    "require_read_key",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="A key from SPENDCAST_API_KEYS (any endpoint) or, for reads when "
    "SPENDCAST_READ_KEYS is set, from SPENDCAST_READ_KEYS.",
)


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # create_app's, overrides included
    return settings


async def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def _model(request: Request) -> ServedModel:
    # The holder is read here, not through ``HolderDep``: every level of dependency costs the
    # hot path (FastAPI solves each one), and the forecast answers at close to /healthz's cost.
    holder: ModelHolder = request.app.state.holder
    current = holder.current  # taken once: the request finishes on this model
    if current is None:  # why is in the log (masked), never in a public answer
        raise NotReady("no model is loaded yet; retry shortly")
    return current


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


SettingsDep = Annotated[Settings, Depends(_settings)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
ModelDep = Annotated[ServedModel, Depends(_model)]
StoreDep = Annotated[Store, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RequestId = Annotated[str | None, Depends(_request_id)]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def check_key(credentials: HTTPAuthorizationCredentials | None, keys: tuple[str, ...]) -> None:
    """Accept ``Authorization: Bearer KEY`` with KEY in ``keys`` (constant time), else 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer KEY'")
    given = credentials.credentials.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    if not ok:
        raise Unauthorized("wrong API key")


async def require_api_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Accept ``Authorization: Bearer KEY`` with KEY in ``SPENDCAST_API_KEYS`` (constant time)."""
    if not settings.keys:
        raise AuthNotConfigured(
            "this server has no API key configured, so write and admin endpoints refuse "
            "every request; set SPENDCAST_API_KEYS=key1,key2 (e.g. a value from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and restart"
        )
    check_key(credentials, settings.keys)


async def require_read_key(request: Request, credentials: Credentials) -> None:
    """When ``SPENDCAST_READ_KEYS`` is set, accept a read key or an API key; else anyone."""
    settings: Settings = request.app.state.settings  # as ``_settings``, one level less: every
    if settings.readers:  # read pays this dependency
        check_key(credentials, settings.readers + settings.keys)


ApiKey = Depends(require_api_key)
ReadKey = Depends(require_read_key)
