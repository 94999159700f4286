"""Candidate models by alias, ensembles of the best k per series, and degenerate-series rules."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TARGET_COL

__all__ = [
    "SEASON",
    "make_model",
    "make_models",
    "fallback_model",
    "ensemble_alias",
    "ensemble_kind",
    "combine",
    "add_ensembles",
    "degenerate_reasons",
    "min_length",
]

SEASON = 12


def make_model(alias: str) -> Any:
    """A statsforecast model for a candidate alias (season length 12)."""
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS, AutoTheta, SeasonalNaive

    factories: dict[str, Any] = {
        "SeasonalNaive": lambda: SeasonalNaive(season_length=SEASON, alias="SeasonalNaive"),
        "AutoETS": lambda: AutoETS(season_length=SEASON, alias="AutoETS"),
        "AutoARIMA": lambda: AutoARIMA(season_length=SEASON, alias="AutoARIMA"),
        "AutoTheta": lambda: AutoTheta(season_length=SEASON, alias="AutoTheta"),
        "AutoCES": lambda: AutoCES(season_length=SEASON, alias="AutoCES"),
    }
    if alias not in factories:
        raise ValueError(f"unknown model '{alias}'; choose from {sorted(factories)}")
    return factories[alias]()


def make_models(aliases: list[str]) -> list[Any]:
    """Models for the aliases, in order."""
    return [make_model(a) for a in aliases]


def fallback_model() -> Any:
    """What statsforecast uses when a candidate fails to fit a series."""
    from statsforecast.models import SeasonalNaive

    return SeasonalNaive(season_length=SEASON)


ENSEMBLE_PREFIX = "Ensemble-"


def ensemble_alias(kind: str) -> str:
    """``mean`` -> ``Ensemble-mean``."""
    return f"{ENSEMBLE_PREFIX}{kind}"


def ensemble_kind(alias: str) -> str | None:
    """``Ensemble-mean`` -> ``mean``; ``None`` for a single model's alias."""
    return alias.removeprefix(ENSEMBLE_PREFIX) if alias.startswith(ENSEMBLE_PREFIX) else None


def combine(stack: np.ndarray, kind: str, axis: int = 0) -> np.ndarray:
    """Members' forecasts combined along ``axis``: ``median`` or ``mean``, NaN members skipped."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        fn = np.nanmedian if kind == "median" else np.nanmean
        return np.asarray(fn(stack, axis=axis), dtype=np.float64)


def min_length(horizon: int, windows: int, step: int) -> int:
    """Shortest series the rolling-origin backtest can use (two seasons before the first cutoff)."""
    return 2 * SEASON + horizon + step * (windows - 1)


def degenerate_reasons(df: pl.DataFrame, need: int) -> pl.DataFrame:
    """Series that the candidates cannot handle, with the reason.

    Args:
        df: ``unique_id, ds, y``.
        need: minimum length for the backtest (see :func:`min_length`).

    Returns:
        ``unique_id, reason`` for series that are all zeros, constant or too short.
    """
    stats = df.group_by(ID_COL).agg(
        pl.len().alias("n"),
        (pl.col(TARGET_COL).abs().max() == 0).alias("zero"),
        (pl.col(TARGET_COL).max() == pl.col(TARGET_COL).min()).alias("const"),
    )
    return (
        stats.with_columns(
            pl.when(pl.col("zero"))
            .then(pl.lit("all_zero"))
            .when(pl.col("const"))
            .then(pl.lit("constant"))
            .when(pl.col("n") < need)
            .then(pl.concat_str(pl.lit("short: "), pl.col("n"), pl.lit(f" months < {need}")))
            .otherwise(None)
            .alias("reason")
        )
        .filter(pl.col("reason").is_not_null())
        .select(ID_COL, "reason")
        .sort(ID_COL)
    )


def add_ensembles(
    cv: pl.DataFrame,
    ranks: pl.DataFrame,
    candidates: list[str],
    kinds: list[str],
    k: int,
) -> pl.DataFrame:
    """Add ``Ensemble-<kind>`` columns combining each series' ``k`` best candidates.

    Args:
        cv: frame with ``unique_id`` and one column per candidate.
        ranks: ``unique_id, model, rank`` (1 = best) from the backtest.
        candidates: candidate columns.
        kinds: ``mean`` and/or ``median``.
        k: members per series (at most the number of candidates).
    """
    if not kinds or len(candidates) < 2:
        return cv
    k = min(k, len(candidates))
    top = ranks.filter(pl.col("rank") <= k)
    member = {
        m: pl.col(ID_COL).is_in(top.filter(pl.col("model") == m)[ID_COL].implode())
        for m in candidates
    }
    masked = cv.select([pl.when(member[m]).then(pl.col(m)).otherwise(None) for m in candidates])
    arr = masked.to_numpy().astype(np.float64)
    out = {ensemble_alias(kind): combine(arr, kind, axis=1) for kind in kinds}
    return cv.with_columns([pl.Series(name, v) for name, v in out.items()])
