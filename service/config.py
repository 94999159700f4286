"""Service settings: one pydantic-settings class read from ``SPENDCAST_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.store.engine import Timeouts

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything the service reads from its environment.

    Attributes:
        model_uri: the pyfunc model to serve (``SPENDCAST_MODEL_URI``).
        cache_dir: local copy of the last loaded model, served when the store is down.
        database_url: SQLAlchemy URL of the observation store (SQLite or PostgreSQL).
        database_schema: optional schema (PostgreSQL) that holds the store's tables.
        db_connect_timeout: seconds to open a database connection (PostgreSQL).
        db_statement_timeout: seconds one statement may run (PostgreSQL).
        db_lock_timeout: seconds to wait for a lock (PostgreSQL; SQLite's busy timeout).
        api_keys: comma-separated keys accepted as ``Authorization: Bearer KEY`` on every
            endpoint (write, admin and read).
        read_keys: comma-separated keys that may only read; when set, every ``/v1`` read
            needs a read or a write key (empty: reads are open).
        registry_timeout: seconds one attempt to load the model from the registry may take
            before the cached copy serves (the attempt goes on in the background).
        model_retry_seconds: wait between registry attempts while no model, or only the
            cached copy, is served.
        docs: serve the OpenAPI UI at ``/docs`` (its assets are local); false hides it.
        max_body_bytes: larger request bodies get 413.
        max_observations: most observations accepted by one detect call.
        shift_after: months in a row on one side (all but one of them anomalies from three
            on) after which detect accepts a lasting level shift (``LEVEL_SHIFT``; 0: never, a
            shift stays flagged until retraining).
        cors_origins: comma-separated allowed origins; empty = CORS off.
        log_level: level of the JSON logs.
    """

    model_config = SettingsConfigDict(env_prefix="SPENDCAST_", extra="ignore")

    model_uri: str = "models:/spendcast@champion"
    cache_dir: Path = Path(".spendcast-cache")
    database_url: str = "sqlite:///spendcast.db"
    database_schema: str | None = None
    db_connect_timeout: Annotated[float, Field(gt=0, le=300)] = Timeouts.connect
    db_statement_timeout: Annotated[float, Field(gt=0, le=3600)] = Timeouts.statement
    db_lock_timeout: Annotated[float, Field(gt=0, le=3600)] = Timeouts.lock
    api_keys: SecretStr = SecretStr("")
    read_keys: SecretStr = SecretStr("")
    registry_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    model_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    docs: bool = True
    max_body_bytes: Annotated[int, Field(ge=1)] = 5 * 1024 * 1024
    max_observations: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    shift_after: Annotated[int, Field(ge=0, le=24)] = 3
    cors_origins: str = ""
    log_level: str = "INFO"

    @property
    def keys(self) -> tuple[str, ...]:
        """The configured API keys (empty when none)."""
        return _split(self.api_keys)

    @property
    def readers(self) -> tuple[str, ...]:
        """The read-only keys (empty: reads are open)."""
        return _split(self.read_keys)

    @property
    def timeouts(self) -> Timeouts:
        """The store's bounds on waiting for the database."""
        return Timeouts(
            connect=self.db_connect_timeout,
            statement=self.db_statement_timeout,
            lock=self.db_lock_timeout,
        )

    @property
    def origins(self) -> list[str]:
        """The allowed CORS origins (empty = CORS off)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def _split(keys: SecretStr) -> tuple[str, ...]:
    return tuple(k.strip() for k in keys.get_secret_value().split(",") if k.strip())


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests override this dependency)."""
    return Settings()
