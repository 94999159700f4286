"""Assembles the FastAPI app: settings, store, model holder, middleware, errors, routers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.api.routes import (
    admin,
    anomalies,
    forecast,
    growth,
    health,
    metrics,
    model,
    projections,
)
from service.api.routes import series as series_routes
from service.api.routes import ui as ui_routes
from service.config import Settings, get_settings
from service.errors import register_error_handlers
from service.serving import Loader, ModelHolder, default_loader
from service.store import Store
from service.telemetry import Metrics, RequestMiddleware, configure_logging

__all__ = ["create_app", "app"]

log = logging.getLogger("spendcast.service")


def _load_in_background(app: FastAPI, stop: threading.Event, retry_seconds: float) -> None:
    holder: ModelHolder = app.state.holder
    while not stop.is_set():
        try:
            served = holder.load()
        except Exception as exc:  # the store may come up later: keep trying
            log.warning("model load failed", extra={"uri": holder.uri, "error": str(exc)})
            stop.wait(retry_seconds)
            continue
        m = served.loaded
        app.state.metrics.set_model(
            name=m.name, version=m.version, alias=m.alias, run_id=m.run_id, from_cache=m.from_cache
        )
        log.info(
            "model loaded",
            extra={
                "uri": m.uri,
                "version": served.version_label,
                "from_cache": m.from_cache,
                "reason": m.reason,
                "seconds": round(served.load_seconds, 3),
            },
        )
        return


def create_app(
    settings: Settings | None = None, *, loader: Loader | None = None, retry_seconds: float = 5.0
) -> FastAPI:
    """Build the app.

    Args:
        settings: overrides the ``get_settings`` dependency (default: the environment).
        loader: ``(uri, cache_dir) -> LoadedModel`` (default: ``forecasting.tracking``).
        retry_seconds: wait between model load attempts while none is loaded.
    """
    cfg = settings or get_settings()
    configure_logging(cfg.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(cfg.database_url, schema=cfg.database_schema)
        store.create()
        app.state.store = store
        stop = threading.Event()
        worker = threading.Thread(
            target=_load_in_background, args=(app, stop, retry_seconds), daemon=True
        )
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=10)
            store.dispose()

    app = FastAPI(
        title="spendcast",
        version="1.0.0",
        summary="Projections and anomaly flags for French health-insurance reimbursements.",
        description=(
            "Forecasts, growth rates, annual projections and anomaly detection served from a "
            "trained MLflow model. Errors are `application/problem+json`. Write and admin "
            "endpoints need `Authorization: Bearer KEY` with KEY in `SPENDCAST_API_KEYS`.\n\n"
            + forecast.CSV_DOC
        ),
        lifespan=lifespan,
    )
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    app.state.settings = cfg
    app.state.metrics = Metrics()
    app.state.holder = ModelHolder(loader or default_loader, cfg.model_uri, cfg.cache_dir)
    register_error_handlers(app)
    for module in (
        health,
        model,
        series_routes,
        forecast,
        projections,
        growth,
        anomalies,
        admin,
        metrics,
    ):
        app.include_router(module.router)
    app.include_router(ui_routes.router)
    _add_middleware(app, cfg)
    return app


def _add_middleware(app: FastAPI, cfg: Settings) -> None:
    """CORS when origins are configured; the request middleware outermost."""
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
