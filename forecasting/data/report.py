"""What ``spendcast ingest`` read, rejected, excluded and wrote (saved as JSON beside the panel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = ["IngestReport"]


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
    layout: str | None = None
    flat: bool = False
    privacy: dict[str, Any] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        """``<stem>.report.json`` beside the panel."""
        return self.out.with_name(self.out.stem + ".report.json")

    def to_json(self) -> dict[str, Any]:
        """The report as written to :attr:`report_path`."""
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
            "layout": self.layout,
            "flat": self.flat,
            "privacy": self.privacy,
        }

    def privacy_summary(self) -> str:
        """One line: what the small-cell rule counted and pooled."""
        p = self.privacy
        if not p.get("counted"):
            return str(p.get("note", "no counts"))
        if not p.get("min_cell"):
            return f"counted {p['counted']}; --min-cell 0: no small-cell rule"
        left_out = self.flat
        n = len(p.get("pooled", []))
        what = "left out" if left_out else "pooled into their parent's autres"
        tail = f", {len(p['collapsed'])} level(s) collapsed" if p.get("collapsed") else ""
        return (
            f"counted {p['counted']}; {n} series with a month under {p['min_cell']} "
            f"act(s) {what}{tail}"
        )

    def summary_table(self) -> Table:
        """A short rich table for the end of the command."""
        t = Table(title=f"ingest -> {self.out}", show_header=False)
        t.add_row("format", f"{self.fmt} ({self.format_reason})")
        if self.layout:
            t.add_row("layout", self.layout)
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
        t.add_row("privacy", self.privacy_summary())
        for entry in self.privacy.get("pooled", [])[:20]:
            t.add_row(f"  {entry['series']}", f"-> {entry['into'] or 'left out'}: {entry['why']}")
        if self.triangle:
            t.add_row("care x processing triangle", self.triangle)
        return t
