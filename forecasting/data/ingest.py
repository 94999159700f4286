"""``spendcast ingest``: raw monthly files -> bottom-level panel (parquet) + JSON report.

Recognises the format (Open DAMIR, legacy tables, tidy), reads each file into a partial
aggregate (cached on the file's content hash and the options, so a re-run reads only new
files), combines them, and writes the panel, the report and any quarantined rows
atomically. Nothing is written when an error is raised.

Open DAMIR (both bases): the per-file aggregates keep both months, and the processing x care
triangle of every bottom series is written beside the panel as ``PANEL.triangle.parquet``
(hierarchy columns, ``ds`` = care month, ``processing_ds``, ``y``; rows with an unknown care
month left out); its absolute path is recorded in the panel metadata ``spendcast.triangle``
(``forecasting.monitoring.completion.load_triangle`` also looks beside the panel by name).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from forecasting.data import codes, legacy_tables, open_damir, tidy
from forecasting.data.open_damir import N_COL, FileStats
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
from forecasting.errors import InputError

__all__ = [
    "FORMATS",
    "IngestReport",
    "detect_format",
    "ingest",
    "list_inputs",
]

FORMATS = ("open-damir", "legacy", "tidy")
CACHE_VERSION = "2"  # 2: Open DAMIR parts keep the other month (triangle)


_OD_RE = re.compile(r"^A(\d{4})(\d{2})\.csv(\.gz)?$", re.IGNORECASE)


@dataclass
class IngestReport:
    """What ingest read, rejected, excluded and wrote."""

    out: Path
    fmt: str = ""
    format_reason: str = ""
    hierarchy: tuple[str, ...] = ()
    measure: str = "reimbursed"
    basis: str = "flux"
    scope: str = "all"
    files: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, float] = field(default_factory=dict)
    unknown_codes: dict[str, int] = field(default_factory=dict)
    filled_missing: int = 0
    series: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    quarantine: str | None = None
    triangle: str | None = None

    @property
    def report_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".report.json")

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "format": self.fmt,
            "format_reason": self.format_reason,
            "hierarchy": list(self.hierarchy),
            "measure": self.measure,
            "basis": self.basis,
            "scope": self.scope,
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "excluded": self.excluded,
            "unknown_codes": self.unknown_codes,
            "filled_missing": self.filled_missing,
            "series": self.series,
            "totals": self.totals,
            "quarantine": self.quarantine,
            "triangle": self.triangle,
        }

    def summary_table(self) -> Table:
        """A short rich table for the end of the command."""
        t = Table(title=f"ingest -> {self.out}", show_header=False)
        t.add_row("format", f"{self.fmt} ({self.format_reason})")
        cached = sum(1 for f in self.files if f.get("cached"))
        t.add_row("files", f"{len(self.files)} ({cached} from cache)")
        t.add_row("rows read", f"{self.rows_read:,}")
        t.add_row(
            "rows rejected", f"{sum(self.rows_rejected.values()):,} {self.rows_rejected or ''}"
        )
        for why, amount in self.excluded.items():
            t.add_row(f"excluded: {why}", f"{amount:,.2f}")
        for lvl, n in self.unknown_codes.items():
            t.add_row(f"unknown {lvl}", f"{n:,} rows")
        if self.filled_missing:
            t.add_row("months filled with 0", f"{self.filled_missing:,}")
        t.add_row("series x months", f"{self.series:,} series, {len(self.totals)} months")
        t.add_row("total", f"{sum(self.totals.values()):,.2f} ({self.measure}, {self.basis})")
        if self.triangle:
            t.add_row("care x processing triangle", self.triangle)
        return t


def list_inputs(inputs: list[Path]) -> list[Path]:
    """Files named, plus the recognised monthly files inside folders (sorted)."""
    files: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and (_OD_RE.match(f.name) or legacy_tables.NAME_RE.match(f.name))
            )
            if not found:
                raise InputError(
                    "no A{YYYYMM}.csv(.gz) or N/R{YYYYMM}.CSV file in this folder",
                    file=p,
                    hint="name the files, or point at the folder that holds them",
                )
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or folder", file=p, hint="check the path")
    return files


def _sniff(path: Path) -> str:
    """The ';'-separated header of a file, or "" if it has none."""
    try:
        return ";".join(open_damir.read_header(path))
    except InputError:
        return ""


def detect_format(files: list[Path], fmt: str = "auto") -> tuple[str, str]:
    """The format of the files and why: from names, else headers.

    Raises:
        InputError: unknown or mixed formats.
    """
    if fmt != "auto":
        if fmt not in FORMATS:
            raise InputError(
                f"unknown format {fmt!r}",
                column="format",
                hint="use auto, open-damir, legacy, tidy",
            )
        return fmt, "--format"
    kinds: dict[str, str] = {}
    for f in files:
        if _OD_RE.match(f.name):
            kinds[str(f)] = "open-damir"
        elif legacy_tables.NAME_RE.match(f.name):
            kinds[str(f)] = "legacy"
        elif f.suffix.lower() == ".parquet":
            kinds[str(f)] = "tidy"
        else:
            head = _sniff(f)
            if "FLX_ANN_MOI" in head:
                kinds[str(f)] = "open-damir"
            elif "rem_mon" in head.lower() and "serie" in head.lower():
                kinds[str(f)] = "legacy"
            else:
                kinds[str(f)] = "tidy"
    found = sorted(set(kinds.values()))
    if len(found) != 1:
        raise InputError(
            f"the inputs mix formats ({', '.join(found)})",
            hint="ingest one format at a time, or pass --format",
        )
    how = "file names A{YYYYMM}" if found[0] == "open-damir" else "file names and headers"
    return found[0], how


def _file_month(path: Path) -> str | None:
    m = _OD_RE.match(path.name) or legacy_tables.NAME_RE.match(path.name)
    return f"{m.group(1)}-{m.group(2)}" if m else None


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


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
    if on_bad_rows not in ("error", "skip"):
        raise InputError(
            f"unknown --on-bad-rows {on_bad_rows!r}", column="on-bad-rows", hint="use error or skip"
        )
    if fill_missing not in (None, "zero"):
        raise InputError(
            f"unknown --fill-missing {fill_missing!r}", column="fill-missing", hint="use zero"
        )
    files = list_inputs([Path(p) for p in inputs])
    chosen, why = detect_format(files, fmt)
    if console is not None:
        console.print(f"format: [bold]{chosen}[/] ({why})")
    report = IngestReport(out=out, fmt=chosen, format_reason=why, measure=measure, basis=basis)
    report.scope = scope
    if chosen == "tidy":
        return _ingest_tidy(files, report, date_col, value_col, hierarchy, fill_missing)

    months: dict[str, Path] = {}
    for f in files:
        month = _file_month(f)
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
    levels = (
        open_damir.hierarchy_levels(hierarchy) if chosen == "open-damir" else legacy_tables.LEVELS
    )
    report.hierarchy = levels
    cache = Path(cache_dir) if cache_dir else out.parent / ".spendcast-cache"
    options = json.dumps(
        [CACHE_VERSION, chosen, basis, measure, scope, levels, on_bad_rows], sort_keys=True
    )
    parts: list[pl.DataFrame] = []
    tri_parts: list[pl.DataFrame] = []  # care basis: one processing month per Open DAMIR file
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
            size = f.stat().st_size
            task = progress.add_task(f.name, total=size)
            digest = hashlib.sha256((_hash(f) + options).encode()).hexdigest()[:32]
            part_path = cache / f"{digest}.parquet"
            stats_path = cache / f"{digest}.json"
            entry: dict[str, Any] = {"file": str(f), "bytes": size, "sha256_key": digest}
            if part_path.exists() and stats_path.exists():
                part = pl.read_parquet(part_path)
                saved = json.loads(stats_path.read_text())
                stats = FileStats(
                    rows=saved["rows"], rejected=saved["rejected"], excluded=saved["excluded"]
                )
                qpath = cache / f"{digest}.quarantine.parquet"
                if qpath.exists():
                    stats.quarantine.append(pl.read_parquet(qpath))
                entry["cached"] = True
            else:

                def on_bytes(n: int, task: Any = task) -> None:
                    progress.update(task, completed=n)

                if chosen == "open-damir":
                    part, stats = open_damir.aggregate_file(
                        f,
                        basis=basis,
                        measure=measure,
                        scope=scope,
                        hierarchy=hierarchy,
                        on_bad_rows=on_bad_rows,
                        on_bytes=on_bytes,
                        other_month=True,
                    )
                else:
                    part, stats = legacy_tables.aggregate_file(
                        f, basis=basis, measure=measure, on_bad_rows=on_bad_rows
                    )
                cache.mkdir(parents=True, exist_ok=True)
                with atomic_path(part_path) as tmp:
                    part.write_parquet(tmp)
                if stats.quarantine:
                    with atomic_path(cache / f"{digest}.quarantine.parquet") as tmp:
                        pl.concat(stats.quarantine, how="diagonal").write_parquet(tmp)
                with atomic_path(stats_path) as tmp:
                    tmp.write_text(json.dumps(stats.to_json()))
                entry["cached"] = False
            progress.update(task, completed=size)
            entry.update(stats.to_json())
            report.files.append(entry)
            parts.append(part)
            if open_damir.OTHER_COL in part.columns:  # Open DAMIR: both months kept
                care, proc = (
                    (TIME_COL, open_damir.OTHER_COL)
                    if basis == "care"
                    else (open_damir.OTHER_COL, TIME_COL)
                )
                tri_parts.append(
                    part.select(
                        *levels,
                        pl.col(care).alias("_care"),
                        pl.col(proc).alias(PROCESSING_COL),
                        TARGET_COL,
                    )
                    .rename({"_care": TIME_COL})
                    .filter(pl.col(TIME_COL).is_not_null() & pl.col(PROCESSING_COL).is_not_null())
                )
            totals.add(stats)

    panel = open_damir.combine(parts, levels)
    report.rows_read = totals.rows
    report.rows_rejected = totals.rejected
    report.excluded = totals.excluded
    report.unknown_codes = {
        lvl: int(panel.filter(pl.col(lvl) == codes.UNKNOWN)[N_COL].sum()) for lvl in levels
    }
    panel = panel.drop(N_COL)
    gaps = panel_gaps(panel, list(levels))
    if gaps.height:  # a series absent in a month of its span spent nothing that month
        report.filled_missing = gaps.height
        panel = pl.concat([panel, gaps.with_columns(pl.lit(0.0).alias(TARGET_COL))], how="diagonal")
    quarantine = pl.concat(totals.quarantine, how="diagonal") if totals.quarantine else None
    source = chosen + ":" + ",".join(f.name for f in files[:3]) + ("..." if len(files) > 3 else "")
    triangle = None
    if tri_parts:
        triangle = (
            pl.concat(tri_parts)
            .group_by([*levels, TIME_COL, PROCESSING_COL])
            .agg(pl.col(TARGET_COL).sum())
            .sort([*levels, TIME_COL, PROCESSING_COL])
        )
    _write(report, panel, levels, source, quarantine, triangle)
    return report


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
    panel = panel.with_columns(pl.col(TARGET_COL).cast(pl.Float64))
    report.series = panel.select(levels).n_unique() if panel.height else 0
    monthly = panel.group_by(TIME_COL).agg(pl.col(TARGET_COL).sum()).sort(TIME_COL)
    report.totals = {d.strftime("%Y-%m"): round(float(v), 2) for d, v in monthly.iter_rows()}
    meta = PanelMeta(hierarchy=levels, measure=report.measure, basis=report.basis, source=source)
    tpath = triangle_path(report.out)
    if triangle is not None:
        report.triangle = str(tpath)
        meta.extra[META_TRIANGLE] = str(tpath.resolve())
    qpath = report.out.with_name(report.out.stem + ".quarantine.csv")
    if quarantine is not None:
        report.quarantine = str(qpath)
    write_panel(panel, report.out, meta)  # validates first: nothing written on error
    if quarantine is not None:
        with atomic_path(qpath) as tmp:
            quarantine.write_csv(tmp)
    if triangle is not None:
        with atomic_path(tpath) as tmp:
            triangle.write_parquet(tmp)
    with atomic_path(report.report_path) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2, default=str))
