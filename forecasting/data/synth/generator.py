"""``generate``: check the options, build the truth, write the monthly files and the truth."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from forecasting.calendar import month_of
from forecasting.data.synth.cells import Blocks, chunks, month_cells, split_cells
from forecasting.data.synth.layout import (
    LEGACY_COLUMNS,
    OPEN_DAMIR_COLUMNS,
    check_format,
    file_name,
)
from forecasting.data.synth.report import SynthReport
from forecasting.data.synth.rows import legacy_frame, open_damir_frame
from forecasting.data.synth.truth import Truth, build_truth
from forecasting.data.synth.writer import (
    CsvWriter,
    anomaly_frame,
    public_path,
    write_lags,
    write_truth,
)
from forecasting.errors import InputError

__all__ = ["generate"]


@dataclass(frozen=True)
class _Run:
    """The settings and the truth every month of a run is written from."""

    out: Path
    fmt: str
    seed: int
    rows_per_month: int
    truth: Truth


def generate(
    out_dir: str | Path,
    *,
    start: str = "2015-01",
    end: str = "2024-12",
    seed: int = 0,
    rows_per_month: int = 5_000,
    fmt: str = "open-damir",
    console: Console | None = None,
) -> SynthReport:
    """Write synthetic monthly files and their ground truth into ``out_dir``.

    Args:
        out_dir: folder to write into (created if needed).
        start: first processing month, ``YYYY-MM``.
        end: last processing month, ``YYYY-MM``.
        seed: random seed; the same seed gives the same bytes.
        rows_per_month: rows per monthly file (1,000 to 40,000,000); a file holds at least
            one row per non-empty (category, care month) cell.
        fmt: ``open-damir`` (``A{YYYYMM}.csv.gz``) or ``legacy`` (``N{YYYYMM}.CSV``).
        console: where to show progress bars (None: no display).

    Returns:
        A :class:`SynthReport`.

    Raises:
        InputError: bad month, range, row count or format.
    """
    t0 = time.perf_counter()
    first, last = _check_options(fmt, start, end, rows_per_month)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, fmt, seed, rows_per_month, build_truth(fmt, first, last, seed))
    report = SynthReport(out_dir=out, fmt=fmt)
    month_rows: list[dict[str, Any]] = []
    with _progress(console) as progress:
        for p in range(first, last + 1):
            row = _write_month(run, p, progress)
            report.files.append(out / row["file"])
            report.months.append(row["month"])
            report.rows += row["rows"]
            month_rows.append(row)
    report.totals = pl.DataFrame(month_rows)
    level = "executant" if fmt == "open-damir" else "serie"
    report.truth_path = write_truth(out / "truth.parquet", run.truth, level)
    report.lags_path = write_lags(out / "lags.csv")
    report.anomalies = anomaly_frame(run.truth)
    report.anomalies_path = out / "anomalies.csv"
    with public_path(report.anomalies_path) as tmp:
        report.anomalies.write_csv(tmp)
    report.seconds = time.perf_counter() - t0
    return report


def _month_index(text: str, what: str) -> int:
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError:
        year, month = 0, 0
    if not (1900 <= year <= 2200 and 1 <= month <= 12) or len(text) != 7:
        raise InputError(
            f"{what} {text!r} is not a month", column=what, hint="write it as YYYY-MM, e.g. 2015-01"
        )
    return year * 12 + month - 1


def _check_options(fmt: str, start: str, end: str, rows_per_month: int) -> tuple[int, int]:
    """The first and last processing month indexes, once every option is checked."""
    check_format(fmt)
    first = _month_index(start, "start")
    last = _month_index(end, "end")
    if last < first:
        raise InputError(
            f"end {end} is before start {start}", column="end", hint="give end >= start"
        )
    if not 1_000 <= rows_per_month <= 40_000_000:
        raise InputError(
            f"rows_per_month {rows_per_month:,} is out of range",
            column="rows_per_month",
            hint="use 1,000 to 40,000,000",
        )
    return first, last


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )


def _write_month(run: _Run, processing: int, progress: Progress) -> dict[str, Any]:
    """Write one processing month's file; its row of :attr:`SynthReport.totals`."""
    month = month_of(processing)
    name = file_name(run.fmt, month.year, month.month)
    cat_idx, care_idx, cells = month_cells(run.truth, processing, run.fmt)
    blocks = split_cells(cat_idx, care_idx, cells.rem, cells.pai, cells.acts, run.rows_per_month)
    task = progress.add_task(name, total=int(blocks.rows.sum()))
    _write_rows(run, run.out / name, blocks, processing, progress, task)
    return {
        "month": f"{month.year:04d}-{month.month:02d}",
        "file": name,
        "rows": int(blocks.rows.sum()),
        "negative_rows": int(blocks.rows[blocks.negative].sum()),
        "reimbursed": int(blocks.rem.sum()) / 100.0,
        "presented": int(blocks.pai.sum()) / 100.0,
        "acts": float(blocks.acts.sum()),
        "unknown_care": int(blocks.rem[blocks.care < 0].sum()) / 100.0,
    }


def _write_rows(
    run: _Run, path: Path, blocks: Blocks, processing: int, progress: Progress, task: TaskID
) -> None:
    """Generate the month's rows chunk by chunk into its file."""
    rng = np.random.default_rng([run.seed, 17, processing])
    open_damir = run.fmt == "open-damir"
    columns = OPEN_DAMIR_COLUMNS if open_damir else LEGACY_COLUMNS
    with public_path(path) as tmp, tmp.open("wb") as raw:
        writer = CsvWriter(raw, columns, gz=open_damir, trailing=open_damir)
        try:
            for idx in chunks(blocks):
                if open_damir:
                    frame = open_damir_frame(blocks, idx, rng, run.truth.cats, processing)
                else:
                    frame = legacy_frame(blocks, idx, rng, run.truth.cats)
                writer.write(frame)
                progress.advance(task, frame.height)
        finally:
            writer.close()
