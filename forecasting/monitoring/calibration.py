"""One-step calibration of judged intervals, and the tail score of a judged value.

**Calibration** (split conformal, one step ahead). The training backtest fits each series'
monitoring model (:func:`judged_backtest`; by default the combination, whatever the selection
gave planners) once and updates its state month by month with fixed parameters (statsforecast
``refit=False``), which is exactly what one-step judging does (``forward`` on the known
months), so its ``h = 1`` rows are honest one-step errors: each series' scale is the mean of
its absolute one-step backtest errors. For a series whose values and forecasts are all
positive the errors are **relative** (divided by the forecast) and the half-width is that
scale times the judged month's expectation: such series' errors grow with their level, so a
seasonal peak (the PBS safety-net months, December spending) is judged with wider bounds
than a trough instead of one width for both. A scale measured on a few dozen months is itself
noisy and drifts, so, as for the training intervals, the quantile at ``level`` is taken over
the pooled ratios of each series' *later* one-step errors (the last two thirds of its
cutoffs) to its scale on the *earlier* third: the bounds then carry the noise and drift of
the scale, and the false-alarm rate on new months matches the level. Series without enough
backtest take their in-sample one-step scale (``insample.parquet``, first season dropped)
times the bundle's typical ratio of backtest to in-sample scale; bundles without a usable
backtest pool standardised in-sample residuals, with scales multiplied by the backtest ratio
where there is one (never below 1). ``s`` steps after the last known month the half-width
grows by the pooled step-ahead profile of backtest errors (``profile[0] = 1``).

**Score**: a two-sided tail probability in ``[0, 1]`` (a p-value: small = surprising), never
exactly 0. Under a normal predictive distribution fitted to an interval it is
``2 (1 - Phi(|y - mean| / sigma))`` with ``sigma = half-width / z_level``, side by side below
and above (:func:`normal_tail_probability`), so ``score < 1 - level/100`` exactly when the
value is outside the interval; from sample paths it is ``2 * min(F(y), 1 - F(y))`` with ``F``
the empirical CDF (mid-ranks, ``+1`` correction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import polars as pl

from forecasting.bundle import Bundle
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.models import SEASON

__all__ = [
    "Calibration",
    "calibrate",
    "judged_backtest",
    "z_score",
    "normal_tail_probability",
    "tail_probability",
]

_NORMAL = NormalDist()
_TINY = 1e-300  # the smallest score: a surprise, never exactly impossible
_MIN_RESIDUALS = 10
_MIN_ONESTEP = 9
"""Fewest one-step backtest errors that make a series' own one-step scale."""
_MIN_POOL = 200
"""Fewest later-to-earlier ratios for the backtest calibration (else: in-sample residuals)."""


@dataclass(frozen=True, eq=False)
class Calibration:
    """Conformal one-step half-widths of a bundle's series.

    Attributes:
        residuals: pooled standardised one-step absolute residuals, sorted.
        scales: each calibrated series' one-step scale (backtest ratio included); relative
            (a share of the expectation) for the series in ``relative``.
        profile: growth of errors with the step ahead (``profile[0] == 1``).
        relative: series whose scale is relative to the expectation.
    """

    residuals: np.ndarray
    scales: Mapping[str, float]
    profile: np.ndarray
    relative: frozenset[str] = frozenset()
    _quantiles: dict[int, float] = field(default_factory=dict, repr=False)

    def covers(self, unique_id: str) -> bool:
        """True when the series has one-step conformal residuals."""
        return self.residuals.size >= _MIN_RESIDUALS and self.scales.get(unique_id, 0.0) > 0

    def half_width(
        self, unique_id: str, level: int, step: int, expected: float | None = None
    ) -> float | None:
        """Conformal half-width ``step`` months (0-based) after the last known month.

        ``expected`` is the judged month's expectation (a relative series needs it).
        ``None`` when the series is not calibrated (:meth:`covers`), or is relative and
        ``expected`` is missing or not finite.
        """
        if not self.covers(unique_id):
            return None
        unit = 1.0
        if unique_id in self.relative:
            if expected is None or not math.isfinite(expected):
                return None
            unit = abs(expected)
        prof = 1.0
        if self.profile.size:
            prof = float(self.profile[min(step, self.profile.size - 1)])
        q0 = self._quantiles.get(level)
        if q0 is None:
            q0 = self._quantiles[level] = float(np.quantile(self.residuals, level / 100))
        return q0 * self.scales[unique_id] * prof * unit


