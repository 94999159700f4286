"""Seeded hierarchical monthly panels for tests (bottom level, per forecasting.data.panel)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from forecasting.data.panel import PanelMeta, validate_panel

__all__ = ["make_panel"]


def shared_file(relative: str) -> Path:
    """A file of the shared data sets (``../shared`` beside the checkout, else /work/shared);
    the returned path may not exist: tests that need it skip with its name."""
    here = Path(__file__).resolve().parents[2] / "shared" / relative
    return here if here.exists() else Path("/work/shared") / relative


def make_panel(
    n_fam: int = 3,
    n_exe: int = 2,
    start: str = "2016-01",
    months: int = 72,
    seed: int = 0,
) -> tuple[pl.DataFrame, PanelMeta]:
    """A bottom-level panel ``famille, executant, ds, y`` with trend, seasonality and noise.

    Args:
        n_fam: number of families (first level).
        n_exe: executants per family (second level).
        start: first month, ``YYYY-MM``.
        months: series length.
        seed: random seed.

    Returns:
        The panel (validated) and its :class:`PanelMeta` (hierarchy ``famille, executant``).
    """
    rng = np.random.default_rng(seed)
    year, month = (int(x) for x in start.split("-"))
    first = dt.date(year, month, 1)
    ds = pl.date_range(first, first.replace(year=first.year + 20), "1mo", eager=True)[:months]
    t = np.arange(months)
    frames = []
    for f in range(n_fam):
        for e in range(n_exe):
            level = rng.uniform(50, 500)
            trend = rng.uniform(-0.002, 0.01) * level
            amp = rng.uniform(0.05, 0.3) * level
            phase = rng.uniform(0, 2 * np.pi)
            noise = rng.normal(0, rng.uniform(0.02, 0.08) * level, months)
            y = np.maximum(level + trend * t + amp * np.sin(2 * np.pi * t / 12 + phase) + noise, 0)
            frames.append(
                pl.DataFrame(
                    {
                        "famille": f"F{f}",
                        "executant": f"E{e}",
                        "ds": ds,
                        "y": y.astype(np.float64),
                    }
                )
            )
    panel = pl.concat(frames)
    meta = PanelMeta(hierarchy=("famille", "executant"), source="tests.panels")
    validate_panel(panel, meta.hierarchy)
    return panel, meta
