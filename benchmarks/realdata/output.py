"""Printing (rich), writing (parquet, JSON, PNG) and logging (MLflow) the suite's report."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from forecasting.data.panel import ID_COL, atomic_path
from forecasting.reliability import plot_reliability

from .goals import fmt, is_number
from .protocol import ANNUAL_LEVELS, POOLED, RAC_YEAR, ROOT
from .report import Report

__all__ = [
    "render",
    "print_accuracy",
    "print_calibration",
    "print_monitoring",
    "print_rest",
    "print_report",
    "write_outputs",
    "flat_metrics",
    "git_commit",
]


def _cell(value: Any, percent: bool, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"
    return str(value)


def render(
    console: Console,
    title: str,
    df: pl.DataFrame,
    *,
    percent: Iterable[str] = (),
    digits: int = 3,
    caption: str | None = None,
) -> None:
    """Print a frame as a rich table (``percent`` columns x 100, one decimal)."""
    if df.is_empty():
        console.print(f"[dim]{title}: nothing to show[/]")
        return
    pct = set(percent)
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for c in df.columns:
        table.add_column(c, justify="left" if df.schema[c] == pl.String else "right")
    for row in df.iter_rows():
        table.add_row(*(_cell(v, c in pct, digits) for c, v in zip(df.columns, row, strict=True)))
    console.print(table)


def _levels(df: pl.DataFrame) -> list[str]:
    return [c for c in df.columns if c.endswith("%")]


def print_accuracy(console: Console, t: dict[str, pl.DataFrame]) -> None:
    """Accuracy tables and the per-data-set verdict against SeasonalNaive."""
    note = "pooled: every scored series-origin except RAC; vs best / vs comb.: spendcast ratios"
    render(
        console,
        "MASE (seasonality 12, scaled by the training data)",
        t["accuracy_mase"],
        caption=note,
    )
    render(console, "sMAPE %", t["accuracy_smape"], digits=2)
    render(console, "PBS MASE by hierarchy level", t["accuracy_pbs_levels"])
    for r in t["accuracy_mase"].iter_rows(named=True):
        if r["dataset"] != POOLED:
            worse = r["worse than SNaive"]
            verdict = "WORSE than" if worse else "not worse than" if worse is not None else "? vs"
            console.print(f"  {r['dataset']}: spendcast is {verdict} SeasonalNaive (MASE)")


def print_calibration(console: Console, report: Report) -> None:
    """Coverage tables, annual-total coverage and budget reliability."""
    t, s = report.tables, report.summary
    for name, title in (
        ("coverage", "Coverage of spendcast's intervals on held-out months (%)"),
        ("coverage_by_step", "Coverage by horizon step, pooled (%)"),
        ("coverage_total", "Coverage at the total level (%)"),
    ):
        render(console, title, t[name], percent=_levels(t[name]))
    render(
        console,
        "Annual-total coverage by the sample paths (%) and budget Brier score",
        t["annual"],
        percent=_levels(t["annual"]),
    )
    rel = s["reliability"]
    if rel.get("brier") is not None:
        console.print(
            f"P(total > budget), {rel['n']} budgets: Brier {rel['brier']:.4f}, "
            f"climatological (no-skill) reference {rel['brier_climatology']:.4f}"
        )
    render(console, "Reliability of P(total > budget)", t["reliability"])


def print_monitoring(console: Console, t: dict[str, pl.DataFrame]) -> None:
    """False alarms and recall at level 99."""
    render(
        console,
        "False alarms on clean held-out months, level 99 (rate %)",
        t["false_alarms"],
        percent=["rate"],
    )
    render(
        console,
        "Recall of injected shifts (flagged: ANOMALY or LEVEL_SHIFT; caught: flagged or inside "
        "a reported, accepted level shift; rate: caught %; per shift, detected: flagged within "
        "its first 3 months)",
        t["recall"],
        percent=["rate", "detected_rate"],
    )


def print_rest(console: Console, report: Report) -> None:
    """Fallbacks, RAC, time and memory, and the goals."""
    t, s = report.tables, report.summary
    fb = t["fallbacks"]
    grouped = (
        fb.group_by("panel", "origin", "model", "reason")
        .agg(pl.len().alias("series"), pl.col(ID_COL).sort().head(3).str.join(", ").alias("e.g."))
        .sort("panel", "origin", "reason")
        if fb.height
        else fb
    )
    render(console, "Series spendcast did not model (fallbacks)", grouped)
    console.print(
        f"fallback series with >= 25 training months: {s['fallbacks']['long_count']} "
        f"of {s['fallbacks']['count']}"
    )
    rac = s.get("rac")
    if rac:
        render(console, f"RAC {RAC_YEAR} national total (FLT_PAI_MNT, bn EUR)", t["rac"], digits=2)
        ivs = ", ".join(
            f"{lv}%: [{rac[f'lo_{lv}'] / 1e9:.2f}, {rac[f'hi_{lv}'] / 1e9:.2f}] "
            f"inside={rac[f'inside_{lv}']}"
            for lv in ANNUAL_LEVELS
            if f"lo_{lv}" in rac
        )
        console.print(
            f"spendcast interval {ivs}; P(total > observed) = {fmt(rac['prob_over_observed'])}"
        )
    render(
        console,
        "Wall time (s): spendcast fit vs bare statsforecast (final: its candidates fitted once)",
        t["timings"],
        digits=1,
    )
    mem = s["memory"]
    console.print(
        f"peak memory: {mem['peak_rss_mb']:.0f} MB (VmHWM of this process, read at the end); "
        f"largest child process {mem['children_peak_rss_mb']:.0f} MB (statsforecast pools)"
    )
    g = pl.DataFrame(s["goals"]).with_columns(
        pl.col("met")
        .map_elements(lambda m: "met" if m else "NOT MET", return_dtype=pl.String)
        .fill_null("n/a")
    )
    render(console, "Goals", g)


def print_report(console: Console, report: Report) -> None:
    """Every table, ending with the goals."""
    print_accuracy(console, report.tables)
    print_calibration(console, report)
    print_monitoring(console, report.tables)
    print_rest(console, report)


def _jsonable(x: Any) -> Any:
    """JSON-safe copy: non-finite floats -> null, numpy scalars -> Python, dates -> ISO."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dt.date):
        return x.isoformat()
    return x


