"""Repeated reads of the served model answered from the bytes of their first answer.

A served forecast or series list is a pure function of the model and the request's query
string: the model is immutable once loaded, and a reload swaps in another. So the first
``GET`` of a read path goes through the app (query validation, dependencies, the route) and a
``200`` answer's status, headers and body are kept *on the model that answered it*
(:attr:`ServedModel.responses`); the same path and query string on the same model is then
answered from those bytes, without FastAPI's per-request work (its dependency and parameter
solving costs more than the route itself). A reload starts from an empty cache (the new
model's); errors are never kept; with ``SPENDCAST_READ_KEYS`` set, a cached answer is only
given to a request carrying a read or a write key (else the app answers the 401).

The middleware sits inside :class:`~service.telemetry.RequestMiddleware`, so a cached answer
is counted, timed, logged and given its ``X-Request-ID`` like any other, under its route's
template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi.dependencies.utils import get_flat_params
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import check_key
from service.config import Settings
from service.errors import Unauthorized
from service.serving import ModelHolder

__all__ = ["CachedResponse", "ReadCache", "CACHED_PATHS", "MAX_CACHED_BODY"]

CACHED_PATHS = frozenset({"/v1/forecast", "/v1/series"})
"""``GET`` paths whose answers depend only on the model and the query string."""

MAX_CACHED_BODY = 256 * 1024
"""Bigger answers are not kept (a model's cache is bounded: ``serving.BoundedCache``)."""


@dataclass(frozen=True)
class CachedResponse:
    """A ``200`` answer as the app sent it, and the route that made it (for the metrics)."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    route: Any


class ReadCache:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, *, holder: ModelHolder, settings: Settings) -> None:
        self.app = app
        self.holder = holder
        self.settings = settings
        self._declared: dict[int, frozenset[str]] = {}  # id(route) -> its query parameters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = self.holder.current
        if (
            served is None
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] not in CACHED_PATHS
            or not self._may_read(scope)
        ):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        hit = served.responses.get(key)
        if hit is not None:
            scope["route"] = hit.route
            await send({"type": "http.response.start", "status": 200, "headers": [*hit.headers]})
            await send({"type": "http.response.body", "body": hit.body})
            return
        start: Message | None = None
        chunks: list[bytes] = []
        complete = False

        async def keep(message: Message) -> None:
            nonlocal start, complete
            if message["type"] == "http.response.start":
                start = {**message, "headers": list(message.get("headers", []))}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start is not None and start["status"] == 200 and complete:
            if (
                len(body) <= MAX_CACHED_BODY
                and served is self.holder.current
                and self._only_declared(scope.get("route"), scope["query_string"])
            ):
                kept = CachedResponse(tuple(start["headers"]), body, scope.get("route"))
                headers = sum(len(k) + len(v) for k, v in kept.headers)
                served.responses.put(key, kept, len(body) + len(key[1]) + headers)

    def _may_read(self, scope: Scope) -> bool:
        """Whether the request may read (the check of ``require_read_key``); when it may
        not, the app answers it (401), never the cache."""
        readers = self.settings.readers
        if not readers:
            return True
        value = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, token = get_authorization_scheme_param(value.decode("latin-1"))  # as HTTPBearer
        given = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
        try:
            check_key(given, readers + self.settings.keys)
        except Unauthorized:
            return False
        return True

    def _only_declared(self, route: Any, query: bytes) -> bool:
        """Whether every parameter of ``query`` is one the route declares: an answer to a
        query with others (which the route ignores) is not kept, so junk parameters cannot
        fill the cache with copies of one answer."""
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return False
        names = self._declared.get(id(route))
        if names is None:  # the app's routes live as long as this middleware
            names = frozenset(p.alias for p in get_flat_params(dependant))
            self._declared[id(route)] = names
        given = {k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
        return given <= names
