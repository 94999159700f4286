"""The stored forecast of each series of a bundle, indexed for O(1) look-ups.

:func:`index_bundle` is done once per model load (the service keeps the result in memory);
it gives a :class:`ForecastIndex`: per series, the frozen :class:`SeriesForecast` the bundle
stored, plus what judging observations against it needs (the series' conditioning model, see
:mod:`forecasting.monitoring.conditioning`, and the bundle's one-step calibration, see
:mod:`forecasting.monitoring.calibration`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, level_cols
from forecasting.calendar import month_index
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.errors import InputError
from forecasting.monitoring.calibration import Calibration, calibrate
from forecasting.monitoring.completion import ShareTable, share_at, share_tables
from forecasting.monitoring.conditioning import Conditioner, conditioner

__all__ = ["SeriesForecast", "ForecastIndex", "index_bundle", "interval_from_paths"]


@dataclass(frozen=True, eq=False)
class SeriesForecast:
    """What the bundle stored about one series: its forecast, history and facts.

    Attributes:
        unique_id: the series id.
        ds: forecast months (first day), ascending.
        mean: point forecasts, one per month.
        bounds: ``level -> (lo, hi)`` arrays at the trained levels, one value per month.
        paths: ``(n_paths, horizon)`` sample paths, or ``None``.
        history_ds: training months, ascending.
        history_y: training values.
        info: the series' row of ``series.parquet`` (level, parent, model, mase...).
        basis: ``flux`` or ``care`` (complete care months are forecast).
        paid_shares: care basis: ``age -> (expected paid share, its sd)`` of a care month.
        first_month: month index of ``ds[0]`` (0 without forecast months).
    """

    unique_id: str
    ds: list[dt.date]
    mean: np.ndarray
    bounds: Mapping[int, tuple[np.ndarray, np.ndarray]]
    paths: np.ndarray | None
    history_ds: list[dt.date]
    history_y: np.ndarray
    info: Mapping[str, object] = field(default_factory=dict)
    basis: str = "flux"
    paid_shares: ShareTable = field(default_factory=dict)
    first_month: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_month", month_index(self.ds[0]) if self.ds else 0)

    def step(self, d: dt.date) -> int | None:
        """0-based forecast step of month ``d``, or ``None`` when out of the horizon."""
        if not self.ds:
            return None
        k = month_index(d) - self.first_month
        return k if 0 <= k < len(self.ds) else None

    def interval(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Bounds at ``level``: the stored ones, or quantiles of the sample paths."""
        if level in self.bounds:
            return self.bounds[level]
        if self.paths is None or self.paths.size == 0:
            raise InputError(
                f"level {level} is not a trained level and the model has no sample paths",
                column="level",
                hint=f"use one of {sorted(self.bounds)}",
            )
        return interval_from_paths(self.paths, level)

    def share(self, age: int | None) -> tuple[float, float]:
        """Expected paid share (and its sd) of a care month observed at ``age``.

        ``(1.0, 0.0)`` on the flux basis, without an age, or beyond the completion table.
        """
        if self.basis != "care" or age is None:
            return 1.0, 0.0
        return share_at(self.paid_shares, age)


