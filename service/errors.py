"""Domain errors and the one registry that turns every error into ``application/problem+json``.

Routes raise the exceptions below (or let library errors through); they never build error
responses themselves. Problem fields: ``type``, ``title``, ``status``, ``detail`` and, for
validation errors, ``errors`` (a list of ``{field, message}``) plus ``field`` (the first one).

Nothing internal reaches an answer: a library error that is not about the request's input
(:class:`~forecasting.errors.SpendcastError`) and an unexpected exception answer a generic
detail with the request id, and the log line (masked) holds the message. Every 503 carries
``Retry-After``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from forecasting.errors import InputError, SpendcastError
from forecasting.redact import redact
from service.store import StoreOutdated, StoreUnavailable

__all__ = [
    "PROBLEM_JSON",
    "ServiceError",
    "NotReady",
    "Unauthorized",
    "AuthNotConfigured",
    "UnknownSeries",
    "SeriesWithheld",
    "InvalidParameter",
    "PayloadTooLarge",
    "ReloadFailed",
    "RETRY_AFTER",
    "problem",
    "error_response",
    "internal_error",
    "register_error_handlers",
]

PROBLEM_JSON = "application/problem+json"
_TYPE = "https://spendcast.example/problems/"
RETRY_AFTER = 5
"""Seconds a client is told to wait after a 503."""
log = logging.getLogger("spendcast.service")


class ServiceError(Exception):
    """A domain error with its HTTP status and problem ``type`` slug."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotReady(ServiceError):
    """No model is loaded yet."""

    status, slug, title = 503, "not-ready", "Model not loaded"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(RETRY_AFTER)}


class Unauthorized(ServiceError):
    """Missing or wrong API key."""

    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class AuthNotConfigured(Unauthorized):
    """The server has no API key configured: write endpoints refuse every request."""

    slug, title = "auth-not-configured", "No API key configured"


class UnknownSeries(ServiceError):
    """A ``unique_id`` the model does not know."""

    status, slug, title = 404, "unknown-series", "Unknown series"


class SeriesWithheld(UnknownSeries):
    """A series the model has but never serves; ``kind`` (the problem type) says why.

    ``small-cell``: one of its months describes fewer acts than the privacy threshold;
    ``flat-total``: the sum of unrelated series (a flat panel) is not a series.
    """

    title = "Series withheld"

    def __init__(self, detail: str, *, kind: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.slug = kind


class InvalidParameter(ServiceError):
    """A well-formed parameter whose value the model cannot serve (horizon, level, year)."""

    status, slug, title = 422, "invalid-parameter", "Invalid parameter"


class PayloadTooLarge(ServiceError):
    """A request body over ``SPENDCAST_MAX_BODY_BYTES`` (the connection is closed after)."""

    status, slug, title = 413, "payload-too-large", "Payload too large"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Connection": "close"}


class ReloadFailed(NotReady):
    """The model store could not give a model; the previous model keeps serving."""

    slug, title = "reload-failed", "Model reload failed"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = {"type": _TYPE + slug, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_response(exc: ServiceError) -> JSONResponse:
    """The problem+json response of a domain error (its ``field`` and extras included)."""
    extra = dict(exc.extra)
    if exc.field:
        extra["field"] = exc.field
    return problem(
        exc.status, exc.title, exc.detail, slug=exc.slug, headers=exc.headers or None, **extra
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        422,
        "Validation error",
        f"{first['field']}: {first['message']}",
        slug="validation-error",
        field=first["field"],
        errors=errors,
    )


async def _input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    extra: dict[str, Any] = {"field": exc.column} if exc.column else {}
    if exc.hint:
        extra["hint"] = exc.hint
    return problem(422, "Invalid input", exc.message, slug="invalid-input", **extra)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    outdated = isinstance(exc, StoreOutdated)  # said at start and by /readyz; no log flood
    return problem(
        503,
        "Store schema outdated" if outdated else "Store unavailable",
        str(exc) if outdated else "the observation store is unavailable; retry shortly",
        slug="store-outdated" if outdated else "store-unavailable",
        headers={"Retry-After": str(RETRY_AFTER)},
        request_id=_request_id(request),
    )


async def _spendcast_error(request: Request, exc: Exception) -> JSONResponse:
    rid = _request_id(request)
    log.error(
        "model error",
        extra={"request_id": rid, "error": f"{type(exc).__name__}: {redact(exc)}"[:2000]},
    )
    return problem(
        500,
        "Model error",
        "the model could not answer this request; the service log has the details "
        f"(request id {rid})",
        slug="model-error",
        request_id=rid,
    )


_HTTP_ERRORS = {  # status -> (title, slug) of the framework's own errors
    404: ("Not found", "not-found"),
    405: ("Method not allowed", "method-not-allowed"),
    PayloadTooLarge.status: (PayloadTooLarge.title, PayloadTooLarge.slug),  # body streamed over
}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title, slug = _HTTP_ERRORS.get(exc.status_code, ("HTTP error", "http-error"))
    return problem(
        exc.status_code,
        title,
        str(exc.detail),
        slug=slug,
        headers=dict(exc.headers) if exc.headers else None,
    )


def internal_error(request_id: str) -> JSONResponse:
    """The 500 of an unexpected exception (the request middleware logs it and answers this)."""
    return problem(
        500,
        "Internal error",
        f"an unexpected error occurred (request id {request_id})",
        slug="internal",
        request_id=request_id,
    )


def register_error_handlers(app: FastAPI) -> None:
    """Map every error the service can raise to problem+json (the one registry).

    Unexpected exceptions are answered by the request middleware (:func:`internal_error`),
    so that their 500 carries ``X-Request-ID`` and is logged once, as JSON.
    """
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(StoreUnavailable, _store_error)
    app.add_exception_handler(StoreOutdated, _store_error)
    app.add_exception_handler(SpendcastError, _spendcast_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
