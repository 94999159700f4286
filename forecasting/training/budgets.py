"""Reliability of ``P(total > budget)`` on the backtest: do the probabilities come true?

Planners act on the probability that a year's total exceeds a budget; it must mean what it
says (when it says 30 %, it happens about 30 % of the time). On every full 12-month window of
the later backtest months, the total the sample paths would have given (the window's forecast
total plus the paths' spread for such a total, normal or heavy-tailed as the paths are, see
:func:`~forecasting.training.paths.window_totals` and :class:`~forecasting.training.paths.Spread`)
is drawn :data:`DRAWS` times, budgets are
set at :data:`BUDGETS` seeded random quantiles in [0.02, 0.98] of those draws, and each
``P(total > budget)`` is compared with what the window's actual total did
(:mod:`forecasting.reliability`: Brier score, its no-skill reference, reliability table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from forecasting.reliability import (
    ReliabilityTable,
    brier_score,
    budget_probabilities,
    climatology_brier,
    reliability_table,
)
from forecasting.training.paths import Spread

__all__ = ["BudgetReliability", "budget_reliability", "DRAWS", "BUDGETS"]

DRAWS = 400
BUDGETS = 5


@dataclass(frozen=True)
class BudgetReliability:
    """How reliable the backtest's ``P(total > budget)`` were.

    Attributes:
        windows: full backtest windows scored.
        brier: Brier score of the probabilities.
        climatology: Brier score of always saying the observed frequency (no skill).
        table: the reliability table (10 bins of forecast probability).
    """

    windows: int
    brier: float
    climatology: float
    table: ReliabilityTable

    def frame(self) -> pl.DataFrame:
        """The reliability table as a frame (MLflow artifact)."""
        t = self.table
        return pl.DataFrame(
            {
                "lower": t.lower,
                "upper": t.upper,
                "mean_forecast": t.mean_forecast,
                "observed": t.observed,
                "count": t.count,
            }
        )


def budget_reliability(
    totals: pl.DataFrame, spread: Spread | None = None, seed: int = 0
) -> BudgetReliability | None:
    """Score budgets on ``totals`` (``actual, mean, sd`` per window); None without windows.

    ``spread`` draws the standardised window sums (normal when None or without tails).
    """
    ok = totals.filter(
        pl.col("actual").is_finite() & pl.col("mean").is_finite() & (pl.col("sd") > 0)
    )
    if ok.is_empty():
        return None
    rng = np.random.default_rng(seed)
    shape = (spread or Spread()).standard(rng, (ok.height, DRAWS))
    draws = ok["mean"].to_numpy()[:, None] + ok["sd"].to_numpy()[:, None] * shape
    quantiles = rng.uniform(0.02, 0.98, size=(ok.height, BUDGETS))
    p, outcome = budget_probabilities(draws, ok["actual"].to_numpy(), quantiles)
    return BudgetReliability(
        windows=ok.height,
        brier=brier_score(p, outcome),
        climatology=climatology_brier(outcome),
        table=reliability_table(p, outcome),
    )
