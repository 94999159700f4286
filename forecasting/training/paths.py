"""Coherent joint sample paths of the reconciled forecasts (annual totals, budget odds).

Bottom series are drawn and summed up the hierarchy (``S``), so every parent path is the
sum of its children's. Each bottom draw is ``mean + sigma * z`` with a two-piece scale
(``sigma_lo`` below the mean, ``sigma_hi`` above) read from that series' reconciled interval
at the widest trained level, so the paths' spread matches the calibrated intervals. ``z``
keeps the dependence of forecast errors: across series, each step draws a whole
cross-section of standardised (centred, unit-variance) backtest errors, so the empirical
correlation between categories is kept exactly (and with it the spread of the parents);
across the horizon, ``z_t = phi z_(t-1) + sqrt(1 - phi^2) e_t`` with ``phi`` the pooled lag-1
autocorrelation of backtest errors within a window, so sums over months (annual totals) keep
the persistence of forecast errors. Clipped at zero when ``nonnegative``.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import polars as pl

from forecasting.data.panel import ROOT_ID, TARGET_COL, TIME_COL
from forecasting.training.backtest import by_id
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import Hierarchy

__all__ = ["sample_paths"]


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


def sample_paths(
    hier: Hierarchy,
    rec: dict[str, np.ndarray],
    residuals: np.ndarray,
    cv: pl.DataFrame,
    chosen: dict[str, str],
    config: TrainConfig,
) -> np.ndarray:
    """``config.n_paths`` coherent paths per series, centred on the reconciled means.

    Args:
        hier: the hierarchy (rows of ``rec`` and ``residuals`` in ``hier.ids`` order).
        rec: reconciled ``mean``, ``lo_L``, ``hi_L``, each (n_series, horizon).
        residuals: (n_series, T) backtest errors of the chosen models.
        cv: backtest rows (error persistence within a window).
        chosen: series -> chosen model.
        config: horizon, levels, number of paths, seed, non-negativity.

    Returns:
        float32 (n_series, n_paths, horizon).
    """
    rng = np.random.default_rng(config.seed)
    bidx = hier.bottom_index()
    mean = rec["mean"][bidx]  # (nb, h)
    lv = max(config.levels)
    z_lv = _z(lv)
    sig_lo = np.maximum(mean - rec[f"lo_{lv}"][bidx], 0.0) / z_lv
    sig_hi = np.maximum(rec[f"hi_{lv}"][bidx] - mean, 0.0) / z_lv
    eps = _error_draws(residuals[bidx], (config.n_paths, config.horizon), rng)
    phi = _error_persistence(cv, chosen, hier.bottom)
    z = _ar1(eps, phi)
    dev = np.where(z < 0, z * sig_lo.T[None], z * sig_hi.T[None])  # (n_paths, h, nb)
    dev += _common_shock(hier, rec, dev, lv, phi, rng)
    bottom = mean.T[None] + dev
    if config.nonnegative:
        bottom = np.maximum(bottom, 0.0)
    full = np.einsum("sb,phb->sph", hier.S, bottom)
    return full.astype(np.float32)


def _error_draws(
    residuals: np.ndarray, draws: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """(n_paths, h, nb) cross-sections of standardised backtest errors of the bottom series.

    Series without spread in their errors draw standard normals; every series does when the
    backtest has fewer than two errors per series.
    """
    res = residuals.astype(np.float64)
    width, nb = res.shape[1], res.shape[0]
    sd = res.std(axis=1)
    ok = np.isfinite(sd) & (sd > 0)
    if width < 2 or not ok.any():
        return rng.standard_normal((*draws, nb))
    pool = np.zeros((width, nb))
    pool[:, ok] = ((res[ok] - res[ok].mean(axis=1, keepdims=True)) / sd[ok, None]).T
    eps = pool[rng.integers(0, width, size=draws)]
    eps[..., ~ok] = rng.standard_normal((*draws, int((~ok).sum())))
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


def _error_persistence(cv: pl.DataFrame, chosen: dict[str, str], bottom: list[str]) -> float:
    """Pooled lag-1 autocorrelation of backtest errors within a window, in [0, 0.95]."""
    if cv.is_empty():
        return 0.0
    cv_by = by_id(cv)
    num = den = 0.0
    for u in bottom:
        m, sub = chosen.get(u), cv_by.get(u)
        if m is None or sub is None:
            continue
        for part in sub.sort("cutoff", TIME_COL).partition_by("cutoff", maintain_order=True):
            e = (part[TARGET_COL] - part[m]).to_numpy().astype(np.float64)
            e = e[np.isfinite(e)]
            if e.size < 3 or e.std() == 0:
                continue
            e = (e - e.mean()) / e.std()
            num += float(np.sum(e[1:] * e[:-1]))
            den += float(np.sum(e * e))
    return float(np.clip(num / den, 0.0, 0.95)) if den > 0 else 0.0
