"""`spendcast`: the command line. Thin: parses options, calls the library, prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from forecasting.errors import SpendcastError

if TYPE_CHECKING:
    import polars as pl

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
    from forecasting.data import synth as synth_mod

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
    from forecasting.data import ingest as ingest_mod

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


# --------------------------------------------------------------------------- train


def _train_table(outcome: object, title: str) -> object:
    from rich.table import Table

    from forecasting.tracking import TrainOutcome

    assert isinstance(outcome, TrainOutcome)
    table = Table(title=title, show_header=False)
    table.add_row("experiment", outcome.experiment)
    table.add_row("run id", outcome.run_id)
    pm = outcome.primary_metric
    for key in (
        pm,
        *sorted(k for k in outcome.metrics if k.startswith("coverage_") and "." not in k),
    ):
        if key in outcome.metrics:
            table.add_row(key, f"{outcome.metrics[key]:.4f}")
    promo = outcome.promotion
    table.add_row("registered", f"{promo.name} v{promo.version}" if promo else "no (--register)")
    if promo:
        table.add_row(
            "champion", f"{'promoted' if promo.promoted else 'not promoted'}: {promo.reason}"
        )
    return table


def _levels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        from forecasting.errors import InputError

        raise InputError(
            f"--levels {text!r}: give integers like 50,80,95", column="levels"
        ) from exc


@app.command()
def train(
    panel: Annotated[Path, typer.Argument(help="Bottom-level panel (.parquet) from ingest/demo.")],
    config: Annotated[
        Path | None, typer.Option(help="Experiment TOML (experiments/*.toml).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="MLflow experiment (overrides TOML).")
    ] = None,
    horizon: Annotated[int | None, typer.Option(help="Months ahead.")] = None,
    levels: Annotated[
        str | None, typer.Option(help="Interval levels, e.g. 50,80,90,95,99.")
    ] = None,
    engine: Annotated[str, typer.Option(help="local or dask.")] = "local",
    dask_address: Annotated[str | None, typer.Option(help="tcp://scheduler:8786")] = None,
    register: Annotated[str | None, typer.Option(help="Register the model under NAME.")] = None,
    promote: Annotated[bool, typer.Option(help="Move the champion alias if it is better.")] = False,
) -> None:
    """Train, log an MLflow run, optionally register and promote the model."""
    from forecasting import tracking
    from forecasting.training.config import load_config

    try:
        if engine not in ("local", "dask"):
            from forecasting.errors import InputError

            raise InputError(f"--engine {engine!r}: use local or dask", column="engine")
        cfg = load_config(config, horizon=horizon, levels=_levels(levels))
        outcome = tracking.train(
            panel,
            cfg,
            config_path=config,
            experiment=experiment,
            engine=engine,
            dask_address=dask_address,
            register=register,
            promote=promote,
            progress=True,
        )
    except SpendcastError as exc:
        raise _fail(exc) from exc
    out.print(_train_table(outcome, "spendcast train"))


experiment_app = typer.Typer(
    help="Run and compare experiments (experiments/*.toml).", no_args_is_help=True
)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("run")
def experiment_run(
    toml: Annotated[Path, typer.Argument(help="Experiment file; its `data` is relative to it.")],
    register: Annotated[str | None, typer.Option(help="Register the model under NAME.")] = None,
    promote: Annotated[bool, typer.Option(help="Move the champion alias if it is better.")] = False,
    engine: Annotated[str, typer.Option(help="local or dask.")] = "local",
) -> None:
    """Train the experiment described by a TOML file (one MLflow run)."""
    from forecasting import tracking
    from forecasting.errors import InputError
    from forecasting.training.config import load_config

    try:
        cfg = load_config(toml)
        if not cfg.data:
            raise InputError("no `data` path", file=toml, column="data", hint="add data = '...'")
        outcome = tracking.train(
            (toml.parent / cfg.data),
            cfg,
            config_path=toml,
            engine=engine,
            register=register,
            promote=promote,
            progress=True,
        )
    except SpendcastError as exc:
        raise _fail(exc) from exc
    out.print(_train_table(outcome, f"experiment {toml.name}"))


@experiment_app.command("compare")
def experiment_compare(
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "spendcast",
    out_path: Annotated[Path, typer.Option("--out", help="PNG chart to write.")] = Path(
        "compare.png"
    ),
) -> None:
    """Runs side by side (metric per level, coverage, time), best primary metric first."""
    from rich.table import Table

    from forecasting import tracking

    try:
        table, chart_cols = tracking.compare_runs(experiment, out_path)
    except SpendcastError as exc:
        raise _fail(exc) from exc
    view = Table(title=f"experiment {experiment}: runs side by side (chart: {out_path})")
    view.add_column("metric")
    for row in table.iter_rows(named=True):
        view.add_column(str(row["label"]), justify="right")
    for col in chart_cols:
        view.add_row(
            col,
            *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in table[col].to_list()),
        )
    out.print(view)


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


# --------------------------------------------------------------------------- demo


@app.command()
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
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """The whole job on embedded defaults: synth -> ingest -> train (register, promote) -> serve.

    Writes generated Open DAMIR files to WORKDIR/raw, the panel to WORKDIR/panel.parquet, an
    MLflow run to MLFLOW_TRACKING_URI (default sqlite:///mlflow.db, artifacts in ./mlruns),
    registers model `spendcast` with alias `champion` when it beats the current one, then serves
    it and prints the URLs to try and a freshly generated API key for the write endpoints.
    """
    import secrets

    from forecasting import tracking
    from forecasting.data import ingest as ingest_mod
    from forecasting.data import synth as synth_mod
    from forecasting.training.config import load_config

    raw, panel = workdir / "raw", workdir / "panel.parquet"
    try:
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
        outcome = tracking.train(
            panel,
            cfg,
            config_path=config,
            register="spendcast",
            promote=True,
            progress=True,
        )
    except SpendcastError as exc:
        raise _fail(exc) from exc
    out.print(_train_table(outcome, "spendcast demo: model"))
    if not serve_after:
        return
    console.rule("4/4 serve")
    import os

    key = os.environ.get("SPENDCAST_API_KEYS") or secrets.token_urlsafe(24)
    os.environ["SPENDCAST_API_KEYS"] = key
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
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
    serve(host=host, port=port, model=None, log_level="warning")


def _last_month(panel: Path) -> str:
    """The panel's last month as ``YYYY-MM``."""
    from forecasting.data.panel import read_panel

    frame, _ = read_panel(panel)
    return str(frame["ds"].max())[:7]


# --------------------------------------------------------------------------- detect


def _post_detect(frame: pl.DataFrame, url: str, api_key: str | None, level: int) -> pl.DataFrame:
    """Judge through a running service, in batches of at most 10,000 observations."""
    import httpx
    import polars as pl

    from forecasting.monitoring.judge import DETECT_COLUMNS

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rows: list[dict[str, object]] = []
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120) as client:
        for batch in frame.iter_slices(10_000):
            obs = [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in batch.to_dicts()
            ]
            resp = client.post("/v1/anomalies/detect", json={"observations": obs, "level": level})
            if resp.status_code != 200:
                raise RuntimeError(f"{url} answered {resp.status_code}: {resp.text[:500]}")
            for r in resp.json()["results"]:
                eb = r.get("explained_by")
                r["explained_by"] = json.dumps(eb) if eb is not None else None
                rows.append({c: r.get(c) for c in DETECT_COLUMNS})
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.col("ds").str.to_date())


