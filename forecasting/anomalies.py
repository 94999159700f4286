"""Observed vs expected: judge monthly observations against a trained bundle's forecasts.

Pure functions: no I/O. The service and ``spendcast detect`` both call :func:`detect`
(or :func:`judge` on a prebuilt :func:`index_bundle` lookup, which is what the service keeps
in memory so that judging one observation costs O(1) after the lookup).

Statuses, one per observation:

=====================  ======================================================================
``UNKNOWN_SERIES``     the id is not a series of the model
``OUT_OF_HORIZON``     the month is not one of the model's forecast months (before the first
                       forecast month, or beyond the trained horizon)
``INSUFFICIENT_DATA``  the series has fewer than ``min_history`` training months, or its
                       forecast / bounds are not finite: expected is reported when known, but
                       no flag is raised
``ANOMALY``            the value lies outside the interval at ``level``
``EXPECTED``           the value lies inside it
=====================  ======================================================================

The **score** is a two-sided tail probability in ``[0, 1]`` (a p-value: small = surprising).
With sample paths it is ``2 * min(F(y), 1 - F(y))`` where ``F`` is the empirical CDF of the
paths at that month, computed with mid-ranks and a ``+1`` correction so it is never exactly 0.
Without paths it comes from the interval quantiles: a normal approximation whose scale is
taken, side by side, from the widest stored interval (``mean - lo`` below, ``hi - mean`` above).
Bounds at a level the model stored are the stored (reconciled) bounds; any other level's
bounds are empirical quantiles of the sample paths.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, level_cols
from forecasting.schema import ID_COL, TARGET_COL, TIME_COL, InputError

__all__ = [
    "STATUSES",
    "SeriesForecast",
    "Judgement",
    "index_bundle",
    "interval_from_paths",
    "tail_probability",
    "judge",
    "detect",
    "judge_insample",
    "month_index",
]

STATUSES = ("ANOMALY", "EXPECTED", "INSUFFICIENT_DATA", "OUT_OF_HORIZON", "UNKNOWN_SERIES")
_NORMAL = NormalDist()


def month_index(d: dt.date) -> int:
    """Months since year 0: ``2024-03-01`` -> ``2024 * 12 + 2``."""
    return d.year * 12 + d.month - 1


@dataclass
class SeriesForecast:
    """Everything about one series needed to answer requests in O(horizon).

    Attributes:
        unique_id: the series id.
        ds: forecast months (first day), ascending.
        mean: point forecasts, one per month.
        bounds: ``level -> (lo, hi)`` arrays, one value per month.
        paths: ``(n_paths, horizon)`` sample paths, or ``None``.
        history_ds: training months, ascending.
        history_y: training values.
        info: the series' row of ``series.parquet`` (level, parent, model, mase...).
    """

    unique_id: str
    ds: list[dt.date]
    mean: np.ndarray
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]
    paths: np.ndarray | None
    history_ds: list[dt.date]
    history_y: np.ndarray
    info: dict[str, object] = field(default_factory=dict)
    first_month: int = 0

    def __post_init__(self) -> None:
        self.first_month = month_index(self.ds[0]) if self.ds else 0

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
        lo, hi = interval_from_paths(self.paths, level)
        self.bounds[level] = (lo, hi)
        return lo, hi


def interval_from_paths(paths: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Central interval at ``level`` % from ``(n_paths, horizon)`` sample paths."""
    alpha = (100 - level) / 200
    q = np.quantile(paths.astype(np.float64), [alpha, 1 - alpha], axis=0)
    return q[0], q[1]


def index_bundle(bundle: Bundle) -> dict[str, SeriesForecast]:
    """Precompute a per-series lookup from a bundle (done once, at model load)."""
    levels = list(bundle.meta.levels)
    fc = bundle.forecasts.sort(ID_COL, TIME_COL)
    cols = ["mean", *level_cols(levels)]
    fc_parts = fc.partition_by(ID_COL, as_dict=True, maintain_order=True)
    hist_parts = bundle.history.sort(ID_COL, TIME_COL).partition_by(
        ID_COL, as_dict=True, maintain_order=True
    )
    path_row = {uid: i for i, uid in enumerate(bundle.path_ids)}
    out: dict[str, SeriesForecast] = {}
    for info in bundle.series.iter_rows(named=True):
        uid = str(info[ID_COL])
        part = fc_parts.get((uid,))
        hist = hist_parts.get((uid,))
        arrays = (
            {c: part[c].cast(pl.Float64).to_numpy() for c in cols}
            if part is not None
            else {c: np.empty(0) for c in cols}
        )
        row = path_row.get(uid)
        out[uid] = SeriesForecast(
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
        )
    return out


