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

**Bounds** (split conformal, every level): ``expected`` plus or minus the series' one-step
scale times the pooled ``level`` quantile of standardised one-step absolute residuals (see
*Calibration* below), times the step-ahead profile when the month is more than one step after
the last known month. The model's own (and the stored reconciled) intervals under-cover one
step ahead, so they are used only for series without in-sample residuals (degenerate series,
hand-built bundles): then the bounds are the stored ones, or sample-path quantiles at other
levels.

The **score** is a two-sided tail probability in ``[0, 1]`` (a p-value: small = surprising):
``2 (1 - Phi(|y - expected| / sigma))`` under a normal predictive distribution fitted to the
judged interval (``sigma = half-width / z_level``, side by side below and above), never
exactly 0; so ``score < 1 - level/100`` exactly when the value is outside the bounds. For the
fallback series it is ``2 * min(F(y), 1 - F(y))`` with ``F`` the empirical CDF (mid-ranks,
``+1`` correction) of the sample paths at that month, or the same normal approximation fitted
to the widest stored interval.

**One-step-ahead judging (conditioning).** A model trained up to month ``T`` judges ``T+k``
with a k-step interval. When the values of ``T+1 .. T+j`` are known (``stored`` in the
service, or earlier in the same request), the judgement of ``T+k`` (``k > j``) is
conditioned on them: each series' chosen model (the members of an ensemble, combined the same
way) is fitted once on the training history, lazily at its first conditioned judgement, and its
``forward`` method (fixed parameters, state updated on the new months) gives the forecast of
``T+k`` with and without the known months; the expectation is the stored (reconciled) forecast
plus that difference. Only the contiguous run of known months right after ``T`` conditions
(a missing month stops it). Results are cached per (series, known values), so re-judging costs
O(1). ``conditioned_on`` says how many months conditioned a judgement and ``conditioning`` lists
them (month: value used). **Policy for flagged months**: a month that is itself an ANOMALY
conditions later months with its expectation, not its value (one spike neither drags the
next expectations nor widens their bounds); the latest revision of each month is used.