def calibrate(bundle: Bundle) -> Calibration:
    """The one-step calibration of a bundle (module docstring)."""
    insample, ins_scales = _insample_residuals(bundle)
    bt = judged_backtest(bundle.backtest)
    profile = _step_profile(bt, bundle.meta.horizon)
    pooled, scales, relative = _backtest_onestep(bt)
    if pooled.size >= _MIN_POOL:
        _, absolute, _ = _backtest_onestep(bt, relative=False)
        typical = _typical_ratio(absolute, ins_scales)
        for u, sc in ins_scales.items():
            scales.setdefault(u, sc * typical)
        return Calibration(np.sort(pooled), scales, profile, frozenset(relative))
    ratio = _backtest_ratio(bt, ins_scales)
    return Calibration(insample, {u: v * ratio for u, v in ins_scales.items()}, profile)


def judged_backtest(bt: pl.DataFrame) -> pl.DataFrame:
    """The backtest rows of the model monitoring judges with, as ``yhat``: the bundle's
    ``yhat_monitor`` (``TrainConfig.monitor_model``); bundles before it judged with the
    selected model, whose rows are ``yhat``."""
    if "yhat_monitor" not in bt.columns:
        return bt
    return bt.with_columns(pl.col("yhat_monitor").alias("yhat")).drop("yhat_monitor")


