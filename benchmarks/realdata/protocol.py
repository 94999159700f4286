"""What the real-data suite measures: horizon, origins, levels, references and shifts."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from forecasting.training.config import TrainConfig

__all__ = [
    "ROOT",
    "HORIZON",
    "SEASON",
    "ORIGINS",
    "LEVELS",
    "ANNUAL_LEVELS",
    "BUDGETS",
    "MONITOR_LEVEL",
    "Z_99",
    "FLAGGED",
    "NOT_JUDGED",
    "KINDS",
    "REFERENCES",
    "QUICK_REFERENCES",
    "FINAL",
    "COMBINATION",
    "PANELS",
    "QUICK_PANELS",
    "POOLED",
    "EXPERIMENT",
    "RAC_YEAR",
    "methods",
    "quick_config",
    "quiet",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (the checkout)."""

HORIZON = 12
SEASON = 12
ORIGINS = {"last": 12, "earlier": 24}
"""Origin name -> months held out after the training end (the test is the first 12)."""
LEVELS = (50, 80, 95, 99)
"""Interval levels whose coverage is measured on held-out months."""
ANNUAL_LEVELS = (80, 95)
"""Levels of the annual-total intervals (sample paths summed over the 12 months)."""
BUDGETS = 5
"""Budgets per series-origin, at seeded uniform quantiles in [0.02, 0.98] of the path totals."""

MONITOR_LEVEL = 99
Z_99 = 2.5758
"""Upper 99.5 % normal quantile: a level-99 interval is mean +- Z_99 sigma."""
FLAGGED = ("ANOMALY", "LEVEL_SHIFT")
"""Caught statuses; a future policy may report accepted level shifts as ``LEVEL_SHIFT``."""
NOT_JUDGED = ("INSUFFICIENT_DATA", "OUT_OF_HORIZON", "UNKNOWN_SERIES")
KINDS = ("+4sigma", "-4sigma", "x1.5", "x0.6")
"""Injected level shifts, given round robin to a seeded third of the series."""

REFERENCES = ("SeasonalNaive", "AutoETS", "AutoTheta", "AutoCES", "AutoARIMA")
"""Bare statsforecast references (AutoARIMA without regressor)."""
QUICK_REFERENCES = REFERENCES[:4]
"""``--quick`` leaves out AutoARIMA (the slow one)."""
FINAL = ("AutoETS", "AutoTheta", "AutoCES")
"""The mean combination's members."""
COMBINATION = "Combination"

PANELS = ("pbs", "singles", "us_employment", "rac")
QUICK_PANELS = ("pbs", "singles", "rac")
POOLED = "pooled"
EXPERIMENT = "spendcast-suite"
RAC_YEAR = 2024


def methods(references: tuple[str, ...]) -> tuple[str, ...]:
    """Scored columns: spendcast, each reference, the combination."""
    return ("spendcast", *references, COMBINATION)


def quick_config() -> TrainConfig:
    """The ``--quick`` config without ``--config``: three fast candidates, no calendar."""
    return TrainConfig(models=["SeasonalNaive", "AutoTheta", "AutoCES"], calendar=False)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the numerical warnings of statsforecast fits on short or odd series."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield
