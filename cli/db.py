"""``spendcast db upgrade|status``: the observation store's schema, an explicit step.

The service never changes the schema: it checks the version at start and in ``/readyz``.
Run ``spendcast db upgrade`` once after installing a new version (``spendcast demo`` runs it
itself); it works on an empty database, on one created by an older spendcast and on one
already up to date.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import console, exit_on_error, out

__all__ = ["db_app", "upgrade", "status"]

db_app = typer.Typer(
    help="The observation store's schema (SPENDCAST_DATABASE_URL).", no_args_is_help=True
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL (default: SPENDCAST_DATABASE_URL or sqlite)."
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option(help="PostgreSQL schema (default: SPENDCAST_DATABASE_SCHEMA)."),
]


def _say(text: str, *, err: bool = False) -> None:
    """One plain line (never wrapped: URLs and paths stay whole for scripts)."""
    (console if err else out).print(text, highlight=False, soft_wrap=True)


def _target(url: str | None, schema: str | None) -> tuple[str, str | None]:
    from service.config import get_settings

    settings = get_settings()
    return url or settings.database_url, schema or settings.database_schema


@db_app.command()
def upgrade(database_url: UrlOption = None, schema: SchemaOption = None) -> None:
    """Create or upgrade the store's tables to the version this spendcast needs."""
    from service.store import StoreUnavailable, masked_url
    from service.store import upgrade as run_upgrade

    url, schema = _target(database_url, schema)
    with exit_on_error((StoreUnavailable,), others=1):
        done = run_upgrade(url, schema=schema)
    where = masked_url(url) + (f" (schema {schema})" if schema else "")
    if done.changed:
        _say(f"{where}: schema {done.before or 'none'} -> {done.after}")
    else:
        _say(f"{where}: schema {done.after}, up to date")


@db_app.command()
def status(database_url: UrlOption = None, schema: SchemaOption = None) -> None:
    """Say the store's schema version; exit 1 when unreachable or not up to date."""
    from service.store import Store, masked_url

    url, schema = _target(database_url, schema)
    store = Store(url, schema=schema)
    try:
        st = store.status()
    finally:
        store.dispose()
    _say(
        f"{masked_url(url)}: {st.status}, schema {st.schema_version or 'none'} "
        f"(this spendcast needs {st.expected_version})"
    )
    if st.status != "ok":
        if st.status == "outdated":
            _say("run `spendcast db upgrade`", err=True)
        raise typer.Exit(1)
