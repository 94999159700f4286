"""Coherent joint sample paths of the reconciled forecasts (annual totals, budget odds).

Bottom series are drawn and summed up the hierarchy (``S``), so every parent path is the
sum of its children's. Each bottom draw is ``mean + sigma * z`` with a two-piece scale
(``sigma_lo`` below the mean, ``sigma_hi`` above) read from that series' calibrated interval
at the trained level nearest 90 % (:func:`path_level`), so the paths' spread matches the
intervals where budgets are decided. ``z`` keeps the dependence of forecast errors: across
series, each step draws a whole cross-section of standardised (centred, unit-variance)
backtest errors aligned on (cutoff, month), so the empirical correlation between categories
is kept (and with it the spread of the parents); across the horizon,
``z_t = phi z_(t-1) + sqrt(1 - phi^2) e_t``.

**Annual totals.** ``phi`` is chosen so that sums of forecast errors over a whole window
(what an annual total's error is) have the spread they had on the backtest
(:func:`spread`): each later-months backtest window's summed error, divided by the
series' earlier scale, against the spread the calibrated steps imply for a given ``phi``; the
``phi`` whose 80 % band holds 80 % of those window sums. The errors of a level forecast
persist (a level that is off stays off for the year), so ``phi`` is usually high, and an
annual interval is far wider than twelve independent months would give. Clipped at zero when
``nonnegative``.

**Heavy tails of window sums** (:func:`spread`). Realized window sums are heavier-tailed than
a normal: a few series' levels drift far more than their earlier scale says (real suite: with
``phi`` matched at 80 %, the backtest's own window sums fell inside the 95 % band 88-92 % of
the time, held-out annual totals 86.5 %). So each bottom series' deviation on each path is
multiplied by ``m = c * sqrt(nu / chi2_nu)`` (a Student-t scale mixture, one ``m`` per path and
series): ``nu`` is chosen so that the ratio of the 95 % to the 80 % quantile of the window sums
is the backtest's (a normal's ratio or less: no mixture; at least :data:`NU_MIN` degrees of
freedom, so the variance stays finite), ``c`` keeps each month's 90 % band where the calibrated
interval puts it, and ``phi`` is then matched to the 80 % band of the mixture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import polars as pl
from scipy.stats import t as student_t

from forecasting.data.panel import ID_COL, ROOT_ID, TARGET_COL
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import Hierarchy
from forecasting.training.intervals import Calibration

__all__ = [
    "sample_paths",
    "Spread",
    "spread",
    "window_sums",
    "window_totals",
    "path_level",
    "window_sd",
    "NU_MIN",
]

_PHI_MAX = 0.99
_MIN_WINDOWS = 10
"""Fewest full later-months windows that calibrate ``phi`` (else: no persistence)."""
_MIN_TAIL_WINDOWS = 50
"""Fewest full later-months windows that estimate the tails of window sums (else: normal)."""
NU_MIN = 3.0
"""Fewest degrees of freedom of the paths' scale mixture: heavier tails than a t with 3
degrees of freedom would make the variance of the paths (and of the total's shock) infinite."""
_NU_MAX = 200.0


@dataclass(frozen=True)
class Spread:
    """How errors add up over a window: AR(1) persistence and the tails of the sums.

    Attributes:
        phi: persistence of errors from one step to the next (:func:`_ar1`).
        nu: degrees of freedom of the per-path scale mixture (None: no mixture, normal).
    """

    phi: float = 0.0
    nu: float | None = None

    @property
    def c(self) -> float:
        """Scale of the mixture that keeps a central 90 % band where a normal's is."""
        return 1.0 if self.nu is None else _z(90) / float(student_t.ppf(0.95, self.nu))

    def multipliers(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """``c * sqrt(nu / chi2_nu)`` draws (ones without a mixture)."""
        if self.nu is None:
            return np.ones(shape)
        return self.c * np.sqrt(self.nu / rng.chisquare(self.nu, size=shape))

    def standard(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Draws of a window sum in units of the normal part's sd (``c * T_nu`` or ``Z``)."""
        if self.nu is None:
            return rng.standard_normal(shape)
        return self.c * rng.standard_t(self.nu, size=shape)

    def quantile(self, level: int) -> float:
        """Upper bound of the central ``level`` % band of :meth:`standard`."""
        q = 0.5 + level / 200
        return _z(level) if self.nu is None else self.c * float(student_t.ppf(q, self.nu))


def _z(level: int) -> float:
    """Standard normal quantile of a central ``level`` % interval's upper bound."""
    return NormalDist().inv_cdf(0.5 + level / 200)


def _ar1(eps: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance AR(1) along axis 1 driven by ``eps`` (``z_t = phi z_(t-1) + ...``)."""
    z = np.empty_like(eps)
    z[:, 0] = eps[:, 0]
    for t in range(1, eps.shape[1]):
        z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi**2) * eps[:, t]
    return z


def path_level(levels: list[int]) -> int:
    """The trained level whose bounds set the paths' scale: the one nearest 90 %."""
    return min(levels, key=lambda lv: (abs(lv - 90), -lv))


def sample_paths(
    hier: Hierarchy,
    rec: dict[str, np.ndarray],
    residuals: np.ndarray,
    sp: Spread,
    config: TrainConfig,
) -> np.ndarray:
    """``config.n_paths`` coherent paths per series, centred on the reconciled means.

    Args:
        hier: the hierarchy (rows of ``rec`` and ``residuals`` in ``hier.ids`` order).
        rec: reconciled ``mean``, ``lo_L``, ``hi_L``, each (n_series, horizon).
        residuals: (n_series, K) aligned backtest errors of the chosen models.
        sp: persistence of errors across the horizon and tails of their sums
            (:func:`spread`).
        config: horizon, levels, number of paths, seed, non-negativity.

    Returns:
        float32 (n_series, n_paths, horizon).
    """
    rng = np.random.default_rng(config.seed)
    bidx = hier.bottom_index()
    mean = rec["mean"][bidx]  # (nb, h)
    lv = path_level(config.levels)
    z_lv = _z(lv)
    sig_lo = np.maximum(mean - rec[f"lo_{lv}"][bidx], 0.0) / z_lv
    sig_hi = np.maximum(rec[f"hi_{lv}"][bidx] - mean, 0.0) / z_lv
    eps = _error_draws(residuals[bidx], (config.n_paths, config.horizon), rng)
    z = _ar1(eps, sp.phi)
    dev = np.where(z < 0, z * sig_lo.T[None], z * sig_hi.T[None])  # (n_paths, h, nb)
    if sp.nu is not None:  # drawn after the errors: a normal spread keeps its paths
        dev *= sp.multipliers(rng, (config.n_paths, 1, len(bidx)))
    dev += _common_shock(hier, rec, dev, lv, sp.phi, rng)
    bottom = mean.T[None] + dev
    if config.nonnegative:
        bottom = np.maximum(bottom, 0.0)
    full = np.einsum("sb,phb->sph", hier.S, bottom)
    return full.astype(np.float32)


def window_sd(profile: np.ndarray, phi: float) -> float:
    """Standard deviation of a sum of unit-scale steps shaped by ``profile``, AR(1) ``phi``."""
    k = np.arange(profile.size)
    corr = phi ** np.abs(k[:, None] - k[None, :])
    return float(np.sqrt(profile @ corr @ profile))


def window_sums(bt: pl.DataFrame, cal: Calibration, ids: list[str]) -> pl.DataFrame:
    """Every full window of the later backtest months: what :func:`spread` matches and
    :func:`window_totals` scores.

    Args:
        bt: chosen-model backtest rows ``unique_id, ds, cutoff, h, y, yhat``.
        cal: the conformal calibration (profile, earlier scales and splits).
        ids: the series whose windows count (the bottom series).

    Returns:
        ``unique_id, cutoff, actual, mean, scale``: the window's actual and forecast totals,
        and the series' earlier scale.
    """
    schema = {
        ID_COL: pl.String,
        "cutoff": pl.Date,
        "actual": pl.Float64,
        "mean": pl.Float64,
        "scale": pl.Float64,
    }
    if bt.is_empty():
        return pl.DataFrame(schema=schema)
    scales = cal.early or cal.scales
    sums = (
        bt.filter(pl.col(ID_COL).is_in([u for u in ids if u in scales]))
        .group_by(ID_COL, "cutoff")
        .agg(
            pl.col(TARGET_COL).sum().alias("actual"),
            pl.col("yhat").sum().alias("mean"),
            pl.len().alias("_n"),
        )
        .filter(pl.col("_n") == cal.window_profile.size)
    )
    if cal.split:
        sums = sums.filter(
            pl.col("cutoff") >= pl.col(ID_COL).replace_strict(cal.split, return_dtype=pl.Date)
        )
    scale = pl.col(ID_COL).replace_strict(scales, return_dtype=pl.Float64).alias("scale")
    return sums.with_columns(scale).select(list(schema)).sort(ID_COL, "cutoff")


def _unit(cal: Calibration, level: int = 80) -> float | None:
    """One step's sigma per unit of a series' scale (from the ``level`` % quantile)."""
    q = cal.quantiles.get(level)
    return None if q is None or not np.isfinite(q) else q / _z(level)


def _tail_nu(ratio: float, level: int) -> float | None:
    """Degrees of freedom of the t whose 95 % to ``level`` % band ratio is ``ratio`` (None:
    a normal's ratio or less)."""

    def t_ratio(nu: float) -> float:
        return float(student_t.ppf(0.975, nu) / student_t.ppf(0.5 + level / 200, nu))

    if not np.isfinite(ratio) or ratio <= t_ratio(_NU_MAX):
        return None
    if ratio >= t_ratio(NU_MIN):
        return NU_MIN
    lo, hi = np.log(NU_MIN), np.log(_NU_MAX)
    for _ in range(40):  # the ratio falls as nu grows: bisection on log nu
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_ratio(float(np.exp(mid))) > ratio else (lo, mid)
    return float(np.exp((lo + hi) / 2))


def spread(sums: pl.DataFrame, cal: Calibration, level: int = 80) -> Spread:
    """The ``phi`` and tails whose window sums match the backtest's (module docstring).

    Args:
        sums: the backtest's window sums (:func:`window_sums`).
        cal: the conformal calibration (profile, quantiles).
        level: the central level matched (its bound must hold ``level`` % of the sums).

    Returns:
        ``phi`` in [0, 0.99] (0 when fewer than a few full later-months windows exist) and
        ``nu`` (None, a normal, when the sums' tails are no heavier than a normal's or fewer
        than :data:`_MIN_TAIL_WINDOWS` windows exist).
    """
    unit = _unit(cal, level)
    if unit is None or sums.height < _MIN_WINDOWS:
        return Spread()
    t = np.abs((sums["actual"] - sums["mean"]).to_numpy()) / (sums["scale"].to_numpy() * unit)
    t = t[np.isfinite(t)]
    if t.size < _MIN_WINDOWS:
        return Spread()
    q = float(np.quantile(t, level / 100))
    tails = t.size >= _MIN_TAIL_WINDOWS and level < 95
    nu = _tail_nu(float(np.quantile(t, 0.95)) / q, level) if tails else None
    shape = Spread(nu=nu)
    target = q / shape.quantile(level)  # the sd of the normal part of a window sum
    lo, hi = 0.0, _PHI_MAX
    if window_sd(cal.window_profile, lo) >= target:
        return Spread(lo, nu)
    if window_sd(cal.window_profile, hi) <= target:
        return Spread(hi, nu)
    for _ in range(40):  # window_sd grows with phi: bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if window_sd(cal.window_profile, mid) < target else (lo, mid)
    return Spread((lo + hi) / 2, nu)


def _error_draws(
    residuals: np.ndarray, draws: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """(n_paths, h, nb) cross-sections of standardised backtest errors of the bottom series.

    Each series is standardised over its own errors (NaN: no error at that cross-section);
    where a drawn cross-section has none for a series, that series draws a standard normal
    (so a short series, or one whose months differ from the others', keeps its full spread
    instead of repeating one value). Series without spread in their errors draw standard
    normals; every series does when the backtest has fewer than two cross-sections.
    """
    res = residuals.astype(np.float64)
    width = res.shape[1]
    with warnings.catch_warnings():  # a series without any error: NaN mean and sd
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(res, axis=1), np.nanstd(res, axis=1)
    ok = (np.isfinite(res).sum(axis=1) >= 2) & (sd > 0)
    if width < 2 or not ok.any():
        return rng.standard_normal((*draws, res.shape[0]))
    pool = np.full((width, res.shape[0]), np.nan)
    pool[:, ok] = ((res[ok] - mean[ok, None]) / sd[ok, None]).T
    eps = pool[rng.integers(0, width, size=draws)]
    missing = ~np.isfinite(eps)
    eps[missing] = rng.standard_normal(int(missing.sum()))
    return eps


def _common_shock(
    hier: Hierarchy,
    rec: dict[str, np.ndarray],
    dev: np.ndarray,
    level: int,
    phi: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The part of the total's error that the bottom draws miss, shared out by size.

    A few backtest windows understate how much the categories' errors move together, so
    the sum of the bottom draws is narrower than the total's own calibrated interval. The
    missing variance at each step is added as one shock per path (AR(1) over the horizon),
    split between bottom series in proportion to their own interval's width (noisy series
    take most of it): parents stay sums of children, the total's paths get its interval's
    spread.
    """
    bidx = hier.bottom_index()
    root = hier.ids.index(ROOT_ID) if ROOT_ID in hier.ids else None
    if root is None or dev.shape[2] < 2:
        return np.zeros_like(dev)
    z_lv = _z(level)
    target = ((rec[f"hi_{level}"][root] - rec[f"lo_{level}"][root]) / (2 * z_lv)) ** 2
    have = dev.sum(axis=2).var(axis=0)
    extra = np.sqrt(np.maximum(target - have, 0.0))  # (h,)
    spread = np.maximum(rec[f"hi_{level}"][bidx] - rec[f"lo_{level}"][bidx], 0.0)  # (nb, h)
    share = spread / np.maximum(spread.sum(axis=0, keepdims=True), 1e-12)
    n_paths, h = dev.shape[:2]
    u = _ar1(rng.standard_normal((n_paths, h)), phi)
    return (u * extra[None])[:, :, None] * share.T[None]


def window_totals(sums: pl.DataFrame, cal: Calibration, sp: Spread) -> pl.DataFrame:
    """The backtest's 12-month totals and the spread the paths give such a total.

    Args:
        sums: the backtest's window sums (:func:`window_sums`).
        cal: the conformal calibration.
        sp: the paths' persistence and tails (:func:`spread`).

    Returns:
        ``unique_id, cutoff, actual, mean, sd`` per full window of the later backtest months
        (what the paths would have said of that window's total: ``mean + sd * X`` with ``X``
        drawn by ``sp.standard``, the sd from the series' earlier scale and the calibrated
        steps); empty without a calibrated 80 % quantile.
    """
    unit = _unit(cal)
    cols = [ID_COL, "cutoff", "actual", "mean", "sd"]
    sd = pl.col("scale") * ((unit or 0.0) * window_sd(cal.window_profile, sp.phi))
    out = sums.with_columns(sd.alias("sd")).select(cols)
    return out if unit is not None else out.clear()