def _backtest_onestep(
    bt: pl.DataFrame, relative: bool = True
) -> tuple[np.ndarray, dict[str, float], set[str]]:
    """Pooled later-to-earlier one-step error ratios, each series' one-step scale, and the
    series whose errors are relative (values and forecasts all positive; none when
    ``relative`` is False)."""
    if bt.is_empty() or "h" not in bt.columns:
        return np.empty(0), {}, set()
    one = bt.filter(pl.col("h") == 1)
    positive: set[str] = set()
    if relative:
        pos = one.group_by(ID_COL).agg(
            ((pl.col(TARGET_COL) > 0) & (pl.col("yhat") > 0)).all().alias("_pos")
        )
        positive = set(pos.filter(pl.col("_pos"))[ID_COL].to_list())
    unit = pl.when(pl.col(ID_COL).is_in(list(positive))).then(pl.col("yhat")).otherwise(1.0)
    one = (
        one.with_columns(((pl.col(TARGET_COL) - pl.col("yhat")).abs() / unit).alias("_e"))
        .filter(pl.col("_e").is_finite())
        .sort(ID_COL, "cutoff")
        .with_columns(
            pl.int_range(pl.len()).over(ID_COL).alias("_i"), pl.len().over(ID_COL).alias("_n")
        )
        .filter(pl.col("_n") >= _MIN_ONESTEP)
        .with_columns((pl.col("_i") >= pl.col("_n") // 3).alias("_late"))
    )
    per = one.group_by(ID_COL).agg(
        pl.col("_e").mean().alias("s"), pl.col("_e").filter(~pl.col("_late")).mean().alias("sa")
    )
    scales = {u: float(s) for u, s, _ in per.iter_rows() if s is not None and s > 0}
    early = {u: float(a) for u, _, a in per.iter_rows() if a is not None and a > 0}
    late = one.filter(pl.col("_late"))
    early_of = np.array([early.get(u, np.nan) for u in late[ID_COL].to_list()], dtype=np.float64)
    ratios = late["_e"].to_numpy().astype(np.float64) / early_of
    return ratios[np.isfinite(ratios)], scales, positive & set(scales)


def _typical_ratio(scales: Mapping[str, float], ins_scales: Mapping[str, float]) -> float:
    """Median ratio of backtest one-step scale to in-sample scale (1 when none has both)."""
    both = [scales[u] / ins_scales[u] for u in scales if ins_scales.get(u, 0.0) > 0]
    return float(np.median(both)) if both else 1.0


def _insample_residuals(bundle: Bundle) -> tuple[np.ndarray, dict[str, float]]:
    """Pooled standardised one-step in-sample absolute residuals and each series' scale.

    Each series' in-sample one-step absolute residuals (first season dropped when 36+
    remain) are divided by their mean (the series' scale); the pooled, sorted ratios give the
    quantile when the bundle has no usable backtest.
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
        .filter(pl.col("_e").is_finite() & ((pl.col("_n") < 3 * SEASON) | (pl.col("_i") >= SEASON)))
        .with_columns(pl.col("_e").mean().over(ID_COL).alias("_s"))
        .filter(pl.col("_s") > 0)
    )
    if df.is_empty():
        return np.empty(0), {}
    scale_df = df.group_by(ID_COL).agg(pl.col("_s").first())
    scales = dict(zip(scale_df[ID_COL].to_list(), scale_df["_s"].to_list(), strict=True))
    pooled = np.sort((df["_e"] / df["_s"]).to_numpy().astype(np.float64))
    return pooled, {u: float(v) for u, v in scales.items()}


def _backtest_ratio(bt: pl.DataFrame, scales: Mapping[str, float]) -> float:
    """Mean backtest ``h=1`` absolute error over the series' in-sample scale (at least 1)."""
    if bt.is_empty() or "h" not in bt.columns:
        return 1.0
    one = bt.filter(pl.col("h") == 1).with_columns(
        (pl.col(TARGET_COL) - pl.col("yhat")).abs().alias("_e")
    )
    std = [
        e / scales[u]
        for u, e in zip(one[ID_COL].to_list(), one["_e"].to_list(), strict=True)
        if u in scales and e is not None and math.isfinite(e)
    ]
    return max(float(np.mean(std)), 1.0) if len(std) >= 5 else 1.0


def _step_profile(bt: pl.DataFrame, horizon: int) -> np.ndarray:
    """Growth of backtest errors with the step ahead (``profile[0] == 1``, non-decreasing)."""
    if bt.is_empty() or "h" not in bt.columns:
        return np.ones(1)
    from forecasting.training.backtest import horizon_profile

    g = horizon_profile(bt, horizon)
    return g / g[0] if g.size and g[0] > 0 else np.ones(1)


def z_score(level: int) -> float:
    """Standard normal quantile of a central ``level`` % interval (1.96 at 95)."""
    return _NORMAL.inv_cdf(0.5 + level / 200)


def normal_tail_probability(y: float, mean: float, lo: float, hi: float, level: int) -> float:
    """Two-sided tail probability of ``y`` under a normal fitted to ``[lo, hi]`` at ``level``.

    The side of ``y`` gives ``sigma = (mean - lo) / z`` below, ``(hi - mean) / z`` above.
    Never exactly 0: at least 1e-300; a zero-width (or inverted) side gives 1.0 when
    ``y == mean`` and 1e-300 otherwise.
    """
    scale = (mean - lo) if y < mean else (hi - mean)
    if not math.isfinite(scale) or scale <= 0:
        return 1.0 if y == mean else _TINY
    z = abs(y - mean) / (scale / z_score(level))
    return float(max(2 * _NORMAL.cdf(-z), _TINY))


def tail_probability(
    y: float,
    *,
    samples: np.ndarray | None = None,
    mean: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    level: int | None = None,
) -> float:
    """Two-sided tail probability of ``y``: from sample paths, else the normal approximation.

    Args:
        y: the observed value.
        samples: sample paths at that month; used when given and non-empty.
        mean: the point forecast (normal approximation).
        lo: lower bound of the interval (normal approximation).
        hi: upper bound of the interval (normal approximation).
        level: that interval's level in percent (normal approximation).

    Returns:
        The score in ``(0, 1]``, or NaN when neither samples nor a full interval are given.
    """
    if samples is not None and samples.size:
        n = samples.size
        below = float(np.count_nonzero(samples < y))
        equal = float(np.count_nonzero(samples == y))
        cdf = (below + 0.5 * equal + 0.5) / (n + 1)
        return float(min(1.0, 2 * min(cdf, 1 - cdf)))
    if mean is None or lo is None or hi is None or level is None:
        return math.nan
    return normal_tail_probability(y, mean, lo, hi, level)