@app.command()
def detect(
    observed: Annotated[Path, typer.Argument(help="Observations: unique_id, ds, y [, as_of].")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model URI (default: SPENDCAST_MODEL_URI or models:/spendcast@champion)."
        ),
    ] = None,
    level: Annotated[int, typer.Option(min=1, max=99, help="Interval level in percent.")] = 99,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write every judgement here (CSV).")
    ] = None,
    fail_on_anomaly: Annotated[
        bool, typer.Option("--fail-on-anomaly", help="Exit 3 when anything is flagged.")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Judge through a running service at this base URL.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --url.")] = None,
) -> None:
    """Judge observed months against the model (or a running service) and list the flags.

    Same judging as POST /v1/anomalies/detect: earlier months of a series in the file
    condition later ones (one step ahead). Exit codes: 0 done, 1 model or service
    unavailable, 2 bad input, 3 flagged (with --fail-on-anomaly).
    """
    import polars as pl
    from rich.table import Table

    from forecasting.data.panel import atomic_path
    from forecasting.monitoring.judge import detect as detect_frame

    try:
        from forecasting.data.tidy import read_observations

        frame = read_observations(observed)
        if url:
            judged = _post_detect(frame, url, api_key, level)
        else:
            from forecasting.tracking import load_model
            from service.config import get_settings

            loaded = load_model(model or get_settings().model_uri)
            judged = detect_frame(frame, loaded.bundle, level=level)
    except (SpendcastError, OSError) as exc:
        raise _fail(exc) from exc
    except Exception as exc:  # network errors of --url, MLflow errors
        raise _fail(exc, 1) from exc
    if out_path is not None:
        with atomic_path(out_path) as tmp:
            judged.write_csv(tmp)
    flagged = judged.filter(pl.col("is_anomaly"))
    table = Table(title=f"{flagged.height} flagged of {judged.height} (level {level})")
    for col in ("series", "month", "observed", "expected", "bounds", "score", "explained by"):
        table.add_column(col, justify="left" if col in ("series", "explained by") else "right")
    for r in flagged.sort("score").head(50).iter_rows(named=True):
        kids = json.loads(r["explained_by"]) if r["explained_by"] else []
        table.add_row(
            r["unique_id"],
            str(r["ds"])[:7],
            f"{r['y']:,.0f}",
            f"{r['expected']:,.0f}",
            f"{r['lo']:,.0f} .. {r['hi']:,.0f}",
            f"{r['score']:.2g}",
            ", ".join(f"{k['unique_id']} ({k['deviation']:+,.0f})" for k in kids[:3]),
        )
    out.print(table)
    counts = judged.group_by("status").len().sort("status")
    out.print(", ".join(f"{s}: {n}" for s, n in counts.iter_rows()), highlight=False)
    if fail_on_anomaly and flagged.height:
        raise typer.Exit(3)


def main() -> None:  # pragma: no cover - console entry point helper
    app()
