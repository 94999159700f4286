"""Candidate models by alias, ensembles of the best k per series, and degenerate-series rules."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL

__all__ = [
    "SEASON",
    "EXOGENOUS",
    "make_model",
    "make_models",
    "fallback_model",
    "ensemble_alias",
    "ensemble_kind",
    "combine",
    "add_ensembles",
    "degenerate_reasons",
    "fallback_rule",
    "fallback_table",
    "degenerate_forecast",
    "MIN_LENGTH",
    "model_frame",
    "candidate_groups",
]

SEASON = 12

#: Candidates fitted with the exogenous columns of a frame (French working days per month).
EXOGENOUS = ("AutoARIMA",)


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


def model_frame(df: pl.DataFrame, aliases: Sequence[str]) -> pl.DataFrame:
    """The columns candidates are fitted on: exogenous ones only for :data:`EXOGENOUS`
    (a group of :func:`candidate_groups` is all one or all the other)."""
    exogenous = any(a in EXOGENOUS for a in aliases)
    return df if exogenous else df.select(ID_COL, TIME_COL, TARGET_COL)


def candidate_groups(aliases: Sequence[str]) -> list[tuple[str, ...]]:
    """The candidates fitted together in one statsforecast call, in order.

    Every candidate without exogenous columns in one group (one call, one process pool, one
    load balance for all of them: fitting four candidates one call each cost 1.2 x one call
    with all four, ``benchmarks/train_speed.py``), then each :data:`EXOGENOUS` one alone (it
    is fitted on the working-days column the others must not see).
    """
    plain = tuple(a for a in aliases if a not in EXOGENOUS)
    return ([plain] if plain else []) + [(a,) for a in aliases if a in EXOGENOUS]


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


MIN_LENGTH = 2 * SEASON + 1
"""Shortest history the candidates model: two full seasons and one month (shorter series get
:func:`fallback_rule`'s naive forecast)."""


def degenerate_reasons(df: pl.DataFrame, need: int) -> pl.DataFrame:
    """Series that the candidates cannot handle, with the reason.

    Args:
        df: ``unique_id, ds, y``.
        need: minimum length the candidates model (see :data:`MIN_LENGTH`).

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


def fallback_rule(reason: str, n_obs: int) -> str:
    """What a degenerate series is forecast with: ``SeasonalNaive`` for a short series with
    at least one season of history, ``Naive`` (the last value) otherwise."""
    return "SeasonalNaive" if reason.startswith("short") and n_obs >= SEASON else "Naive"


def fallback_table(df: pl.DataFrame, need: int) -> pl.DataFrame:
    """``unique_id, model, reason`` of the degenerate series (:func:`degenerate_reasons`) and
    the model each falls back to (:func:`fallback_rule`)."""
    n_obs = dict(df.group_by(ID_COL).len().iter_rows())
    rows = [
        {ID_COL: u, "model": fallback_rule(reason, n_obs[u]), "reason": reason}
        for u, reason in degenerate_reasons(df, need).iter_rows()
    ]
    return pl.DataFrame(rows, schema={ID_COL: pl.String, "model": pl.String, "reason": pl.String})


def degenerate_forecast(
    y: np.ndarray, reason: str, h: int, levels: list[int]
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Point forecast, half-widths per level and in-sample fit of a degenerate series.

    All-zero and constant series repeat their value with zero width; short ones follow
    :func:`fallback_rule`, with half-widths from the quantiles of their in-sample absolute
    errors growing with the square root of the step.
    """
    if reason in ("all_zero", "constant"):
        return np.full(h, y[-1]), {lv: np.zeros(h) for lv in levels}, np.full(len(y), y[-1])
    lag = SEASON if fallback_rule(reason, len(y)) == "SeasonalNaive" else 1
    mean = np.array([y[len(y) - lag + (j % lag)] for j in range(h)])
    fitted = np.concatenate([np.full(lag, np.nan), y[:-lag]])
    err = np.abs(y - fitted)
    err = err[np.isfinite(err)]
    scale = np.sqrt(np.arange(1, h + 1))
    half = {lv: (np.quantile(err, lv / 100) if err.size else 0.0) * scale for lv in levels}
    return mean, half, fitted


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
