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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from forecasting.data import codes, legacy_tables, open_damir, tidy
from forecasting.data.aggregate import N_COL, OTHER_COL, FileStats, combine
from forecasting.data.cache import CACHE_DIR, AggregateCache
from forecasting.data.checks import FILL_MISSING, ON_BAD_ROWS, check_choice
from forecasting.data.inputs import FORMATS, detect_format, file_month, list_inputs
from forecasting.data.labels import labels_kv
from forecasting.data.panel import (
    META_TRIANGLE,
    PROCESSING_COL,
    TARGET_COL,
    TIME_COL,
    PanelMeta,
    atomic_path,
    panel_gaps,
    triangle_path,
    write_panel,
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
    measure: str = "reimbursed",
    scope: str = "all",
    hierarchy: str | None = None,
    date_col: str | None = None,
    value_col: str | None = None,
    fill_missing: str | None = None,
    on_bad_rows: str = "error",
    cache_dir: Path | None = None,
    console: Console | None = None,
) -> IngestReport:
    """Read raw files into a bottom-level panel at ``out`` and a report beside it.

    Args:
        inputs: files or folders.
        out: the panel (.parquet); the report goes to ``<stem>.report.json``.
        fmt: auto, open-damir, legacy or tidy.
        basis: flux or care.
        measure: reimbursed, presented or acts.
        scope: all, monthly-statistic or ondam (Open DAMIR).
        hierarchy: Open DAMIR executant|prescriber; tidy ``COL,COL``.
        date_col: tidy month column.
        value_col: tidy amount column.
        fill_missing: ``zero`` fills missing months inside tidy series with 0.
        on_bad_rows: error or skip (skipped rows go to ``<stem>.quarantine.csv``).
        cache_dir: per-file aggregate cache (default ``<out dir>/.spendcast-cache``).
        console: where progress bars go (None: none).

    Returns:
        The :class:`IngestReport` (also saved as JSON).

    Raises:
        InputError: bad options or input; nothing is written.
    """
    out = Path(out)
    _check_options(on_bad_rows, fill_missing)
    files = list_inputs([Path(p) for p in inputs])
    chosen, why = detect_format(files, fmt)
    if console is not None:
        console.print(f"format: [bold]{chosen}[/] ({why})")
    report = IngestReport(
        out=out, fmt=chosen, format_reason=why, measure=measure, basis=basis, scope=scope
    )
    if chosen == "tidy":
        return _ingest_tidy(files, report, date_col, value_col, hierarchy, fill_missing)
    _check_one_file_a_month(files)
    levels = (
        open_damir.hierarchy_levels(hierarchy) if chosen == "open-damir" else legacy_tables.LEVELS
    )
    report.hierarchy = levels
    reader = _Reader(chosen, basis, measure, scope, hierarchy, levels, on_bad_rows)
    cache_folder = Path(cache_dir) if cache_dir else out.parent / CACHE_DIR
    return _ingest_monthly(files, report, reader, reader.cache(cache_folder), console)


def _ingest_monthly(
    files: list[Path],
    report: IngestReport,
    reader: _Reader,
    cache: AggregateCache,
    console: Console | None,
) -> IngestReport:
    """Read the monthly files, combine them, write panel, quarantine, triangle and report."""
    reading = _read_files(files, reader, cache, report, console)
    panel = _combine(reading, reader.levels, report)
    totals = reading.totals
    quarantine = pl.concat(totals.quarantine, how="diagonal") if totals.quarantine else None
    names = ",".join(f.name for f in files[:3]) + ("..." if len(files) > 3 else "")
    triangle = _triangle(reading.triangles, reader.levels)
    _write(report, panel, reader.levels, f"{reader.fmt}:{names}", quarantine, triangle)
    return report


def _check_options(on_bad_rows: str, fill_missing: str | None) -> None:
    check_choice(on_bad_rows, ON_BAD_ROWS, what="--on-bad-rows", column="on-bad-rows")
    if fill_missing is not None:
        check_choice(fill_missing, FILL_MISSING, what="--fill-missing", column="fill-missing")


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
        panel = pl.concat([panel, gaps.with_columns(pl.lit(0.0).alias(TARGET_COL))], how="diagonal")
    return panel


def _ingest_tidy(
    files: list[Path],
    report: IngestReport,
    date_col: str | None,
    value_col: str | None,
    hierarchy: str | None,
    fill_missing: str | None,
) -> IngestReport:
    if len(files) != 1:
        raise InputError(
            f"give one tidy table, not {len(files)} files", hint="concatenate them first"
        )
    f = files[0]
    panel, levels, filled = tidy.read_tidy(
        f, date_col=date_col, value_col=value_col, hierarchy=hierarchy, fill_missing=fill_missing
    )
    report.hierarchy = levels
    report.filled_missing = filled
    report.rows_read = panel.height - filled
    report.files.append({"file": str(f), "bytes": f.stat().st_size, "cached": False})
    _write(report, panel, levels, f"tidy:{f.name}", None)
    return report


def _write(
    report: IngestReport,
    panel: pl.DataFrame,
    levels: tuple[str, ...],
    source: str,
    quarantine: pl.DataFrame | None,
    triangle: pl.DataFrame | None = None,
) -> None:
    """Write the panel (validated first: nothing written on error), quarantine, triangle, report."""
    panel = panel.with_columns(pl.col(TARGET_COL).cast(pl.Float64))
    report.series = panel.select(levels).n_unique() if panel.height else 0
    monthly = panel.group_by(TIME_COL).agg(pl.col(TARGET_COL).sum()).sort(TIME_COL)
    report.totals = {d.strftime("%Y-%m"): round(float(v), 2) for d, v in monthly.iter_rows()}
    meta = PanelMeta(hierarchy=levels, measure=report.measure, basis=report.basis, source=source)
    meta.extra.update(labels_kv(panel, levels, source))
    tpath = triangle_path(report.out)
    if triangle is not None:
        report.triangle = str(tpath)
        meta.extra[META_TRIANGLE] = str(tpath.resolve())
    qpath = report.out.with_name(report.out.stem + ".quarantine.csv")
    if quarantine is not None:
        report.quarantine = str(qpath)
    write_panel(panel, report.out, meta)
    if quarantine is not None:
        with atomic_path(qpath) as tmp:
            quarantine.write_csv(tmp)
    if triangle is not None:
        with atomic_path(tpath) as tmp:
            triangle.write_parquet(tmp)
    with atomic_path(report.report_path) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2, default=str))