def tail_probability(
    y: float,
    *,
    samples: np.ndarray | None = None,
    mean: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    level: int | None = None,
) -> float:
    """Two-sided tail probability of ``y`` (see the module docstring).

    Args:
        y: the observed value.
        samples: sample paths at that month; used when given and non-empty.
        mean: the point forecast (normal approximation).
        lo: lower bound of the widest interval (normal approximation).
        hi: upper bound of the widest interval (normal approximation).
        level: that interval's level in percent (normal approximation).
    """
    if samples is not None and samples.size:
        n = samples.size
        below = float(np.count_nonzero(samples < y))
        equal = float(np.count_nonzero(samples == y))
        cdf = (below + 0.5 * equal + 0.5) / (n + 1)
        return float(min(1.0, 2 * min(cdf, 1 - cdf)))
    if mean is None or lo is None or hi is None or level is None:
        return math.nan
    z_level = _NORMAL.inv_cdf(0.5 + level / 200)
    scale = (mean - lo) if y < mean else (hi - mean)
    if not math.isfinite(scale) or scale <= 0:
        return 1.0 if y == mean else 0.0
    z = abs(y - mean) / (scale / z_level)
    return float(2 * (1 - _NORMAL.cdf(z)))


@dataclass(frozen=True)
class Judgement:
    """The verdict on one observation."""

    unique_id: str
    ds: dt.date
    y: float
    status: str
    level: int
    expected: float | None = None
    lo: float | None = None
    hi: float | None = None
    is_anomaly: bool = False
    direction: str | None = None
    score: float | None = None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def judge(
    observations: Iterable[tuple[str, dt.date, float]],
    lookup: Mapping[str, SeriesForecast],
    *,
    level: int = 99,
    min_history: int = 24,
) -> list[Judgement]:
    """Judge ``(unique_id, ds, y)`` observations against a :func:`index_bundle` lookup.

    Args:
        observations: the observed values; ``ds`` any day of the month.
        lookup: per-series forecasts.
        level: interval level in percent (1..99).
        min_history: fewer training months than this gives ``INSUFFICIENT_DATA``.

    Returns:
        One :class:`Judgement` per observation, in input order.
    """
    if not 0 < level < 100:
        raise InputError(f"level {level} is not between 1 and 99", column="level")
    widest: dict[str, int] = {}
    out: list[Judgement] = []
    for uid, ds, y in observations:
        ds = ds.replace(day=1)
        s = lookup.get(uid)
        if s is None:
            out.append(Judgement(uid, ds, y, "UNKNOWN_SERIES", level))
            continue
        k = s.step(ds)
        if k is None:
            out.append(Judgement(uid, ds, y, "OUT_OF_HORIZON", level))
            continue
        lo_a, hi_a = s.interval(level)
        mean, lo, hi = float(s.mean[k]), float(lo_a[k]), float(hi_a[k])
        expected = _finite(mean)
        if len(s.history_ds) < min_history or not all(map(math.isfinite, (mean, lo, hi, y))):
            out.append(
                Judgement(
                    uid, ds, y, "INSUFFICIENT_DATA", level, expected, _finite(lo), _finite(hi)
                )
            )
            continue
        if s.paths is not None and s.paths.size:
            score = tail_probability(y, samples=s.paths[:, k])
        else:
            wl = widest.setdefault(uid, max(s.bounds) if s.bounds else level)
            wlo, whi = s.interval(wl)
            score = tail_probability(y, mean=mean, lo=float(wlo[k]), hi=float(whi[k]), level=wl)
        direction = "above" if y > hi else "below" if y < lo else None
        out.append(
            Judgement(
                uid,
                ds,
                y,
                "ANOMALY" if direction else "EXPECTED",
                level,
                expected,
                lo,
                hi,
                direction is not None,
                direction,
                score,
            )
        )
    return out


def _judgements_frame(rows: list[Judgement]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ID_COL: [r.unique_id for r in rows],
            TIME_COL: [r.ds for r in rows],
            TARGET_COL: [r.y for r in rows],
            "expected": [r.expected for r in rows],
            "lo": [r.lo for r in rows],
            "hi": [r.hi for r in rows],
            "level": [r.level for r in rows],
            "is_anomaly": [r.is_anomaly for r in rows],
            "direction": [r.direction for r in rows],
            "score": [r.score for r in rows],
            "status": [r.status for r in rows],
        },
        schema={
            ID_COL: pl.String,
            TIME_COL: pl.Date,
            TARGET_COL: pl.Float64,
            "expected": pl.Float64,
            "lo": pl.Float64,
            "hi": pl.Float64,
            "level": pl.Int64,
            "is_anomaly": pl.Boolean,
            "direction": pl.String,
            "score": pl.Float64,
            "status": pl.String,
        },
    )


