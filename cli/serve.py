"""``spendcast serve`` and ``spendcast demo`` (synth -> ingest -> train -> serve)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import HostOption, ModelOption, PortOption, console, exit_on_error, local_url, out
from cli.train import train_table

if TYPE_CHECKING:
    from rich.table import Table

    from forecasting.tracking import TrainOutcome
    from service.config import Settings

__all__ = ["serve", "demo"]


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    model: ModelOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the HTTP API (uvicorn, service.main) on the model named by --model.

    The observation store must be at the schema this version needs (`spendcast db upgrade`);
    the banner says whether it is, and whether API keys are configured.
    """
    import uvicorn

    from service.config import get_settings
    from service.main import create_app

    settings = get_settings()
    if model:
        settings = settings.model_copy(update={"model_uri": model})
    out.print(_banner(settings, local_url(host, port)))
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)


def _banner(settings: Settings, base: str) -> Table:
    """Model, database (masked, with its schema status), URLs, keys (warned when none)."""
    from rich.table import Table

    from service.main import NO_KEYS_WARNING
    from service.store import Store, masked_url

    url = settings.database_url
    store = Store(url, schema=settings.database_schema, timeouts=settings.timeouts)
    try:
        st = store.status()
    finally:
        store.dispose()
    schema = {
        "ok": f"schema {st.schema_version}",
        "unavailable": "[yellow]unreachable now[/] (the service retries)",
        "outdated": f"[bold red]schema {st.schema_version or 'none'}, needs "
        f"{st.expected_version}: run `spendcast db upgrade`[/]",
    }[st.status]
    table = Table(title="spendcast serve", show_header=False)
    table.add_row("model", settings.model_uri)
    table.add_row("database", f"{masked_url(url)}  {schema}")
    table.add_row("API docs", f"{base}/docs" if settings.docs else "off (SPENDCAST_DOCS=false)")
    table.add_row("ready", f"{base}/readyz")
    keys = f"{len(settings.keys)} configured (SPENDCAST_API_KEYS)"
    warn = f"[bold yellow]warning: {NO_KEYS_WARNING}[/]"
    table.add_row("API keys", keys if settings.keys else warn)
    reads = f"need a key ({len(settings.readers)} read keys)" if settings.readers else "open"
    table.add_row("reads", reads)
    return table


def demo(
    workdir: Annotated[
        Path, typer.Option(help="Folder for the generated files and the panel.")
    ] = Path("demo"),
    rows_per_month: Annotated[
        int, typer.Option(min=1_000, max=40_000_000, help="Rows per generated monthly file.")
    ] = 5_000,
    start: Annotated[str, typer.Option(help="First generated month, YYYY-MM.")] = "2015-01",
    end: Annotated[str, typer.Option(help="Last generated month, YYYY-MM.")] = "2024-12",
    config: Annotated[
        Path | None, typer.Option(help="Experiment TOML (default: the built-in defaults).")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="End by serving the demo model.")
    ] = True,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """The whole job on embedded defaults: synth -> ingest -> train (register, promote) -> serve.

    Writes generated Open DAMIR files to WORKDIR/raw, the panel to WORKDIR/panel.parquet, an
    MLflow run to MLFLOW_TRACKING_URI (default sqlite:///mlflow.db, artifacts in ./mlruns),
    registers model `spendcast` with alias `champion` when it beats the current one, then serves
    it and prints the URLs to try and a freshly generated API key for the write endpoints.
    """
    panel = workdir / "panel.parquet"
    with exit_on_error():
        outcome = _build(workdir / "raw", panel, rows_per_month, start, end, config)
    out.print(train_table(outcome, "spendcast demo: model"))
    if not serve_after:
        return
    console.rule("4/4 serve")
    _upgrade_store()
    _print_try_these(panel, host, port)
    serve(host=host, port=port, model=None, log_level="warning")


def _build(
    raw: Path, panel: Path, rows_per_month: int, start: str, end: str, config: Path | None
) -> TrainOutcome:
    """Steps 1 to 3 of the demo: generated files, the panel, a registered model."""
    from forecasting import tracking
    from forecasting.data import ingest as ingest_mod
    from forecasting.data import synth as synth_mod
    from forecasting.training.config import load_config

    console.rule("1/4 synth: generated Open DAMIR files")
    out.print(
        synth_mod.generate(
            raw, start=start, end=end, rows_per_month=rows_per_month, console=console
        ).summary_table()
    )
    console.rule("2/4 ingest: files -> bottom-level panel")
    out.print(ingest_mod.ingest([raw], panel, console=console).summary_table())
    console.rule("3/4 train: backtest, select, reconcile, log to MLflow, register")
    cfg = load_config(config)
    return tracking.train(
        panel,
        cfg,
        config_path=config,
        register="spendcast",
        promote=True,
        progress=True,
    )


def _upgrade_store() -> None:
    """``spendcast db upgrade`` on the demo's store (the service only checks the schema)."""
    from service.config import Settings
    from service.store import masked_url, upgrade

    settings = Settings()  # not get_settings(): the service's, cached, comes after the key
    done = upgrade(settings.database_url, schema=settings.database_schema)
    out.print(f"store {masked_url(settings.database_url)}: schema {done.after}", highlight=False)


def _print_try_these(panel: Path, host: str, port: int) -> None:
    """The URLs to try and the API key of the write endpoints (set for the service too)."""
    import os
    import secrets

    from forecasting import tracking

    key = os.environ.get("SPENDCAST_API_KEYS") or secrets.token_urlsafe(24)
    os.environ["SPENDCAST_API_KEYS"] = key
    base = local_url(host, port)
    year = int(_last_month(panel)[:4]) + 1
    lines = [
        ("web page", f"{base}/"),
        ("API docs", f"{base}/docs"),
        ("a forecast", f"{base}/v1/forecast?unique_id=total&horizon=12&level=95"),
        ("annual projection", f"{base}/v1/projections/annual?unique_id=total&year={year}"),
        ("API key", f"{key}  (Authorization: Bearer KEY on write and admin endpoints)"),
        ("MLflow UI", f"mlflow ui --backend-store-uri {tracking.tracking_uri()}"),
    ]
    console.rule("spendcast demo: try these")
    for name, value in lines:
        out.print(f"[bold]{name:>18}[/]  {value}", soft_wrap=True, highlight=False)


def _last_month(panel: Path) -> str:
    """The panel's last month as ``YYYY-MM``."""
    from forecasting.data.panel import read_panel

    frame, _ = read_panel(panel)
    return str(frame["ds"].max())[:7]
