"""What ``spendcast ingest`` writes: the series rules applied, the metadata, then the files.

:func:`apply_rules` applies the small-cell rule (:mod:`forecasting.data.privacy`) and notes it
in the report; :func:`panel_meta` gathers the panel's metadata (hierarchy, measure, basis,
source, flat, what was counted and the smallest count of each series); :func:`write_outputs`
writes the panel (validated first: nothing is written on error), the quarantine, the
triangle and the report, each atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
from rich.console import Console

from forecasting.data import privacy
from forecasting.data.labels import labels_kv
from forecasting.data.panel import (
    COUNT_COL,
    META_TRIANGLE,
    TARGET_COL,
    TIME_COL,
    PanelMeta,
    atomic_path,
    triangle_path,
    write_panel,
)
from forecasting.data.report import IngestReport
from forecasting.errors import InputError

__all__ = ["Rules", "check_flat", "apply_rules", "panel_meta", "write_outputs"]


@dataclass(frozen=True)
class Rules:
    """What becomes of the series: flat or not, and the small-cell threshold."""

    flat: bool
    min_cell: int


def check_flat(flat: bool, levels: tuple[str, ...]) -> None:
    if flat and len(levels) != 1:
        raise InputError(
            f"--flat needs one hierarchy level (have {', '.join(levels)})",
            column="flat",
            hint="flat series are unrelated, side by side under no meaningful parent",
        )


def apply_rules(
    panel: pl.DataFrame,
    levels: tuple[str, ...],
    rules: Rules,
    report: IngestReport,
    count: str | None,
    console: Console | None,
) -> tuple[pl.DataFrame, privacy.Pooling]:
    """The small-cell rule applied (or, without counts, said to be impossible), in the report."""
    if count is None:
        pooling = privacy.Pooling(0)
        report.privacy = {
            "min_cell": None,
            "counted": None,
            "note": "no counts (a tidy file without --count-col): the small-cell rule "
            "was not applied",
        }
    else:
        panel, pooling = privacy.pool_small_cells(panel, levels, rules.min_cell, flat=rules.flat)
        report.privacy = {**pooling.to_json(), "counted": count}
    if console is not None:
        console.print(f"privacy: {report.privacy_summary()}")
    return panel, pooling


def panel_meta(
    report: IngestReport,
    levels: tuple[str, ...],
    source: str,
    rules: Rules,
    count: str | None,
    panel: pl.DataFrame,
) -> PanelMeta:
    """The panel's metadata: hierarchy, measure, basis, source, flat and privacy facts, and
    the members' labels (Assurance Maladie files, :func:`~forecasting.data.labels.labels_kv`)."""
    counted = count is not None and COUNT_COL in panel.columns
    meta = PanelMeta(
        hierarchy=levels,
        measure=report.measure,
        basis=report.basis,
        source=source,
        flat=rules.flat,
        count=count if counted else None,
        min_cell=rules.min_cell if counted else 0,
        min_counts=privacy.series_minimums(panel, levels) if counted else {},
    )
    meta.extra.update(labels_kv(panel, levels, source))
    return meta


def write_outputs(
    report: IngestReport,
    panel: pl.DataFrame,
    meta: PanelMeta,
    quarantine: pl.DataFrame | None,
    triangle: pl.DataFrame | None = None,
) -> None:
    """Write the panel (validated first: nothing written on error), quarantine, triangle, report."""
    panel = panel.with_columns(pl.col(TARGET_COL).cast(pl.Float64))
    levels = list(meta.hierarchy)
    report.series = panel.select(levels).n_unique() if panel.height else 0
    report.flat = meta.flat
    monthly = panel.group_by(TIME_COL).agg(pl.col(TARGET_COL).sum()).sort(TIME_COL)
    report.totals = {d.strftime("%Y-%m"): round(float(v), 2) for d, v in monthly.iter_rows()}
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
