"""`spendcast`: the command line. Thin: parses options, calls the library, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from forecasting.schema import SpendcastError

app = typer.Typer(
    name="spendcast",
    help="Forecast and monitor the Assurance Maladie's monthly reimbursements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# --------------------------------------------------------------------------- synth


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the monthly files into.")],
    start: Annotated[str, typer.Option(help="First processing month, YYYY-MM.")] = "2015-01",
    end: Annotated[str, typer.Option(help="Last processing month, YYYY-MM.")] = "2024-12",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    rows_per_month: Annotated[
        int, typer.Option(min=1_000, max=40_000_000, help="Rows per monthly file.")
    ] = 5_000,
    format: Annotated[
        str, typer.Option("--format", help="open-damir (A*.csv.gz) or legacy (N*.CSV).")
    ] = "open-damir",
) -> None:
    """Generate synthetic monthly files in the real Open DAMIR (or legacy) layout."""
    from forecasting.sources import synth as synth_mod

    try:
        report = synth_mod.generate(
            out_dir,
            start=start,
            end=end,
            seed=seed,
            rows_per_month=rows_per_month,
            fmt=format,
            console=console,
        )
    except SpendcastError as exc:
        raise _fail(exc) from exc
    out.print(report.summary_table())


# --------------------------------------------------------------------------- ingest


@app.command()
def ingest(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders to read.")],
    out_path: Annotated[Path, typer.Option("--out", help="The panel to write (.parquet).")],
    format: Annotated[
        str, typer.Option("--format", help="auto, open-damir, legacy or tidy.")
    ] = "auto",
    basis: Annotated[
        str, typer.Option(help="flux: processing month (FLX_ANN_MOI); care: care month.")
    ] = "flux",
    measure: Annotated[str, typer.Option(help="reimbursed, presented or acts.")] = "reimbursed",
    scope: Annotated[
        str, typer.Option(help="all, monthly-statistic (TOP_PS5_TRG=1) or ondam (CPT_ENV_TYP 1,2).")
    ] = "all",
    hierarchy: Annotated[
        str | None,
        typer.Option(
            help="Open DAMIR: 'executant' (default) or 'prescriber'; tidy: COL,COL top to bottom."
        ),
    ] = None,
    date_col: Annotated[str | None, typer.Option(help="Tidy: the month column.")] = None,
    value_col: Annotated[str | None, typer.Option(help="Tidy: the amount column.")] = None,
    fill_missing: Annotated[
        str | None, typer.Option(help="'zero' fills missing months inside a series with 0.")
    ] = None,
    on_bad_rows: Annotated[
        str, typer.Option(help="error (default) or skip: skipped rows go to a quarantine CSV.")
    ] = "error",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Per-file aggregate cache (default: beside --out).")
    ] = None,
) -> None:
    """Read raw monthly files into a bottom-level panel (parquet) and a JSON report."""
    from forecasting import ingest as ingest_mod

    try:
        report = ingest_mod.ingest(
            inputs,
            out_path,
            fmt=format,
            basis=basis,
            measure=measure,
            scope=scope,
            hierarchy=hierarchy,
            date_col=date_col,
            value_col=value_col,
            fill_missing=fill_missing,
            on_bad_rows=on_bad_rows,
            cache_dir=cache_dir,
            console=console,
        )
    except SpendcastError as exc:
        raise _fail(exc) from exc
    out.print(report.summary_table())


# --------------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model URI (default: SPENDCAST_MODEL_URI or models:/spendcast@champion)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the HTTP API (uvicorn, service.main) on the model named by --model."""
    import uvicorn
    from rich.table import Table

    from service.config import get_settings
    from service.main import create_app

    settings = get_settings()
    if model:
        settings = settings.model_copy(update={"model_uri": model})
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    table = Table(title="spendcast serve", show_header=False)
    table.add_row("model", settings.model_uri)
    table.add_row("database", settings.database_url.split("@")[-1])
    table.add_row("API docs", f"{base}/docs")
    table.add_row("ready", f"{base}/readyz")
    table.add_row("API keys", f"{len(settings.keys)} configured (SPENDCAST_API_KEYS)")
    out.print(table)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)


def main() -> None:  # pragma: no cover - console entry point helper
    app()
