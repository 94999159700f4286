"""Operations: Prometheus metrics, structured JSON logs, request ids and the body-size limit.

:class:`RequestMiddleware` is a plain ASGI middleware (no per-request task or body copy):
it reads or makes the request id (``X-Request-ID`` in and out), refuses bodies over the
limit (``Content-Length`` first, then by counting the streamed bytes), times the request,
counts it by route template and status, and writes one JSON log line. An exception no
handler took becomes a 500 problem here (with its ``X-Request-ID``), logged in that same
line (level ERROR, with the traceback), and is not raised further (so the server does not
log it a second time). Every answer says ``X-Content-Type-Options: nosniff``. Headers are
never logged (so neither are API keys).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forecasting.redact import redact
from service.errors import PayloadTooLarge, error_response, internal_error

if TYPE_CHECKING:
    from forecasting.monitoring.judgement import Judgement

__all__ = ["Metrics", "RequestMiddleware", "JsonFormatter", "configure_logging"]

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
log = logging.getLogger("spendcast.access")


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spendcast_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spendcast_http_request_duration_seconds",
            "Request latency by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "spendcast_model_info",
            "The model being served (value 1; labels say which).",
            ["name", "version", "alias", "run_id", "from_cache"],
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "spendcast_model_loaded_timestamp_seconds",
            "When the served model was loaded (Unix time).",
            registry=self.registry,
        )
        self.flagged = Counter(
            "spendcast_anomalies_flagged",
            "Observations judged ANOMALY by the detect endpoint.",
            ["direction"],
            registry=self.registry,
        )
        self.judged = Counter(
            "spendcast_observations_judged",
            "Observations judged by the detect endpoint, by status.",
            ["status"],
            registry=self.registry,
        )

    def count_judged(self, judgements: Iterable[Judgement]) -> None:
        """Count judged observations by status and flagged ones by direction."""
        for j in judgements:
            self.judged.labels(j.status).inc()
            if j.is_anomaly:
                self.flagged.labels(j.direction or "").inc()

    def set_model(
        self,
        *,
        name: str | None,
        version: str | None,
        alias: str | None,
        run_id: str | None,
        from_cache: bool,
    ) -> None:
        """Point ``spendcast_model_info`` at the model now served."""
        self.model_info.clear()
        self.model_info.labels(
            name or "", version or "", alias or "", run_id or "", str(from_cache).lower()
        ).set(1)
        self.model_loaded.set(time.time())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _SKIP = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send ``spendcast.*`` logs as JSON lines to stderr."""
    root = logging.getLogger("spendcast")
    root.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.propagate = False


class RequestMiddleware:
    """Request id, body limit, metrics and access log (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = ""
        length = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v.decode("latin-1")
            elif k == b"content-length":
                length = v
        if not _VALID_ID.match(rid):
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started = False
        extra_headers = [(b"x-request-id", rid.encode()), _NOSNIFF]

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                message["headers"] = headers + [h for h in extra_headers if h[0] not in have]
            await send(message)

        received = 0
        limit = self.max_body

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # inside the app: the error registry answers
                    raise HTTPException(PayloadTooLarge.status, f"request body over {limit} bytes")
            return message

        error: BaseException | None = None
        try:
            if length is not None and _too_long(length, limit):
                too_large = PayloadTooLarge(
                    f"request body over {limit} bytes (SPENDCAST_MAX_BODY_BYTES)"
                )
                await error_response(too_large)(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except Exception as exc:  # no handler took it: answer 500 here, log it once below
            error = exc
            if not started:
                await internal_error(rid)(scope, receive, send_wrapper)
            status = 500
        finally:
            self._account(scope, rid, status, time.perf_counter() - start, error)

    def _account(
        self, scope: Scope, rid: str, status: int, elapsed: float, error: BaseException | None
    ) -> None:
        """Count and time the request by route template, and write its access-log line."""
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        self.metrics.requests.labels(template, scope["method"], str(status)).inc()
        self.metrics.latency.labels(template).observe(elapsed)
        level = logging.ERROR if error is not None else logging.INFO
        if not log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {
            "request_id": rid,
            "method": scope["method"],
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if error is not None:
            trace = "".join(traceback.format_exception(error))
            extra["error"] = redact(f"{type(error).__name__}: {error}")[:2000]
            extra["traceback"] = redact(trace)[-8000:]
        log.log(level, "request", extra=extra)


def _too_long(raw: bytes, limit: int) -> bool:
    try:
        return int(raw) > limit
    except ValueError:
        return False
