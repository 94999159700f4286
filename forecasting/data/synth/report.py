"""What a synth run wrote, and its summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from rich.table import Table

__all__ = ["SynthReport"]


@dataclass
class SynthReport:
    """What :func:`~forecasting.data.synth.generate` wrote.

    Attributes:
        out_dir: the output folder.
        fmt: ``open-damir`` or ``legacy``.
        files: the monthly files, in month order.
        rows: rows written over all monthly files.
        months: processing months ``YYYY-MM``.
        totals: one row per processing month: ``month``, ``file``, ``rows``,
            ``negative_rows``, ``reimbursed``, ``presented``, ``acts``, ``unknown_care``
            (reimbursed amount with an unknown care month).
        truth_path, lags_path, anomalies_path: the ground-truth files.
        anomalies: the injected anomalies (``unique_id``, ``ds``, ``basis``, ``factor``).
        seconds: wall time.
    """

    out_dir: Path
    fmt: str
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    months: list[str] = field(default_factory=list)
    totals: pl.DataFrame = field(default_factory=pl.DataFrame)
    truth_path: Path | None = None
    lags_path: Path | None = None
    anomalies_path: Path | None = None
    anomalies: pl.DataFrame = field(default_factory=pl.DataFrame)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Generation speed over the whole run."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def summary_table(self) -> Table:
        """A short rich table: totals per year (per month for runs of 24 months or less)."""
        table = Table(title=f"spendcast synth ({self.fmt}) -> {self.out_dir}")
        for name in ("period", "files", "rows", "negative rows", "reimbursed (bn€)"):
            table.add_column(name, justify="right")
        table.add_column("presented (bn€)", justify="right")
        table.add_column("unknown care month", justify="right")
        for r in self._per_period().iter_rows(named=True):
            share = r["unknown_care"] / r["reimbursed"] if r["reimbursed"] else 0.0
            table.add_row(
                r["period"],
                str(r["files"]),
                f"{r['rows']:,}",
                f"{r['negative_rows']:,}",
                f"{r['reimbursed'] / 1e9:,.2f}",
                f"{r['presented'] / 1e9:,.2f}",
                f"{share:.1%}",
            )
        table.caption = (
            f"{len(self.files)} files, {self.rows:,} rows in {self.seconds:,.1f} s "
            f"({self.rows_per_second:,.0f} rows/s); {self.anomalies.height} anomalies injected"
        )
        return table

    def _per_period(self) -> pl.DataFrame:
        """The totals summed per year (per month for runs of 24 months or less)."""
        per_month = len(self.months) <= 24
        key = pl.col("month") if per_month else pl.col("month").str.slice(0, 4)
        return (
            self.totals.group_by(key.alias("period"), maintain_order=True)
            .agg(
                pl.len().alias("files"),
                pl.col("rows").sum(),
                pl.col("negative_rows").sum(),
                pl.col("reimbursed").sum(),
                pl.col("presented").sum(),
                pl.col("unknown_care").sum(),
            )
            .sort("period")
        )