def interval_from_paths(paths: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Central interval at ``level`` % from ``(n_paths, horizon)`` sample paths."""
    alpha = (100 - level) / 200
    q = np.quantile(paths.astype(np.float64), [alpha, 1 - alpha], axis=0)
    return q[0], q[1]


class ForecastIndex(Mapping[str, SeriesForecast]):
    """Series id -> :class:`SeriesForecast`, with what judging needs besides.

    Attributes:
        forecasts: the stored forecasts by series id.
        conditioners: each series' conditioning model (fitted on first use).
        calibration: the bundle's one-step calibration.
        children: parent id -> its children's ids (from ``series.parquet``'s ``parent``).
    """

    def __init__(
        self,
        forecasts: dict[str, SeriesForecast],
        conditioners: dict[str, Conditioner],
        calibration: Calibration,
    ) -> None:
        self.forecasts = forecasts
        self.conditioners = conditioners
        self.calibration = calibration
        self.children: dict[str, list[str]] = {}
        for uid, s in forecasts.items():
            parent = s.info.get("parent")
            if parent is not None:
                self.children.setdefault(str(parent), []).append(uid)

    def half_widths(
        self, unique_id: str, level: int, step: int, expected: float | None = None
    ) -> tuple[float, float] | None:
        """(lower, upper) half-widths at ``level``, ``step`` months after the last known month,
        around ``expected`` (the judged month's expectation).

        Conformal (:meth:`Calibration.half_width`) when the series is calibrated, else the
        stored interval's at that step; ``None`` beyond the horizon.
        """
        half = self.calibration.half_width(unique_id, level, step, expected)
        if half is not None:
            return half, half
        s = self.forecasts[unique_id]
        if step >= len(s.ds):
            return None
        lo, hi = s.interval(level)
        return float(s.mean[step] - lo[step]), float(hi[step] - s.mean[step])

    def __getitem__(self, unique_id: str) -> SeriesForecast:
        return self.forecasts[unique_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.forecasts)

    def __len__(self) -> int:
        return len(self.forecasts)


def index_bundle(bundle: Bundle) -> ForecastIndex:
    """Precompute the per-series lookup of a bundle (done once, at model load)."""
    levels = list(bundle.meta.levels)
    cols = ["mean", *level_cols(levels)]
    fc_parts = _parts(bundle.forecasts)
    hist_parts = _parts(bundle.history)
    shares = share_tables(bundle.completion) if bundle.meta.basis == "care" else {}
    path_row = {uid: i for i, uid in enumerate(bundle.path_ids)}
    adjusted = _parts(
        bundle.adjustments.select(ID_COL, TIME_COL, "adjusted")
        if bundle.adjustments is not None
        else pl.DataFrame()
    )
    forecasts: dict[str, SeriesForecast] = {}
    conditioners: dict[str, Conditioner] = {}
    for info in bundle.series.iter_rows(named=True):
        uid = str(info[ID_COL])
        part, hist = fc_parts.get(uid), hist_parts.get(uid)
        arrays = {
            c: part[c].cast(pl.Float64).to_numpy() if part is not None else np.empty(0)
            for c in cols
        }
        row = path_row.get(uid)
        s = forecasts[uid] = SeriesForecast(
            unique_id=uid,
            ds=part[TIME_COL].to_list() if part is not None else [],
            mean=arrays["mean"],
            bounds={lv: (arrays[f"lo_{lv}"], arrays[f"hi_{lv}"]) for lv in levels},
            paths=np.asarray(bundle.paths[row], dtype=np.float64) if row is not None else None,
            history_ds=hist[TIME_COL].to_list() if hist is not None else [],
            history_y=hist[TARGET_COL].cast(pl.Float64).to_numpy()
            if hist is not None
            else np.empty(0),
            info=info,
            basis=bundle.meta.basis,
            paid_shares=shares.get(uid, {}),
        )
        start = month_index(s.history_ds[0]) if s.history_ds else 0
        conditioners[uid] = conditioner(
            info,
            s.history_y,
            start,
            len(s.ds),
            bundle.meta,
            bundle.conditioning,
            _adjusted(s, adjusted.get(uid)),
        )
    return ForecastIndex(forecasts, conditioners, calibrate(bundle))


def _adjusted(s: SeriesForecast, months: pl.DataFrame | None) -> np.ndarray | None:
    """The training values as training fitted them: the series' history with its adjusted
    exceptional months (``adjustments.parquet``) in place; None when none was adjusted."""
    if months is None or not s.history_ds:
        return None
    y = s.history_y.copy()
    row = {d: i for i, d in enumerate(s.history_ds)}
    for d, value in months.select(TIME_COL, "adjusted").iter_rows():
        if d in row and value is not None:
            y[row[d]] = value
    return y


def _parts(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A frame split by series id, each part sorted by month."""
    if frame.is_empty():
        return {}
    parts = frame.sort(ID_COL, TIME_COL).partition_by(ID_COL, as_dict=True, maintain_order=True)
    return {str(key[0]): part for key, part in parts.items()}
