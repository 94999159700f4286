"""The suite's tables: per data set and pooled (RAC left out of every pooled row)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, ROOT_ID
from forecasting.reliability import budget_probabilities
from forecasting.training.intervals import covered

from .data import SINGLES
from .protocol import (
    ANNUAL_LEVELS,
    BUDGETS,
    COMBINATION,
    KINDS,
    LEVELS,
    POOLED,
    REFERENCES,
    methods,
)

__all__ = [
    "dataset_order",
    "accuracy_table",
    "pbs_levels_table",
    "coverage_tables",
    "reliability_inputs",
    "annual_table",
    "false_alarm_table",
    "recall_table",
    "timing_table",
    "rac_table",
]


def _fmean(col: str) -> pl.Expr:
    """Mean of a column's finite values."""
    c = pl.col(col).cast(pl.Float64)
    return c.filter(c.is_finite()).mean()


def _with_pooled(df: pl.DataFrame, by: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    """``aggs`` per ``by`` (which includes ``dataset``) plus ``pooled`` rows (RAC left out)."""
    per = df.group_by(by).agg(aggs)
    rest = [b for b in by if b != "dataset"]
    src = df.filter(pl.col("panel") != "rac")
    pooled = src.group_by(rest).agg(aggs) if rest else src.select(aggs)
    pooled = pooled.with_columns(pl.lit(POOLED).alias("dataset"))
    return pl.concat([per, pooled.select(per.columns)], how="vertical_relaxed")


def _ordered(df: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    rank = {d: i for i, d in enumerate(order)}
    return df.sort(
        pl.col("dataset").replace_strict(rank, default=len(order), return_dtype=pl.Int64)
    )


def _present(acc: pl.DataFrame) -> list[str]:
    """Scored methods found in an accuracy frame, in the tables' order."""
    found = set(acc["method"].unique().to_list())
    return [m for m in methods(REFERENCES) if m in found]


def dataset_order(panels: Iterable[str]) -> list[str]:
    """Rows of the per-data-set tables: PBS, the singles, us_employment, RAC, pooled."""
    singles = [s.dataset for s in SINGLES]
    names = {"pbs": ["pbs"], "singles": singles, "us_employment": ["us_employment"]}
    return [d for p in panels for d in names.get(p, [p])] + [POOLED]


def accuracy_table(acc: pl.DataFrame, metric: str, order: list[str]) -> pl.DataFrame:
    """Mean ``metric`` per data set and pooled, every method, and spendcast's ratios."""
    per = _with_pooled(acc, ["dataset", "method"], [_fmean(metric).alias("v")])
    wide = per.pivot(on="method", index="dataset", values="v")
    n = _with_pooled(
        acc.filter(pl.col("method") == "spendcast"), ["dataset"], [pl.len().alias("n")]
    )
    rows = []
    cols = _present(acc)
    for r in wide.join(n, on="dataset").iter_rows(named=True):
        single = {m: r[m] for m in REFERENCES if r.get(m) is not None and math.isfinite(r[m])}
        best = min(single, key=lambda m: single[m]) if single else None
        sc, comb, snaive = r.get("spendcast"), r.get(COMBINATION), r.get("SeasonalNaive")
        rows.append(
            {
                **{k: r.get(k) for k in ("dataset", "n", *cols)},
                "best single": best,
                "vs best": sc / single[best] if best and sc is not None else None,
                "vs comb.": sc / comb if sc is not None and comb else None,
                "worse than SNaive": (sc > snaive) if sc is not None and snaive else None,
            }
        )
    return _ordered(pl.DataFrame(rows), order)


def pbs_levels_table(acc: pl.DataFrame) -> pl.DataFrame:
    """PBS MASE by hierarchy level: spendcast, the combination and every reference."""
    pbs = acc.filter(pl.col("panel") == "pbs")
    if pbs.is_empty():
        return pl.DataFrame()
    wide = (
        pbs.group_by("level", "method")
        .agg(_fmean("mase").alias("v"))
        .pivot(on="method", index="level", values="v")
    )
    order = {"total": 0, "Concession": 1, "Type": 2, "ATC1": 3}
    return wide.sort(pl.col("level").replace_strict(order, default=9)).select(
        "level", *_present(pbs)
    )


def _covered(df: pl.DataFrame) -> list[pl.Expr]:
    lv = [lv for lv in LEVELS if f"lo_{lv}" in df.columns]
    return [covered(v).mean().alias(f"{v}%") for v in lv]


def coverage_tables(fc: pl.DataFrame, order: list[str]) -> dict[str, pl.DataFrame]:
    """Coverage of spendcast's intervals: by data set, by horizon step, at the total level."""
    aggs = [pl.len().alias("months"), *_covered(fc)]
    pooled_src = fc.filter(pl.col("panel") != "rac")
    total = fc.filter((pl.col(ID_COL) == ROOT_ID) & pl.col("panel").is_in(["pbs", "rac"]))
    return {
        "coverage": _ordered(_with_pooled(fc, ["dataset"], aggs), order),
        "coverage_by_step": pooled_src.group_by("step").agg(aggs).sort("step"),
        "coverage_total": total.group_by("panel").agg(aggs).sort("panel"),
    }


def reliability_inputs(
    sums: pl.DataFrame, totals: np.ndarray, seed: int
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Five budgets per series-origin at seeded quantiles in [0.02, 0.98] of its path totals.

    Returns:
        ``sums`` with each row's Brier score (``brier``), and the ``(n, 5)`` probabilities
        and outcomes.
    """
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.02, 0.98, (sums.height, BUDGETS))
    if not sums.height:
        empty = np.empty((0, BUDGETS))
        return sums.with_columns(pl.lit(None, pl.Float64).alias("brier")), empty, empty
    p, outcome = budget_probabilities(totals, sums["actual"].to_numpy(), q)
    per_row = ((p - outcome) ** 2).mean(axis=1)
    return sums.with_columns(pl.Series("brier", per_row)), p, outcome


def annual_table(sums: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    """Annual-total coverage (80 and 95 %) and Brier score of the budgets, per data set."""
    aggs = [
        pl.len().alias("series-origins"),
        *[pl.col(f"in_{lv}").mean().alias(f"{lv}%") for lv in ANNUAL_LEVELS],
        _fmean("brier").alias("Brier"),
    ]
    return _ordered(_with_pooled(sums, ["dataset"], aggs), order)


def false_alarm_table(judged: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    """Flagged share of the clean held-out months, per data set and pooled."""
    clean = judged.filter((pl.col("run") == "clean") & pl.col("judged"))
    aggs = [
        pl.len().alias("months"),
        pl.col("flagged").sum().alias("flagged"),
        pl.col("flagged").mean().alias("rate"),
    ]
    return _ordered(_with_pooled(clean, ["dataset"], aggs), order)


DETECTION_MONTHS = 3
"""A shift counts as detected when one of its first this many months is flagged."""


def recall_table(judged: pl.DataFrame) -> pl.DataFrame:
    """Shifted months per kind: ``flagged`` (ANOMALY or LEVEL_SHIFT) and ``rate`` of caught
    months (flagged, or judged inside a level shift the policy reported and accepted: the job
    was told "level changed since M"); per shift (series), ``detected``: flagged within its
    first :data:`DETECTION_MONTHS` months (``detected_rate``); and false alarms on the series
    left clean."""
    shifted = judged.filter((pl.col("run") == "shifted") & pl.col("judged"))
    shifted = shifted.filter(pl.col("panel") != "rac")
    if shifted.is_empty():
        return pl.DataFrame()
    moved = shifted.filter(pl.col("shifted"))
    shift_key = ["panel", "origin", ID_COL, "kind"]
    events = (
        moved.sort("step")
        .group_by(shift_key)
        .agg(pl.col("flagged").head(DETECTION_MONTHS).any().alias("detected"))
        .group_by("kind")
        .agg(
            pl.len().alias("shifts"),
            pl.col("detected").sum().alias("detected"),
            pl.col("detected").mean().alias("detected_rate"),
        )
    )
    kinds = (
        moved.group_by("kind")
        .agg(
            pl.len().alias("months"),
            pl.col("flagged").sum().alias("flagged"),
            pl.col("caught").sum().alias("caught"),
            pl.col("caught").mean().alias("rate"),
        )
        .join(events, on="kind")
        .sort(pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}))
    )
    clean = shifted.filter(pl.col("kind").is_null()).select(
        pl.lit("clean series (false alarms)").alias("kind"),
        pl.len().alias("months"),
        pl.col("flagged").sum().alias("flagged"),
        pl.col("flagged").sum().alias("caught"),
        pl.col("flagged").mean().alias("rate"),
    )
    return pl.concat([kinds, clean], how="diagonal_relaxed")


def timing_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Wall times per panel-origin and in all."""
    df = pl.DataFrame(rows)
    if df.is_empty():
        return df
    sums = df.select(pl.exclude("panel", "origin", "ratio").sum()).with_columns(
        pl.lit("all").alias("panel"), pl.lit("").alias("origin")
    )
    sums = sums.with_columns((pl.col("fit_s") / pl.col("bare_final_s")).alias("ratio"))
    return pl.concat([df, sums.select(df.columns)], how="vertical_relaxed")


def rac_table(rac: dict[str, Any] | None) -> pl.DataFrame:
    """The RAC annual check, one row per method (totals in billions)."""
    if rac is None:
        return pl.DataFrame()
    rows = [
        {"method": k, "total_bn": v["total"] / 1e9, "error_pct": v["error_pct"]}
        for k, v in rac["methods"].items()
    ]
    return pl.DataFrame(rows).with_columns(pl.lit(rac["observed"] / 1e9).alias("observed_bn"))