def detect(
    observations: pl.DataFrame,
    model: Bundle | Mapping[str, SeriesForecast],
    *,
    level: int = 99,
    min_history: int = 24,
) -> pl.DataFrame:
    """Judge a frame of observations (``unique_id, ds, y``) against a bundle.

    Returns:
        ``unique_id, ds, y, expected, lo, hi, level, is_anomaly, direction, score, status``,
        one row per observation, in input order.
    """
    for name in (ID_COL, TIME_COL, TARGET_COL):
        if name not in observations.columns:
            raise InputError(
                f"missing column '{name}'",
                column=name,
                hint="observations need unique_id, ds (a date) and y",
            )
    lookup = index_bundle(model) if isinstance(model, Bundle) else model
    obs = observations.select(
        pl.col(ID_COL).cast(pl.String),
        pl.col(TIME_COL).cast(pl.Date),
        pl.col(TARGET_COL).cast(pl.Float64),
    )
    rows = judge(obs.iter_rows(), lookup, level=level, min_history=min_history)
    return _judgements_frame(rows)


def judge_insample(
    insample: pl.DataFrame, *, level: int, unique_id: str | None = None
) -> pl.DataFrame:
    """In-sample flags: each training month's value against its one-step fitted interval.

    Args:
        insample: ``unique_id, ds, y, fitted, lo_L, hi_L`` (``Bundle.insample``).
        level: a level stored in ``insample``.
        unique_id: keep only this series.

    Returns:
        Same columns as :func:`detect` (``expected`` = the fitted value).
    """
    lo_c, hi_c = f"lo_{level}", f"hi_{level}"
    if lo_c not in insample.columns:
        stored = sorted(int(c[3:]) for c in insample.columns if c.startswith("lo_"))
        raise InputError(
            f"no in-sample interval at level {level}",
            column="level",
            hint=f"use one of {stored}",
        )
    df = insample if unique_id is None else insample.filter(pl.col(ID_COL) == unique_id)
    df = df.sort(ID_COL, TIME_COL)
    y, mean = pl.col(TARGET_COL), pl.col("fitted")
    lo, hi = pl.col(lo_c), pl.col(hi_c)
    finite = y.is_finite() & mean.is_finite() & lo.is_finite() & hi.is_finite()
    direction = (
        pl.when(~finite)
        .then(None)
        .when(y > hi)
        .then(pl.lit("above"))
        .when(y < lo)
        .then(pl.lit("below"))
        .otherwise(None)
    )
    z_level = _NORMAL.inv_cdf(0.5 + level / 200)
    scale = pl.when(y < mean).then(mean - lo).otherwise(hi - mean) / z_level
    z = ((y - mean).abs() / scale).fill_nan(None)
    out = df.select(
        pl.col(ID_COL),
        pl.col(TIME_COL),
        y.cast(pl.Float64),
        mean.cast(pl.Float64).alias("expected"),
        lo.cast(pl.Float64).alias("lo"),
        hi.cast(pl.Float64).alias("hi"),
        pl.lit(level, dtype=pl.Int64).alias("level"),
        direction.is_not_null().alias("is_anomaly"),
        direction.alias("direction"),
        z.alias("_z"),
        pl.when(finite)
        .then(pl.lit("EXPECTED"))
        .otherwise(pl.lit("INSUFFICIENT_DATA"))
        .alias("status"),
    )
    zs = out["_z"].to_numpy()
    with np.errstate(invalid="ignore"):
        scores = np.array(
            [2 * (1 - _NORMAL.cdf(z)) if math.isfinite(z) else math.nan for z in zs],
            dtype=np.float64,
        )
    return out.with_columns(
        pl.Series("score", scores).fill_nan(None),
        pl.when(pl.col("is_anomaly"))
        .then(pl.lit("ANOMALY"))
        .otherwise(pl.col("status"))
        .alias("status"),
    ).select(
        ID_COL,
        TIME_COL,
        TARGET_COL,
        "expected",
        "lo",
        "hi",
        "level",
        "is_anomaly",
        "direction",
        "score",
        "status",
    )