def write_outputs(report: Report, out: Path) -> Path:
    """Every table as parquet, ``summary.json`` and ``reliability.png``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in report.tables.items():
        if df.width:
            with atomic_path(out / f"{name}.parquet") as tmp:
                df.write_parquet(tmp)
                tmp.chmod(0o644)
    if report.reliability is not None:
        with atomic_path(out / "reliability.png") as tmp:
            plot_reliability(report.reliability, tmp)
            tmp.chmod(0o644)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(report.summary), indent=2), encoding="utf-8")
        tmp.chmod(0o644)
    return out


def flat_metrics(s: dict[str, Any]) -> dict[str, float]:
    """The summary's headline numbers as MLflow metrics (finite values only)."""
    m: dict[str, Any] = {}
    for method, v in s["accuracy"]["pooled"].items():
        if isinstance(v, dict):
            m[f"mase.{method}"], m[f"smape.{method}"] = v["mase"], v["smape"]
    m.update({f"coverage_{k}": v for k, v in s["coverage"]["pooled"].items()})
    m.update({f"annual_coverage_{k}": v for k, v in s["annual_coverage"]["pooled"].items()})
    m["brier"], m["brier_climatology"] = (
        s["reliability"].get("brier"),
        s["reliability"].get("brier_climatology"),
    )
    mon = s["monitoring"]
    m["false_alarm"], m["false_alarm_pbs"] = mon["false_alarm"]["pooled"], mon["false_alarm"]["pbs"]
    names = {"+4sigma": "plus4sigma", "-4sigma": "minus4sigma"}
    m.update({f"recall.{names.get(k, k)}": v for k, v in mon["recall"].items()})
    m.update(
        {
            f"shift_detection.{names.get(k, k)}": v
            for k, v in mon.get("shift_detection", {}).items()
            if v is not None
        }
    )
    m["rac_error_pct"] = s["rac"]["error_pct"] if s.get("rac") else None
    m["time_ratio"] = s["time"]["ratio"]
    m["peak_rss_mb"] = s["memory"]["peak_rss_mb"]
    m["wall_seconds"] = s["suite"].get("wall_seconds")
    return {k: float(v) for k, v in m.items() if is_number(v)}


def git_commit() -> str | None:
    """The checkout's commit (``+dirty`` when files changed), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")
