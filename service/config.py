"""Service settings: one pydantic-settings class read from ``SPENDCAST_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything the service reads from its environment.

    Attributes:
        model_uri: the pyfunc model to serve (``SPENDCAST_MODEL_URI``).
        cache_dir: local copy of the last loaded model, served when the store is down.
        database_url: SQLAlchemy URL of the observation store (SQLite or PostgreSQL).
        database_schema: optional schema (PostgreSQL) that holds the store's tables.
        api_keys: comma-separated keys accepted as ``Authorization: Bearer KEY``.
        max_body_bytes: larger request bodies get 413.
        max_observations: most observations accepted by one detect call.
        cors_origins: comma-separated allowed origins; empty = CORS off.
        log_level: level of the JSON logs.
    """

    model_config = SettingsConfigDict(env_prefix="SPENDCAST_", extra="ignore")

    model_uri: str = "models:/spendcast@champion"
    cache_dir: Path = Path(".spendcast-cache")
    database_url: str = "sqlite:///spendcast.db"
    database_schema: str | None = None
    api_keys: SecretStr = SecretStr("")
    max_body_bytes: Annotated[int, Field(ge=1)] = 5 * 1024 * 1024
    max_observations: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    cors_origins: str = ""
    log_level: str = "INFO"

    @property
    def keys(self) -> tuple[str, ...]:
        """The configured API keys (empty when none)."""
        return tuple(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())

    @property
    def origins(self) -> list[str]:
        """The allowed CORS origins (empty = CORS off)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests override this dependency)."""
    return Settings()