**Calibration**: each series' one-step in-sample absolute residuals (``insample.parquet``,
first season dropped) are divided by their mean (the series' scale); the quantile at
``level`` is taken over all series pooled (a 99 % quantile of a few dozen residuals is noise).
The scale is multiplied by the pooled ratio of backtest ``h=1`` absolute errors to it
(in-sample errors are optimistic; never below 1) and, ``s`` steps after the last known month,
by the pooled step-ahead profile of backtest errors (``profile[0] = 1``). Measured on
generated panels with known Gaussian noise (6 seeds, 17 series x 12 clean months each,
judged month by month): 4.3 % flagged at level 95, 0.9 % at level 99.

**Care basis** (``meta.basis == "care"``): the model forecasts complete care months. An
observation of age ``a`` (months between its care month ``ds`` and its ``as_of`` processing
month: the row's ``as_of``, else the ``as_of`` argument, else the latest ``ds`` of the request)
is compared with ``expected * paid_share(a)``; the half-width combines the model's
(scaled by the share) and the share's standard error (``z * expected * sd``) in quadrature.
Values that condition later months are completed first (divided by their paid share).

**Parent/children consistency**: for a flagged parent, ``explained_by`` (JSON) lists its
children judged for the same month (in the request or stored) with their deviation
(observed - expected) and share of the parent's deviation, largest ``|deviation|`` first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, level_cols
from forecasting.calendar import month_index, month_of
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.errors import InputError
from forecasting.monitoring.completion import paid_share
from forecasting.training.models import combine, ensemble_kind

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
    "DETECT_COLUMNS",
    "DETECT_SCHEMA",
    "VERDICT_SCHEMA",
    "children_map",
]

VERDICT_SCHEMA: dict[str, Any] = {
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
}
"""Columns of every judgement frame (:func:`detect` and :func:`judge_insample`)."""
DETECT_SCHEMA: dict[str, Any] = VERDICT_SCHEMA | {
    "conditioned_on": pl.Int64,
    "age": pl.Int64,
    "paid_share": pl.Float64,
    "explained_by": pl.String,
}
DETECT_COLUMNS = tuple(DETECT_SCHEMA)
_CACHE_MAX = 4096
_SEASON = 12
STATUSES = ("ANOMALY", "EXPECTED", "INSUFFICIENT_DATA", "OUT_OF_HORIZON", "UNKNOWN_SERIES")
_NORMAL = NormalDist()


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
    members: tuple[str, ...] = ()
    combine: str = "mean"
    calendar: bool = False
    onestep: np.ndarray | None = None
    onestep_scale: float = 0.0
    profile: np.ndarray | None = None
    basis: str = "flux"
    completion: pl.DataFrame | None = None
    _models: list[Any] | None = field(default=None, repr=False)
    _base: np.ndarray | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)
    _cache: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _shares: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)
    _quantiles: dict[int, float] = field(default_factory=dict, repr=False)
    _wd: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.first_month = month_index(self.ds[0]) if self.ds else 0

    # ------------------------------------------------------------ conditioning
    def _exog(self, n: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Working days of the first ``n`` months of history (+ known) and the ``h`` after."""
        if self._wd is None or self._wd.shape[0] < n + h:
            from forecasting.calendar import working_days_frame

            first = month_index(self.history_ds[0])
            total = max(n + h, len(self.history_ds) + len(self.ds))
            months = [month_of(first + i) for i in range(total)]
            self._wd = working_days_frame(months).drop("ds").to_numpy().astype(np.float64)
        return self._wd[:n], self._wd[n : n + h]

    def _forward(self, y: np.ndarray, h: int, models: list[Any] | None = None) -> np.ndarray:
        models = models if models is not None else self._models
        assert models is not None
        outs = []
        for alias, m in zip(self.members, models, strict=True):
            if alias == "AutoARIMA" and self.calendar:
                x, x_future = self._exog(len(y), h)
                f = m.forward(y=y, h=h, X=x, X_future=x_future)["mean"]
            else:
                f = m.forward(y=y, h=h)["mean"]
            outs.append(np.asarray(f, dtype=np.float64))
        return combine(np.vstack(outs), self.combine)

    def _fit(self) -> bool:
        # the service warms series up in a thread while requests judge: fit once, publish
        # `_base` before `_models` so a reader never sees a half-fitted series
        if self._models is not None:
            return bool(self._base is not None and np.isfinite(self._base).all())
        with self._lock:
            if self._models is not None:
                return bool(self._base is not None and np.isfinite(self._base).all())
            if self._failed or not self.members or len(self.history_y) < 2 * _SEASON:
                return False
            from forecasting.training.models import make_model

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    models = []
                    for alias in self.members:
                        m = make_model(alias)
                        if alias == "AutoARIMA" and self.calendar:
                            m.fit(self.history_y, self._exog(len(self.history_y), 0)[0])
                        else:
                            m.fit(self.history_y)
                        models.append(m)
                    self._base = self._forward(self.history_y, len(self.ds), models)
                    self._models = models
            except Exception:  # noqa: BLE001 - a model that cannot refit: judge unconditioned
                self._models, self._base, self._failed = None, None, True
                return False
            return bool(np.isfinite(self._base).all())

    def prepare(self) -> bool:
        """Fit the conditioning model now (else at the first conditioned judgement).

        Returns whether conditioning is available for this series.
        """
        return self._fit()

    def delta(self, known: tuple[float, ...]) -> np.ndarray | None:
        """Shift of the forecasts of months ``T+j+1..`` given the values of ``T+1..T+j``.

        ``None`` when the series has no refittable model (judged unconditioned).
        """
        hit = self._cache.get(known)
        if hit is not None:
            return hit
        if not known or not self._fit():
            return None
        assert self._base is not None
        j = len(known)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self._forward(np.concatenate([self.history_y, np.asarray(known)]), len(self.ds) - j)
        d = f - self._base[j:]
        if not np.isfinite(d).all():
            return None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[known] = d
        return d

    def share(self, age: int | None) -> tuple[float, float]:
        """Expected paid share (and its sd) of a care month observed at ``age``."""
        if self.basis != "care" or age is None:
            return 1.0, 0.0
        hit = self._shares.get(age)
        if hit is None:
            hit = self._shares[age] = paid_share(self.completion, self.unique_id, age)
        return hit

    @property
    def conformal(self) -> bool:
        """True when the series has one-step conformal residuals."""
        return self.onestep is not None and self.onestep.size >= 10 and self.onestep_scale > 0

    def onestep_half(self, level: int, step: int) -> tuple[float, float] | None:
        """Conformal (lower, upper) half-widths ``step`` months (0-based) after the last known."""
        prof = 1.0
        if self.profile is not None and self.profile.size:
            prof = float(self.profile[min(step, self.profile.size - 1)])
        if self.conformal:
            assert self.onestep is not None
            q0 = self._quantiles.get(level)
            if q0 is None:
                q0 = self._quantiles[level] = float(np.quantile(self.onestep, level / 100))
            q = q0 * self.onestep_scale * prof
            return q, q
        if step < len(self.ds):
            lo, hi = self.interval(level)
            return float(self.mean[step] - lo[step]), float(hi[step] - self.mean[step])
        return None

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
    pooled, scales = _onestep_residuals(bundle)
    profile = _step_profile(bundle)
    candidates = [m for m in bundle.meta.models if ensemble_kind(m) is None]
    calendar = bool(bundle.meta.config.get("calendar", False)) and "AutoARIMA" in candidates
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
            members=_members(info, candidates),
            combine=ensemble_kind(str(info.get("model") or "")) or "mean",
            calendar=calendar,
            onestep=pooled if uid in scales else None,
            onestep_scale=scales.get(uid, 0.0),
            profile=profile,
            basis=bundle.meta.basis,
            completion=bundle.completion,
        )
    return out


def _members(info: Mapping[str, object], candidates: list[str]) -> tuple[str, ...]:
    """Models to refit for conditioning: the chosen one, or an ensemble's members.

    An ensemble's members are read from a ``members`` column of ``series.parquet`` when the
    bundle has one; otherwise every candidate except AutoARIMA (the slow one) stands in.
    """
    from forecasting.training.config import CANDIDATES

    model = str(info.get("model") or "")
    if model in CANDIDATES:
        return (model,)
    if ensemble_kind(model) is None:
        return ()
    listed = info.get("members")
    if isinstance(listed, str) and listed:
        return tuple(m for m in listed.split(",") if m in CANDIDATES)
    if isinstance(listed, list | tuple) and listed:
        return tuple(str(m) for m in listed if m in CANDIDATES)
    cheap = [m for m in candidates if m != "AutoARIMA"]
    return tuple(cheap or candidates)


def _onestep_residuals(bundle: Bundle) -> tuple[np.ndarray, dict[str, float]]:
    """Pooled standardised one-step absolute residuals and each series' scale.

    Each series' in-sample one-step absolute residuals (first season dropped when 36+
    remain) are divided by their mean (the series' scale); the pooled, sorted ratios give the
    quantile, so a 99 % half-width rests on every series' residuals rather than on a few dozen.
    Scales are multiplied by the pooled ratio of backtest ``h=1`` absolute errors to the
    series' scale (in-sample errors are optimistic; never below 1).
    """
    ins = bundle.insample
    if ins.is_empty() or "fitted" not in ins.columns:
        return np.empty(0), {}
    df = (
        ins.sort(ID_COL, TIME_COL)
        .with_columns(
            (pl.col(TARGET_COL) - pl.col("fitted")).abs().alias("_e"),
            pl.int_range(pl.len()).over(ID_COL).alias("_i"),
            pl.len().over(ID_COL).alias("_n"),
        )
        .filter(
            pl.col("_e").is_finite() & ((pl.col("_n") < 3 * _SEASON) | (pl.col("_i") >= _SEASON))
        )
        .with_columns(pl.col("_e").mean().over(ID_COL).alias("_s"))
        .filter(pl.col("_s") > 0)
    )
    if df.is_empty():
        return np.empty(0), {}
    scale_df = df.group_by(ID_COL).agg(pl.col("_s").first())
    scales = dict(zip(scale_df[ID_COL].to_list(), scale_df["_s"].to_list(), strict=True))
    pooled = np.sort((df["_e"] / df["_s"]).to_numpy().astype(np.float64))
    bt = bundle.backtest
    ratio = 1.0
    if not bt.is_empty() and "h" in bt.columns:
        one = bt.filter(pl.col("h") == 1).with_columns(
            (pl.col(TARGET_COL) - pl.col("yhat")).abs().alias("_e")
        )
        std = [
            e / scales[u]
            for u, e in zip(one[ID_COL].to_list(), one["_e"].to_list(), strict=True)
            if u in scales and e is not None and math.isfinite(e)
        ]
        if len(std) >= 5:
            ratio = max(float(np.mean(std)), 1.0)
    return pooled, {u: float(v) * ratio for u, v in scales.items()}


def _step_profile(bundle: Bundle) -> np.ndarray:
    """Growth of backtest errors with the step ahead (``profile[0] == 1``, non-decreasing)."""
    bt = bundle.backtest
    if bt.is_empty() or "h" not in bt.columns:
        return np.ones(1)
    from forecasting.training.backtest import horizon_profile

    g = horizon_profile(bt)
    return g / g[0] if g.size and g[0] > 0 else np.ones(1)


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
    return float(max(2 * _NORMAL.cdf(-z), 1e-300))  # never exactly 0 (like the path score)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one observation.

    ``conditioned_on``: months after the training end that conditioned it; ``conditioning``:
    JSON ``{month: value used}`` of those months; ``age`` / ``paid_share``: care basis only;
    ``explained_by``: JSON list of ``{unique_id, deviation, share}`` for a flagged parent.
    """

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
    conditioned_on: int = 0
    age: int | None = None
    paid_share: float | None = None
    explained_by: str | None = None
    conditioning: str | None = None
    as_of: dt.date | None = None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


Obs = tuple[str, dt.date, float] | tuple[str, dt.date, float, dt.date | None]


def _verdict(
    s: SeriesForecast,
    k: int,
    y: float,
    known: tuple[float, ...],
    *,
    level: int,
    min_history: int,
    age: int | None,
    widest: dict[str, int],
) -> Judgement:
    """Judge ``y`` at forecast step ``k`` given completed values of steps ``0..len(known)-1``."""
    ds = s.ds[k]
    share, sd = s.share(age)
    care = s.basis == "care" and age is not None
    j = min(len(known), k)
    delta = s.delta(known[:j]) if j else None
    if delta is None:
        j = 0
    mean = float(s.mean[k] + (delta[k - j] if delta is not None else 0.0))
    half = s.onestep_half(level, k - j) if s.conformal or j else None
    if half is not None:
        lo, hi = mean - half[0], mean + half[1]
    else:
        lo_a, hi_a = s.interval(level)
        lo, hi = float(lo_a[k]), float(hi_a[k])
    if care:
        z = _NORMAL.inv_cdf(0.5 + level / 200)
        spread = z * mean * sd
        lo = mean * share - math.hypot(share * (mean - lo), spread)
        hi = mean * share + math.hypot(share * (hi - mean), spread)
        mean *= share
    cond = (
        json.dumps({month_of(s.first_month + i).isoformat(): known[i] for i in range(j)})
        if j
        else None
    )
    extra: dict[str, Any] = {
        "conditioned_on": j,
        "conditioning": cond,
        "age": age if s.basis == "care" else None,
        "paid_share": share if s.basis == "care" and age is not None else None,
    }
    expected = _finite(mean)
    if len(s.history_ds) < min_history or not all(map(math.isfinite, (mean, lo, hi, y))):
        return Judgement(
            s.unique_id,
            ds,
            y,
            "INSUFFICIENT_DATA",
            level,
            expected,
            _finite(lo),
            _finite(hi),
            **extra,
        )
    if half is None and not care and s.paths is not None and s.paths.size:
        score = tail_probability(y, samples=s.paths[:, k])
    elif half is None and not care:
        wl = widest.setdefault(s.unique_id, max(s.bounds) if s.bounds else level)
        wlo, whi = s.interval(wl)
        score = tail_probability(y, mean=mean, lo=float(wlo[k]), hi=float(whi[k]), level=wl)
    else:
        score = tail_probability(y, mean=mean, lo=lo, hi=hi, level=level)
    direction = "above" if y > hi else "below" if y < lo else None
    return Judgement(
        s.unique_id,
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
        **extra,
    )


def _conditioning_value(v: Judgement) -> float:
    """What a judged month contributes to conditioning later ones (complete scale)."""
    share = v.paid_share if v.paid_share and v.paid_share > 0 else 1.0
    if v.is_anomaly and v.expected is not None:
        return v.expected / share
    return v.y / share


def _walk(
    s: SeriesForecast,
    values: dict[int, tuple[float, dt.date | None]],
    last_step: int,
    *,
    level: int,
    min_history: int,
    widest: dict[str, int],
) -> dict[int, Judgement]:
    """Judge the known months of one series in order, up to step ``last_step``.

    ``values``: step -> (value, as_of) of the latest revision. Returns step -> judgement.
    """
    out: dict[int, Judgement] = {}
    known: list[float] = []
    contiguous = True
    for k in range(last_step + 1):
        hit = values.get(k)
        if hit is None:
            contiguous = False
            continue
        y, as_of = hit
        age = None if as_of is None else max(month_index(as_of) - s.first_month - k, 0)
        v = _verdict(
            s,
            k,
            y,
            tuple(known),
            level=level,
            min_history=min_history,
            age=age,
            widest=widest,
        )
        out[k] = v
        if contiguous:
            known.append(_conditioning_value(v))
    return out


def judge(
    observations: Iterable[Obs],
    lookup: Mapping[str, SeriesForecast],
    *,
    level: int = 99,
    min_history: int = 24,
    stored: Iterable[Obs] | None = None,
    as_of: dt.date | None = None,
) -> list[Judgement]:
    """Judge ``(unique_id, ds, y[, as_of])`` observations against a :func:`index_bundle` lookup.

    Args:
        observations: the observed values; ``ds`` any day of the month.
        lookup: per-series forecasts.
        level: interval level in percent (1..99).
        min_history: fewer training months than this gives ``INSUFFICIENT_DATA``.
        stored: latest known values ``(unique_id, ds, y[, as_of])`` of months after the
            training end; they condition later months (see the module docstring).
        as_of: processing month of the observations without their own (care basis);
            default: the latest ``ds`` of the request.

    Returns:
        One :class:`Judgement` per observation, in input order.
    """
    if not 0 < level < 100:
        raise InputError(f"level {level} is not between 1 and 99", column="level")
    rows = [_as_obs(o) for o in observations]
    default_as_of = as_of or max((r[1] for r in rows), default=None)
    # series -> step -> (value, as_of); stored first, then the request (the newest revision)
    values: dict[str, dict[int, tuple[float, dt.date | None]]] = {}

    def place(uid: str, ds: dt.date, y: float, ao: dt.date | None) -> int | None:
        s = lookup.get(uid)
        k = s.step(ds) if s is not None else None
        if k is not None:
            values.setdefault(uid, {})[k] = (y, ao or default_as_of)
        return k

    for o in stored or ():
        place(*_as_obs(o))
    last: dict[str, int] = {}  # series -> latest step asked for in the request
    for row in rows:
        k = place(*row)
        if k is not None:
            last[row[0]] = max(last.get(row[0], -1), k)
    widest: dict[str, int] = {}
    walked = {
        uid: _walk(lookup[uid], values[uid], k, level=level, min_history=min_history, widest=widest)
        for uid, k in last.items()
    }
    out: list[Judgement] = []
    for uid, ds, y, ao in rows:
        s = lookup.get(uid)
        if s is None:
            out.append(Judgement(uid, ds, y, "UNKNOWN_SERIES", level, as_of=ao))
            continue
        k = s.step(ds)
        if k is None:
            out.append(Judgement(uid, ds, y, "OUT_OF_HORIZON", level, as_of=ao))
            continue
        ref = walked[uid][k]
        if ref.y != y or (ao is not None and ao != values[uid][k][1]):
            # a duplicate month in the request with another value: judged on the same basis
            cond = json.loads(ref.conditioning) if ref.conditioning else {}
            ref_as_of = ao or default_as_of
            age = None if ref_as_of is None else max(month_index(ref_as_of) - month_index(ds), 0)
            ref = _verdict(
                s,
                k,
                y,
                tuple(float(x) for x in cond.values()),
                level=level,
                min_history=min_history,
                age=age,
                widest=widest,
            )
        out.append(ref if ao is None else replace(ref, as_of=ao))
    kw: dict[str, Any] = {"level": level, "min_history": min_history, "widest": widest}
    return _explain(out, lookup, values, walked, **kw)


def _as_obs(o: Sequence[Any]) -> tuple[str, dt.date, float, dt.date | None]:
    ao = o[3] if len(o) > 3 else None
    return (
        str(o[0]),
        o[1].replace(day=1),
        float(o[2]),
        ao.replace(day=1) if ao is not None else None,
    )


def children_map(lookup: Mapping[str, SeriesForecast]) -> dict[str, list[str]]:
    """Parent id -> its children's ids (from ``series.parquet``'s ``parent``)."""
    children: dict[str, list[str]] = {}
    for uid, s in lookup.items():
        parent = s.info.get("parent")
        if parent is not None:
            children.setdefault(str(parent), []).append(uid)
    return children


def _explain(
    out: list[Judgement],
    lookup: Mapping[str, SeriesForecast],
    values: dict[str, dict[int, tuple[float, dt.date | None]]],
    walked: dict[str, dict[int, Judgement]],
    **kw: Any,
) -> list[Judgement]:
    """Fill ``explained_by`` on flagged parents from their children's judgements."""
    flagged = [i for i, v in enumerate(out) if v.is_anomaly]
    if not flagged:
        return out
    children = children_map(lookup)
    for i in flagged:
        v = out[i]
        kids = children.get(v.unique_id)
        if not kids or v.expected is None:
            continue
        parent_dev = v.y - v.expected
        parts = []
        for c in kids:
            cs = lookup[c]
            k = cs.step(v.ds)
            if k is None or k not in values.get(c, {}):
                continue
            if c not in walked or k not in walked[c]:
                walked[c] = _walk(cs, values[c], k, **kw)
            cv = walked[c].get(k)
            if cv is None or cv.expected is None:
                continue
            dev = cv.y - cv.expected
            share = dev / parent_dev if parent_dev else None
            parts.append({"unique_id": c, "deviation": dev, "share": share})
        if parts:
            parts.sort(key=lambda p: -abs(float(p["deviation"])))  # type: ignore[arg-type]
            out[i] = replace(v, explained_by=json.dumps(parts))
    return out


def _judgements_frame(rows: list[Judgement]) -> pl.DataFrame:
    names = {ID_COL: "unique_id", TIME_COL: "ds", TARGET_COL: "y"}
    return pl.DataFrame(
        {c: [getattr(r, names.get(c, c)) for r in rows] for c in DETECT_COLUMNS},
        schema=DETECT_SCHEMA,
    )


def _obs_rows(frame: pl.DataFrame) -> list[Obs]:
    cols = [
        pl.col(ID_COL).cast(pl.String),
        pl.col(TIME_COL).cast(pl.Date),
        pl.col(TARGET_COL).cast(pl.Float64),
    ]
    if "as_of" in frame.columns:
        cols.append(pl.col("as_of").cast(pl.Date))
    return list(frame.select(cols).iter_rows())


def detect(
    observations: pl.DataFrame,
    model: Bundle | Mapping[str, SeriesForecast],
    *,
    level: int = 99,
    min_history: int = 24,
    stored: pl.DataFrame | None = None,
    as_of: dt.date | None = None,
) -> pl.DataFrame:
    """Judge a frame of observations (``unique_id, ds, y`` [+ ``as_of``]) against a bundle.

    Args:
        observations: the values to judge; earlier months of a series condition later ones.
        model: a :class:`Bundle` or its :func:`index_bundle` lookup.
        level: interval level in percent.
        min_history: fewer training months than this gives ``INSUFFICIENT_DATA``.
        stored: ``unique_id, ds, y`` [+ ``as_of``] already known after the training end
            (latest revision per series and month).
        as_of: processing month of rows without ``as_of`` (care basis); default: the latest
            ``ds`` of ``observations``.

    Returns:
        :data:`DETECT_COLUMNS`, one row per observation, in input order.
    """
    for name in (ID_COL, TIME_COL, TARGET_COL):
        if name not in observations.columns:
            raise InputError(
                f"missing column '{name}'",
                column=name,
                hint="observations need unique_id, ds (a date) and y",
            )
    lookup = index_bundle(model) if isinstance(model, Bundle) else model
    rows = judge(
        _obs_rows(observations),
        lookup,
        level=level,
        min_history=min_history,
        stored=_obs_rows(stored) if stored is not None else None,
        as_of=as_of,
    )
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
    ).select(*VERDICT_SCHEMA)
