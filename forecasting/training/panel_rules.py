"""What the panel's metadata changes in training: flat panels, the calendar, small cells.

One place reads the flags of :class:`~forecasting.data.panel.PanelMeta` that ingest records:

* **flat** (``spendcast.flat``: unrelated series, values of different units): their total
  means nothing and must not move their forecasts, so :func:`for_panel` trains with
  ``reconciliation = "none"`` (each series keeps its own forecast) and says so;
  :func:`scored` leaves the total out of the run's metrics and coverage; :func:`series_columns`
  marks it ``withheld = "flat-total: ..."`` in ``series.parquet``, and the service does not
  present it as a series (404 ``flat-total``; left out of ``GET /v1/series``). It is still
  fitted, so the bundle's contract (every id, parents before children) is unchanged;
* **calendar** (``spendcast.source``, and ``TrainConfig.calendar``): months of a known
  calendar (France: Open DAMIR and legacy files, or ``calendar = "france"``) carry
  information no univariate model sees, the working days of each month (a month with one
  more working day spends ~3-4 % more); with ``calendar_arima`` (default) :func:`for_panel`
  adds AutoARIMA, the only candidate that takes them as regressor, to the candidates. On the
  real French national series (2024 from 2019-2023) it moves the annual total's error from
  -2.5 % to -1.3 %; on data without a known calendar it would add cost (it is ~7x slower than
  AutoETS) for nothing, so it is not a default candidate there;
* **counts** (the panel's ``count`` column): :func:`series_columns` sums them to every level
  like the amounts and writes each series' smallest monthly count as ``min_cell``; a series
  under the panel's threshold (``spendcast.min_cell``; possible only for a panel that was not
  pooled at ingest) is marked ``withheld = "small-cell: ..."`` and never served.
"""

from __future__ import annotations

import logging

import polars as pl

from forecasting.data.panel import COUNT_COL, ID_COL, ROOT_ID, PanelMeta
from forecasting.data.privacy import series_minimums
from forecasting.training.config import TrainConfig

__all__ = ["FLAT_TOTAL", "SMALL_CELL", "for_panel", "apply", "scored", "series_columns"]

FLAT_TOTAL = "flat-total"
SMALL_CELL = "small-cell"
log = logging.getLogger("spendcast.training")


def for_panel(config: TrainConfig, meta: PanelMeta) -> tuple[TrainConfig, str | None]:
    """The configuration a panel trains with, and a message when the panel changed it."""
    notes = []
    if meta.flat and config.reconciliation != "none":
        config = config.model_copy(update={"reconciliation": "none"})
        notes.append(_FLAT_NOTE)
    elif meta.flat:
        notes.append(_FLAT_NOTE)
    arima = "AutoARIMA"
    if config.calendar_arima and config.country(meta.source) and arima not in config.models:
        config = config.model_copy(update={"models": [*config.models, arima]})
        notes.append(_CALENDAR_NOTE)
    return config, ("; ".join(notes) or None)


def apply(config: TrainConfig, meta: PanelMeta) -> TrainConfig:
    """:func:`for_panel`, its message printed (the ``spendcast.training`` logger, stderr)."""
    config, note = for_panel(config, meta)
    if note:
        log.warning(note)
    return config


_FLAT_NOTE = (
    "flat panel (unrelated series): reconciliation = none, each series keeps its own "
    "forecast; the total of unrelated series is not scored nor served"
)


_CALENDAR_NOTE = (
    "French calendar: AutoARIMA with each month's working days as regressor joins the candidates"
)


def scored(frame: pl.DataFrame, meta: PanelMeta) -> pl.DataFrame:
    """``frame`` without the rows that do not count in the run's metrics (a flat total)."""
    return frame.filter(pl.col(ID_COL) != ROOT_ID) if meta.flat else frame


def series_columns(series: pl.DataFrame, panel: pl.DataFrame, meta: PanelMeta) -> pl.DataFrame:
    """``series.parquet`` plus ``min_cell`` (Int64, null without counts) and ``withheld``."""
    mins = series_minimums(panel, meta.hierarchy) if COUNT_COL in panel.columns else {}
    out = series.with_columns(
        pl.col(ID_COL).replace_strict(mins, default=None, return_dtype=pl.Int64).alias("min_cell")
    )
    small = (
        pl.lit(f"{SMALL_CELL}: a month with fewer than {meta.min_cell} acts (privacy rule)")
        if meta.min_cell > 0
        else pl.lit(None, dtype=pl.String)
    )
    flat = pl.lit(f"{FLAT_TOTAL}: the sum of unrelated series (flat panel) is not a series")
    return out.with_columns(
        pl.when((pl.col(ID_COL) == ROOT_ID) & meta.flat)
        .then(flat)
        .when(pl.col("min_cell") < meta.min_cell)
        .then(small)
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("withheld")
    )
