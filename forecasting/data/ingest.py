"""``spendcast ingest``: raw monthly files -> bottom-level panel (parquet) + JSON report.

Recognises the format (Open DAMIR, legacy tables, tidy), reads each file into a partial
aggregate (cached on the file's content hash and the options, :mod:`forecasting.data.cache`,
so a re-run reads only new files), combines them, and writes the panel, the report
(:mod:`forecasting.data.report`) and any quarantined rows atomically. Nothing is written
when an error is raised.

Open DAMIR (both bases): the per-file aggregates keep both months, and the processing x care
triangle of every bottom series is written beside the panel as ``PANEL.triangle.parquet``
(hierarchy columns, ``ds`` = care month, ``processing_ds``, ``y``; rows with an unknown care
month left out); its absolute path is recorded in the panel metadata ``spendcast.triangle``
(``forecasting.monitoring.completion.load_triangle`` also looks beside the panel by name).

Privacy (:mod:`forecasting.data.privacy`): the acts behind each amount are counted into the
panel's ``count`` column, series with a cell under ``min_cell`` acts are pooled into their
parent's ``autres`` (the triangle is pooled alike) and the report lists what was pooled and
why. A tidy file has counts only with ``count_col``; without, the rule cannot apply and the
report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from forecasting.data import codes, legacy_tables, open_damir, privacy, tidy
from forecasting.data.aggregate import N_COL, OTHER_COL, FileStats, combine
from forecasting.data.cache import CACHE_DIR, AggregateCache
from forecasting.data.checks import FILL_MISSING, ON_BAD_ROWS, check_choice, check_measure
from forecasting.data.inputs import FORMATS, detect_format, file_month, list_inputs
from forecasting.data.outputs import Rules, apply_rules, check_flat, panel_meta, write_outputs
from forecasting.data.panel import (
    COUNT_COL,
    PROCESSING_COL,
    TARGET_COL,
    TIME_COL,
    panel_gaps,
)
from forecasting.data.report import IngestReport
from forecasting.errors import InputError

__all__ = [
    "FORMATS",
    "IngestReport",
    "detect_format",
    "ingest",
    "list_inputs",
]


@dataclass(frozen=True)
class _Reader:
    """How to read one monthly file (Open DAMIR or legacy) into a partial aggregate."""

    fmt: str
    basis: str
    measure: str
    scope: str
    hierarchy: str | None
    levels: tuple[str, ...]
    on_bad_rows: str

    def cache(self, directory: Path) -> AggregateCache:
        """The aggregate cache of ``directory`` for these options."""
        return AggregateCache.for_options(
            directory,
            self.fmt,
            self.basis,
            self.measure,
            self.scope,
            self.levels,
            self.on_bad_rows,
        )


@dataclass(frozen=True)
class _Reading:
    """The monthly files read: partial aggregates, triangle parts and summed stats."""

    parts: list[pl.DataFrame]
    triangles: list[pl.DataFrame]
    totals: FileStats


def ingest(
    inputs: list[Path],
    out: Path,
    *,
    fmt: str = "auto",
    basis: str = "flux",
    measure: str | None = None,
    scope: str = "all",
    hierarchy: str | None = None,
    date_col: str | None = None,
    value_col: str | None = None,
    count_col: str | None = None,
    fill_missing: str | None = None,
    on_bad_rows: str = "error",
    flat: bool = False,
    min_cell: int = privacy.MIN_CELL,
    cache_dir: Path | None = None,
    console: Console | None = None,
) -> IngestReport:
    """Read raw files into a bottom-level panel at ``out`` and a report beside it.

    Args:
        inputs: files or folders.
        out: the panel (.parquet); the report goes to ``<stem>.report.json``.
        fmt: auto, open-damir, legacy or tidy.
        basis: flux or care.
        measure: reimbursed, presented or acts (Open DAMIR, legacy; default reimbursed); for a
            tidy file, a name for its values (default: the value column's name, ``value``
            for the long format's ``y``).
        scope: all, monthly-statistic or ondam (Open DAMIR).
        hierarchy: Open DAMIR executant|prescriber; tidy ``COL,COL`` (default: ``unique_id``
            when the file has it).
        date_col: tidy month column (default: ``ds`` when the file has it).
        value_col: tidy amount column (default: ``y`` when the file has it).
        count_col: tidy column of the acts (or persons) behind each amount.
        fill_missing: ``zero`` fills missing months inside tidy series with 0.
        on_bad_rows: error or skip (skipped rows go to ``<stem>.quarantine.csv``).
        flat: the series are unrelated (one level): no meaningful total; recorded in the
            metadata (``spendcast.flat``). A tidy file in the long format is flat unless
            ``hierarchy`` is given.
        min_cell: small-cell threshold (:mod:`forecasting.data.privacy`); 0 turns it off.
        cache_dir: per-file aggregate cache (default ``<out dir>/.spendcast-cache``).
        console: where progress bars go (None: none).

    Returns:
        The :class:`IngestReport` (also saved as JSON).

    Raises:
        InputError: bad options or input; nothing is written.
    """
    out = Path(out)
    _check_options(on_bad_rows, fill_missing, min_cell)
    files = list_inputs([Path(p) for p in inputs])
    chosen, why = detect_format(files, fmt)
    if console is not None:
        console.print(f"format: [bold]{chosen}[/] ({why})")
    report = IngestReport(
        out=out, fmt=chosen, format_reason=why, measure=measure or "", basis=basis, scope=scope
    )
    if chosen == "tidy":
        options = (date_col, value_col, hierarchy, count_col, fill_missing)
        return _ingest_tidy(files, report, options, Rules(flat, min_cell), console)
    if count_col:
        raise InputError(
            "--count-col is for tidy files",
            column="count-col",
            hint="Open DAMIR and legacy files count their acts themselves",
        )
    report.measure = measure or "reimbursed"
    check_measure(report.measure)
    _check_one_file_a_month(files)
    levels = (
        open_damir.hierarchy_levels(hierarchy) if chosen == "open-damir" else legacy_tables.LEVELS
    )
    report.hierarchy = levels
    check_flat(flat, levels)
    reader = _Reader(chosen, basis, report.measure, scope, hierarchy, levels, on_bad_rows)
    cache_folder = Path(cache_dir) if cache_dir else out.parent / CACHE_DIR
    rules = Rules(flat, min_cell)
    return _ingest_monthly(files, report, reader, reader.cache(cache_folder), rules, console)


MEASURE_COUNTS = {"open-damir": open_damir.COUNT_COLUMN, "legacy": legacy_tables.COUNT_COLUMN}
"""The column each format counts its acts from (the panel's ``count``)."""


def _ingest_monthly(
    files: list[Path],
    report: IngestReport,
    reader: _Reader,
    cache: AggregateCache,
    rules: Rules,
    console: Console | None,
) -> IngestReport:
    """Read the monthly files, combine them, write panel, quarantine, triangle and report."""
    reading = _read_files(files, reader, cache, report, console)
    panel = _combine(reading, reader.levels, report)
    totals = reading.totals
    quarantine = pl.concat(totals.quarantine, how="diagonal") if totals.quarantine else None
    names = ",".join(f.name for f in files[:3]) + ("..." if len(files) > 3 else "")
    triangle = _triangle(reading.triangles, reader.levels)
    count = f"acts ({MEASURE_COUNTS[reader.fmt]})"
    panel, pooling = apply_rules(panel, reader.levels, rules, report, count, console)
    if triangle is not None:
        triangle = privacy.relabel(triangle, pooling, reader.levels, [TIME_COL, PROCESSING_COL])
    meta = panel_meta(report, reader.levels, f"{reader.fmt}:{names}", rules, count, panel)
    write_outputs(report, panel, meta, quarantine, triangle)
    return report


def _check_options(on_bad_rows: str, fill_missing: str | None, min_cell: int) -> None:
    check_choice(on_bad_rows, ON_BAD_ROWS, what="--on-bad-rows", column="on-bad-rows")
    if fill_missing is not None:
        check_choice(fill_missing, FILL_MISSING, what="--fill-missing", column="fill-missing")
    if min_cell < 0:
        raise InputError(
            f"--min-cell {min_cell}: give 0 (no rule) or more", column="min-cell", hint="e.g. 10"
        )


def _check_one_file_a_month(files: list[Path]) -> None:
    """Every file's name tells its month, and no month has two files."""
    months: dict[str, Path] = {}
    for f in files:
        month = file_month(f)
        if month is None:
            raise InputError(
                "cannot tell the month from the file name",
                file=f,
                hint="name monthly files A{YYYYMM}.csv.gz or N{YYYYMM}.CSV",
            )
        if month in months:
            raise InputError(
                f"two files for month {month}: {months[month].name} and {f.name}",
                file=f,
                hint="keep one file per month",
            )
        months[month] = f


def _read_files(
    files: list[Path],
    reader: _Reader,
    cache: AggregateCache,
    report: IngestReport,
    console: Console | None,
) -> _Reading:
    """Read (or take from the cache) every file, with a progress bar; one report entry each."""
    parts: list[pl.DataFrame] = []
    triangles: list[pl.DataFrame] = []  # Open DAMIR: both months kept in each part
    totals = FileStats()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    )
    with progress:
        for f in files:
            part, stats, entry = _read_file(f, reader, cache, progress)
            report.files.append(entry)
            parts.append(part)
            if OTHER_COL in part.columns:
                triangles.append(_triangle_part(part, reader))
            totals.add(stats)
    return _Reading(parts, triangles, totals)


def _read_file(
    f: Path, reader: _Reader, cache: AggregateCache, progress: Progress
) -> tuple[pl.DataFrame, FileStats, dict[str, Any]]:
    """One file's partial aggregate, stats and report entry (from the cache when there)."""
    size = f.stat().st_size
    task = progress.add_task(f.name, total=size)
    digest = cache.key(f)
    entry: dict[str, Any] = {"file": str(f), "bytes": size, "sha256_key": digest}
    cached = cache.load(digest)
    if cached is not None:
        part, stats = cached
    else:

        def on_bytes(n: int) -> None:
            progress.update(task, completed=n)

        part, stats = _aggregate(f, reader, on_bytes)
        cache.save(digest, part, stats)
    entry["cached"] = cached is not None
    progress.update(task, completed=size)
    entry.update(stats.to_json())
    return part, stats, entry


def _aggregate(f: Path, reader: _Reader, on_bytes: Any) -> tuple[pl.DataFrame, FileStats]:
    if reader.fmt == "open-damir":
        return open_damir.aggregate_file(
            f,
            basis=reader.basis,
            measure=reader.measure,
            scope=reader.scope,
            hierarchy=reader.hierarchy,
            on_bad_rows=reader.on_bad_rows,
            on_bytes=on_bytes,
            other_month=True,
        )
    return legacy_tables.aggregate_file(
        f, basis=reader.basis, measure=reader.measure, on_bad_rows=reader.on_bad_rows
    )


def _triangle_part(part: pl.DataFrame, reader: _Reader) -> pl.DataFrame:
    """An Open DAMIR part as (levels, care month ``ds``, ``processing_ds``, y), both known."""
    care, proc = (TIME_COL, OTHER_COL) if reader.basis == "care" else (OTHER_COL, TIME_COL)
    return (
        part.select(
            *reader.levels,
            pl.col(care).alias("_care"),
            pl.col(proc).alias(PROCESSING_COL),
            TARGET_COL,
        )
        .rename({"_care": TIME_COL})
        .filter(pl.col(TIME_COL).is_not_null() & pl.col(PROCESSING_COL).is_not_null())
    )


def _triangle(triangles: list[pl.DataFrame], levels: tuple[str, ...]) -> pl.DataFrame | None:
    """The care x processing triangle summed over files (None without Open DAMIR parts)."""
    if not triangles:
        return None
    return (
        pl.concat(triangles)
        .group_by([*levels, TIME_COL, PROCESSING_COL])
        .agg(pl.col(TARGET_COL).sum())
        .sort([*levels, TIME_COL, PROCESSING_COL])
    )


def _combine(reading: _Reading, levels: tuple[str, ...], report: IngestReport) -> pl.DataFrame:
    """The panel of the summed parts, gaps inside a series filled with 0 (and reported)."""
    panel = combine(reading.parts, levels)
    report.rows_read = reading.totals.rows
    report.rows_rejected = reading.totals.rejected
    report.excluded = reading.totals.excluded
    report.unknown_codes = {
        lvl: int(panel.filter(pl.col(lvl) == codes.UNKNOWN)[N_COL].sum()) for lvl in levels
    }
    panel = panel.drop(N_COL)
    gaps = panel_gaps(panel, list(levels))
    if gaps.height:  # a series absent in a month of its span spent nothing that month
        report.filled_missing = gaps.height
        zero = [pl.lit(0.0).alias(TARGET_COL), pl.lit(0, dtype=pl.Int64).alias(COUNT_COL)]
        panel = pl.concat([panel, gaps.with_columns(zero)], how="diagonal")
    return panel


def _ingest_tidy(
    files: list[Path],
    report: IngestReport,
    options: tuple[str | None, ...],
    rules: Rules,
    console: Console | None,
) -> IngestReport:
    """One tidy table: its layout said, its series flat by default in the long format."""
    if len(files) != 1:
        raise InputError(
            f"give one tidy table, not {len(files)} files", hint="concatenate them first"
        )
    f = files[0]
    date_col, value_col, hierarchy, count_col, fill_missing = options
    panel, layout, filled = tidy.read_tidy(
        f,
        date_col=date_col,
        value_col=value_col,
        hierarchy=hierarchy,
        fill_missing=fill_missing,
        count_col=count_col,
    )
    rules = Rules(rules.flat or layout.long_format, rules.min_cell)
    check_flat(rules.flat, layout.levels)
    report.layout = layout.describe() + (" (flat: unrelated series)" if rules.flat else "")
    if console is not None:
        console.print(f"layout: [bold]{report.layout}[/]")
    report.measure = report.measure or layout.measure
    report.hierarchy = layout.levels
    report.filled_missing = filled
    report.rows_read = panel.height - filled
    report.files.append({"file": str(f), "bytes": f.stat().st_size, "cached": False})
    count = f"'{count_col}' column" if count_col else None
    panel, _ = apply_rules(panel, layout.levels, rules, report, count, console)
    meta = panel_meta(report, layout.levels, f"tidy:{f.name}", rules, count, panel)
    write_outputs(report, panel, meta, None)
    return report
