"""Assembles the FastAPI app: settings, store, model holder, middleware, errors, routers.

Start-up never fails on what may come back by itself: the store is only checked (its schema
version, logged; ``spendcast db upgrade`` changes it, never the service) and the model is
loaded by a background thread that retries while nothing, or only the local cached copy, is
served. Until then ``/readyz`` says what is missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from forecasting.redact import redact
from service.api.deps import ReadKey
from service.api.routes import (
    admin,
    anomalies,
    docs,
    forecast,
    growth,
    health,
    metrics,
    model,
    projections,
    series,
    ui,
)
from service.config import Settings, get_settings
from service.errors import register_error_handlers
from service.read_cache import ReadCache
from service.serving import Loader, ModelHolder, ServedModel, default_loader
from service.store import Store, masked_url
from service.telemetry import Metrics, RequestMiddleware, configure_logging

__all__ = ["create_app", "app", "NO_KEYS_WARNING"]

log = logging.getLogger("spendcast.service")
NO_KEYS_WARNING = (
    "no API key configured (SPENDCAST_API_KEYS): write and admin endpoints refuse every request"
)


def _check_store(store: Store) -> None:
    """Log whether the database answers and holds the schema this code needs."""
    st = store.status()
    log.log(
        logging.INFO if st.status == "ok" else logging.WARNING,
        "store checked",
        extra={"database": masked_url(store.url), **vars(st)},
    )


def _keep_loaded(app: FastAPI, stop: threading.Event, retry_seconds: float) -> None:
    """Load the model; retry the registry while nothing, or the cached copy, is served."""
    holder: ModelHolder = app.state.holder
    while not stop.is_set() and holder.wants_registry:
        try:
            holder.load()
        except Exception:  # the registry may come back: keep the model we have, retry
            log.warning("model load failed", extra={"uri": holder.uri, "error": holder.last_error})
        stop.wait(retry_seconds)


def _on_load(app: FastAPI) -> Callable[[ServedModel], None]:
    """What a swapped-in model updates: the model metrics and one log line."""

    def on_load(served: ServedModel) -> None:
        m = served.loaded
        app.state.metrics.set_model(
            name=m.name, version=m.version, alias=m.alias, run_id=m.run_id, from_cache=m.from_cache
        )
        log.log(
            logging.WARNING if m.from_cache else logging.INFO,
            "model loaded",
            extra={
                "uri": redact(m.uri),
                "version": served.version_label,
                "from_cache": m.from_cache,
                "reason": redact(m.reason) if m.reason else None,
                "seconds": round(served.load_seconds, 3),
            },
        )

    return on_load


def create_app(
    settings: Settings | None = None,
    *,
    loader: Loader | None = None,
    retry_seconds: float | None = None,
) -> FastAPI:
    """Build the app.

    Args:
        settings: the service's settings (default: the environment, ``get_settings``); the
            dependencies read them from ``app.state.settings``.
        loader: how to load the model (default: ``forecasting.tracking.load_model``).
        retry_seconds: wait between registry attempts while the model is not served from the
            registry (default: ``SPENDCAST_MODEL_RETRY_SECONDS``).
    """
    cfg = settings or get_settings()
    configure_logging(cfg.log_level)
    retry = cfg.model_retry_seconds if retry_seconds is None else retry_seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not cfg.keys:
            log.warning(NO_KEYS_WARNING)
        store = Store(cfg.database_url, schema=cfg.database_schema, timeouts=cfg.timeouts)
        app.state.store = store
        threading.Thread(target=_check_store, args=(store,), daemon=True).start()
        stop = threading.Event()
        worker = threading.Thread(
            target=_keep_loaded, args=(app, stop, retry), name="spendcast-load", daemon=True
        )
        worker.start()
        try:
            yield
        finally:
            stop.set()
            app.state.holder.close()
            worker.join(timeout=10)
            app.state.store.dispose()

    app = FastAPI(
        title="spendcast",
        version="1.0.0",
        summary="Projections and anomaly flags for French health-insurance reimbursements.",
        description=(
            "Forecasts, growth rates, annual projections and anomaly detection served from a "
            "trained MLflow model. Errors are `application/problem+json`. Write and admin "
            "endpoints need `Authorization: Bearer KEY` with KEY in `SPENDCAST_API_KEYS`; when "
            "`SPENDCAST_READ_KEYS` is set, every `/v1` read needs a read or a write key too.\n\n"
            + forecast.CSV_DOC
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = cfg
    app.state.metrics = Metrics()
    app.state.holder = ModelHolder(
        loader or default_loader,
        cfg.model_uri,
        cfg.cache_dir,
        registry_timeout=cfg.registry_timeout,
        on_load=_on_load(app),
    )
    register_error_handlers(app)
    app.include_router(health.router)
    for module in (model, series, forecast, projections, growth, anomalies):
        app.include_router(module.router, dependencies=[ReadKey])
    for module in (admin, metrics, ui):
        app.include_router(module.router)
    if cfg.docs:
        app.include_router(docs.router)
    _add_middleware(app, cfg)
    return app


def _add_middleware(app: FastAPI, cfg: Settings) -> None:
    """The read cache innermost, CORS when origins are configured, the request middleware
    outermost (the last added runs first)."""
    app.add_middleware(ReadCache, holder=app.state.holder, settings=cfg)
    if cfg.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(
        RequestMiddleware, metrics=app.state.metrics, max_body_bytes=cfg.max_body_bytes
    )


app = create_app()
