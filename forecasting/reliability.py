"""Reliability of budget probabilities read from sample paths.

A trained bundle answers ``P(total > budget)`` with the share of its sample-path totals above
the budget. Whether those probabilities mean what they say is checked on held-out data: put
budgets at quantiles of each forecast's sample totals, compare the probabilities with what
happened (the Brier score, against the no-skill climatological forecast), and bin them
(a reliability table and diagram: a calibrated forecaster's points lie on the diagonal).

Pure numpy; :func:`plot_reliability` alone imports matplotlib (Agg canvas, no pyplot state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "budget_probabilities",
    "brier_score",
    "climatology_brier",
    "ReliabilityTable",
    "reliability_table",
    "plot_reliability",
]


def _quantile_rows(sorted_totals: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default) of each sorted row at its own ``q``."""
    n = sorted_totals.shape[-1]
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    b_lo = np.take_along_axis(sorted_totals, lo, axis=-1)
    b_hi = np.take_along_axis(sorted_totals, hi, axis=-1)
    return b_lo + (pos - lo) * (b_hi - b_lo)


def budget_probabilities(
    sample_totals: np.ndarray, actual: np.ndarray, quantiles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``P(total > budget)`` and the outcome, for budgets at quantiles of the sample totals.

    Args:
        sample_totals: ``(..., n_paths)`` sampled totals, one row per forecast (e.g. a
            series' sample paths summed over the year).
        actual: ``(...)`` the realised total of each row.
        quantiles: ``(k,)`` or ``(..., k)`` levels in [0, 1]; each budget is that quantile
            of its row's sample totals (linear interpolation).

    Returns:
        ``p`` ``(..., k)``: share of the row's sample totals strictly above each budget;
        ``outcome`` ``(..., k)`` bool: ``actual > budget``.

    Raises:
        ValueError: shapes that do not match, no paths, non-finite values or levels
            outside [0, 1].
    """
    totals = np.asarray(sample_totals, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if totals.ndim == 0 or totals.shape[-1] == 0:
        raise ValueError("sample_totals needs a last axis of at least one path")
    if act.shape != totals.shape[:-1]:
        raise ValueError(f"actual has shape {act.shape}, expected {totals.shape[:-1]}")
    if q.ndim == 1:
        q = np.broadcast_to(q, (*totals.shape[:-1], q.size))
    if q.shape[:-1] != totals.shape[:-1]:
        raise ValueError(f"quantiles have shape {q.shape}, expected (k,) or (..., k)")
    if not (np.isfinite(totals).all() and np.isfinite(act).all()):
        raise ValueError("sample_totals and actual must be finite")
    if not (np.isfinite(q).all() and (q >= 0).all() and (q <= 1).all()):
        raise ValueError("quantiles must lie in [0, 1]")
    srt = np.sort(totals, axis=-1)
    budget = _quantile_rows(srt, q)
    at_most = (srt[..., None, :] <= budget[..., :, None]).sum(axis=-1)
    p = 1.0 - at_most / srt.shape[-1]
    return p, act[..., None] > budget


def _pair(p: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat float probabilities and 0/1 outcomes, checked."""
    pf = np.asarray(p, dtype=np.float64).ravel()
    of = np.asarray(outcome, dtype=np.float64).ravel()
    if pf.shape != of.shape:
        raise ValueError(f"p has {pf.size} values, outcome {of.size}")
    if not pf.size:
        raise ValueError("no forecasts to score")
    if not (np.isfinite(pf).all() and (pf >= 0).all() and (pf <= 1).all()):
        raise ValueError("probabilities must lie in [0, 1]")
    if not np.isin(of, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0/1 (or booleans)")
    return pf, of


def brier_score(p: np.ndarray, outcome: np.ndarray) -> float:
    """Mean squared difference between probabilities and 0/1 outcomes (0 is perfect)."""
    pf, of = _pair(p, outcome)
    return float(np.mean((pf - of) ** 2))


def climatology_brier(outcome: np.ndarray) -> float:
    """Brier score of the no-skill forecast that always says the observed base rate."""
    of = np.asarray(outcome, dtype=np.float64).ravel()
    return brier_score(np.full(of.shape, of.mean() if of.size else 0.0), of)


@dataclass(frozen=True)
class ReliabilityTable:
    """Probabilities binned on [0, 1]: what was forecast against what happened.

    Attributes:
        lower: each bin's lower edge.
        upper: each bin's upper edge (the last bin includes 1).
        mean_forecast: mean probability in the bin (NaN when empty).
        observed: observed frequency of the event in the bin (NaN when empty).
        count: forecasts in the bin (the counts sum to the number of forecasts).
    """

    lower: np.ndarray
    upper: np.ndarray
    mean_forecast: np.ndarray
    observed: np.ndarray
    count: np.ndarray

    @property
    def bins(self) -> int:
        return int(self.count.size)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per bin: ``bin, lower, upper, mean_forecast, observed, count``."""
        return [
            {
                "bin": i,
                "lower": float(self.lower[i]),
                "upper": float(self.upper[i]),
                "mean_forecast": float(self.mean_forecast[i]),
                "observed": float(self.observed[i]),
                "count": int(self.count[i]),
            }
            for i in range(self.bins)
        ]


def reliability_table(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> ReliabilityTable:
    """Bin forecasts into ``bins`` equal-width probability bins.

    Args:
        p: probabilities in [0, 1], any shape.
        outcome: matching booleans (or 0/1).
        bins: number of bins on [0, 1].
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    pf, of = _pair(p, outcome)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, pf, side="right") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_forecast = np.bincount(idx, weights=pf, minlength=bins) / count
        observed = np.bincount(idx, weights=of, minlength=bins) / count
    return ReliabilityTable(edges[:-1], edges[1:], mean_forecast, observed, count)


def plot_reliability(
    table: ReliabilityTable, path: str | Path, *, title: str = "Reliability of P(total > budget)"
) -> Path:
    """Write a reliability diagram (PNG): observed frequency against forecast probability.

    The diagonal is perfect calibration; the lower panel shows how many forecasts each bin
    holds.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 6.5))
    FigureCanvasAgg(fig)
    ax, ax_n = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    seen = table.count > 0
    ax.plot(
        table.mean_forecast[seen],
        table.observed[seen],
        marker="o",
        color="tab:blue",
        label="forecasts",
    )
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    centres = (table.lower + table.upper) / 2
    ax_n.bar(centres, table.count, width=(table.upper - table.lower) * 0.9, color="tab:blue")
    ax_n.set_xlabel("forecast probability")
    ax_n.set_ylabel("count")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, format="png")
    return out
