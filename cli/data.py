"""``spendcast synth`` and ``spendcast ingest``: generated files, raw files -> panel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, exit_on_error, out

__all__ = ["synth", "ingest"]


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

    with exit_on_error():
        report = synth_mod.generate(
            out_dir,
            start=start,
            end=end,
            seed=seed,
            rows_per_month=rows_per_month,
            fmt=format,
            console=console,
        )
    out.print(report.summary_table())


def ingest(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders to read.")],
    out_path: Annotated[Path, typer.Option("--out", help="The panel to write (.parquet).")],
    format: Annotated[
        str, typer.Option("--format", help="auto, open-damir, legacy or tidy.")
    ] = "auto",
    basis: Annotated[
        str, typer.Option(help="flux: processing month (FLX_ANN_MOI); care: care month.")
    ] = "flux",
    measure: Annotated[
        str | None,
        typer.Option(
            help="reimbursed (default), presented or acts; tidy: a name for the values "
            "(default: the value column's name, 'value' for y)."
        ),
    ] = None,
    scope: Annotated[
        str, typer.Option(help="all, monthly-statistic (TOP_PS5_TRG=1) or ondam (CPT_ENV_TYP 1,2).")
    ] = "all",
    hierarchy: Annotated[
        str | None,
        typer.Option(
            help="Open DAMIR: 'executant' (default) or 'prescriber'; tidy: COL,COL top to bottom "
            "(any column, unique_id included; default: unique_id when the file has it)."
        ),
    ] = None,
    date_col: Annotated[
        str | None, typer.Option(help="Tidy: the month column (default: ds when there).")
    ] = None,
    value_col: Annotated[
        str | None, typer.Option(help="Tidy: the amount column (default: y when there).")
    ] = None,
    count_col: Annotated[
        str | None,
        typer.Option(help="Tidy: the acts (or persons) behind each amount, for --min-cell."),
    ] = None,
    flat: Annotated[
        bool,
        typer.Option(
            "--flat",
            help="Unrelated series (one level, different units): no meaningful total, trained "
            "without reconciliation. Default for a unique_id,ds,y file without --hierarchy.",
        ),
    ] = False,
    min_cell: Annotated[
        int,
        typer.Option(
            min=0,
            help="Privacy: series with a month under this many acts are pooled into their "
            "parent's 'autres' (flat: left out); 0 turns the rule off.",
        ),
    ] = 10,
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
    """Read raw monthly files into a bottom-level panel (parquet) and a JSON report.

    Says which format and layout it recognised; a unique_id,ds,y file needs no option.
    """
    from forecasting.data import ingest as ingest_mod

    with exit_on_error():
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
            count_col=count_col,
            fill_missing=fill_missing,
            on_bad_rows=on_bad_rows,
            flat=flat,
            min_cell=min_cell,
            cache_dir=cache_dir,
            console=console,
        )
    out.print(report.summary_table())
