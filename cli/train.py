"""``spendcast train`` and ``spendcast experiment run|compare``: MLflow runs and their table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import EngineOption, PromoteOption, RegisterOption, exit_on_error, out
from forecasting.errors import InputError

if TYPE_CHECKING:
    from rich.table import Table

    from forecasting.tracking import TrainOutcome

__all__ = ["train", "experiment_app", "train_table"]


def train_table(outcome: TrainOutcome, title: str) -> Table:
    """Run id, primary metric, coverages, registration and promotion of a training run."""
    from rich.table import Table

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
        raise InputError(
            f"--levels {text!r}: give integers like 50,80,95", column="levels"
        ) from exc


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
    engine: EngineOption = "local",
    dask_address: Annotated[str | None, typer.Option(help="tcp://scheduler:8786")] = None,
    register: RegisterOption = None,
    promote: PromoteOption = False,
) -> None:
    """Train, log an MLflow run, optionally register and promote the model."""
    from forecasting import tracking
    from forecasting.data.checks import one_of
    from forecasting.training.config import load_config
    from forecasting.training.engines import ENGINES

    with exit_on_error():
        if engine not in ENGINES:
            raise InputError(f"--engine {engine!r}: use {one_of(ENGINES)}", column="engine")
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
    out.print(train_table(outcome, "spendcast train"))


experiment_app = typer.Typer(
    help="Run and compare experiments (experiments/*.toml).", no_args_is_help=True
)


@experiment_app.command("run")
def experiment_run(
    toml: Annotated[Path, typer.Argument(help="Experiment file; its `data` is relative to it.")],
    register: RegisterOption = None,
    promote: PromoteOption = False,
    engine: EngineOption = "local",
) -> None:
    """Train the experiment described by a TOML file (one MLflow run)."""
    from forecasting import tracking
    from forecasting.training.config import load_config

    with exit_on_error():
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
    out.print(train_table(outcome, f"experiment {toml.name}"))


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

    with exit_on_error():
        table, chart_cols = tracking.compare_runs(experiment, out_path)
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
