"""What every command shares: the consoles, the exit on a domain error, the common options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from forecasting.errors import SpendcastError

__all__ = [
    "console",
    "out",
    "exit_on_error",
    "local_url",
    "ModelOption",
    "HostOption",
    "PortOption",
    "RegisterOption",
    "PromoteOption",
    "EngineOption",
]

console = Console(stderr=True)
"""Progress, rules and errors (stderr)."""
out = Console()
"""Results (stdout)."""

ModelOption = Annotated[
    str | None,
    typer.Option(
        help="Model URI: models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/latest, "
        "runs:/ID/model or a path (default: SPENDCAST_MODEL_URI or models:/spendcast@champion)."
    ),
]
HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]
RegisterOption = Annotated[str | None, typer.Option(help="Register the model under NAME.")]
PromoteOption = Annotated[bool, typer.Option(help="Move the champion alias if it is better.")]
EngineOption = Annotated[str, typer.Option(help="local or dask.")]


def _fail(exc: Exception, code: int) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def exit_on_error(
    expected: tuple[type[Exception], ...] = (SpendcastError,), *, others: int | None = None
) -> Iterator[None]:
    """Print an expected error and exit 2; with ``others``, exit so on any other error too.

    Args:
        expected: the errors that mean bad input (exit code 2).
        others: exit code for any other exception (None: let it propagate).
    """
    try:
        yield
    except expected as exc:
        raise _fail(exc, 2) from exc
    except Exception as exc:
        if others is None:
            raise
        raise _fail(exc, others) from exc


def local_url(host: str, port: int) -> str:
    """The base URL to reach a server listening on ``host:port`` from this machine."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
