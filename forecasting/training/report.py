"""What a training run reports: backtest coverage, metrics (MLflow keys) and the series table."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import parent_id
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.training.backtest import METRIC_NAMES
from forecasting.training.hierarchy import Hierarchy
from forecasting.training.intervals import chosen_rows, coverage, covered
from forecasting.training.models import ensemble_kind

__all__ = ["coverage_table", "run_metrics", "series_frame", "backtest_frame"]

_COVERAGE_SCHEMA = {"hierarchy_level": pl.String, "level": pl.Int64, "coverage": pl.Float64}


def _key(text: str) -> str:
    """``text`` as a piece of an MLflow metric key."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def coverage_table(bt: pl.DataFrame, levels: list[int], level_of: dict[str, str]) -> pl.DataFrame:
    """``hierarchy_level, level, coverage`` of the backtest bounds, ``overall`` and per level."""
    if bt.is_empty():
        return pl.DataFrame(schema=_COVERAGE_SCHEMA)
    df = bt.with_columns(
        pl.col(ID_COL).replace_strict(level_of, return_dtype=pl.String).alias("hierarchy_level")
    )
    groups = [("overall", df), *[(g[0], d) for g, d in df.group_by("hierarchy_level")]]
    rows = [
        {"hierarchy_level": str(name), "level": lv, "coverage": coverage(d, lv)}
        for name, d in groups
        for lv in levels
    ]
    return pl.DataFrame(rows, schema=_COVERAGE_SCHEMA).sort("hierarchy_level", "level")


def _finite_mean(s: pl.Series) -> float:
    v = s.drop_nulls().to_numpy().astype(np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def run_metrics(
    selection: pl.DataFrame,
    scores: pl.DataFrame,
    coverage: pl.DataFrame,
    models: list[str],
    seconds: dict[str, float],
) -> tuple[dict[str, float], pl.DataFrame]:
    """The run's metrics and one row of them per model.

    Args:
        selection: the selection table (each series' chosen model and its scores).
        scores: every model's scores per series.
        coverage: :func:`coverage_table`.
        models: candidates and ensembles, in order.
        seconds: seconds each candidate's final fits took, summed over series (the backtest
            fits every group of candidates in one call, timed as a whole stage).

    Returns:
        ``<metric>``, ``<metric>.level.<level>``, ``<metric>.model.<model>``,
        ``coverage_<L>[.level.<level>]`` (finite values only) and the per-model frame
        ``model, <metrics>, fit_seconds``.
    """
    out: dict[str, float] = {}
    for m in METRIC_NAMES:
        out[m] = _finite_mean(selection[m])
        for (lvl,), d in selection.group_by("hierarchy_level"):
            out[f"{m}.level.{_key(str(lvl))}"] = _finite_mean(d[m])
    rows = []
    for model in models:
        d = scores.filter(pl.col("model") == model)
        row: dict[str, Any] = {"model": model}
        for m in METRIC_NAMES:
            row[m] = _finite_mean(d[m]) if d.height else float("nan")
            out[f"{m}.model.{_key(model)}"] = row[m]
        row["fit_seconds"] = float(seconds.get(model, 0.0))
        rows.append(row)
    for r in coverage.iter_rows(named=True):
        suffix = "" if r["hierarchy_level"] == "overall" else f".level.{_key(r['hierarchy_level'])}"
        out[f"coverage_{r['level']}{suffix}"] = r["coverage"]
    schema = (
        {"model": pl.String} | {m: pl.Float64 for m in METRIC_NAMES} | {"fit_seconds": pl.Float64}
    )
    out = {k: v for k, v in out.items() if np.isfinite(v)}
    return out, pl.DataFrame(rows, schema=schema)


def series_frame(
    hier: Hierarchy,
    selection: pl.DataFrame,
    bt: pl.DataFrame,
    last_ds: dict[str, dt.date],
    levels: list[int],
    top_k: dict[str, list[str]],
    monitor: dict[str, str],
) -> pl.DataFrame:
    """One row per series; ``members`` lists an ensemble's models (comma-separated);
    ``monitor_model`` and ``monitor_members`` name the model monitoring judges with
    (``monitor``: series -> model; the selected one where it has none)."""
    base = pl.DataFrame(
        {
            ID_COL: hier.ids,
            "level": [hier.level_of[u] for u in hier.ids],
            "parent": [parent_id(u) for u in hier.ids],
            "last_ds": [last_ds[u] for u in hier.ids],
        },
        schema={ID_COL: pl.String, "level": pl.String, "parent": pl.String, "last_ds": pl.Date},
    )
    picked = dict(selection.select(ID_COL, "model").iter_rows())
    judged = picked | monitor

    def members_of(models: dict[str, str]) -> pl.Expr:
        listed = {
            u: ",".join(sorted(top_k[u]))
            for u, model in models.items()
            if ensemble_kind(model) is not None and u in top_k
        }
        return pl.col(ID_COL).replace_strict(listed, default=None, return_dtype=pl.String)

    sel = selection.select(ID_COL, "model", "mase", "smape", "fallback_reason").with_columns(
        members_of(picked).alias("members"),
        pl.col(ID_COL)
        .replace_strict(judged, default=None, return_dtype=pl.String)
        .alias("monitor_model"),
        members_of(judged).alias("monitor_members"),
    )
    cov_cols = [f"coverage_{lv}" for lv in levels]
    if bt.height:
        cov = bt.group_by(ID_COL).agg(
            [
                covered(lv).mean().cast(pl.Float64).alias(c)
                for lv, c in zip(levels, cov_cols, strict=True)
            ]
        )
    else:
        cov = pl.DataFrame(schema={ID_COL: pl.String} | {c: pl.Float64 for c in cov_cols})
    return (
        base.join(sel, on=ID_COL, how="left")
        .join(cov, on=ID_COL, how="left")
        .select(
            ID_COL,
            "level",
            "parent",
            "last_ds",
            "model",
            "mase",
            "smape",
            *cov_cols,
            "fallback_reason",
            "members",
            "monitor_model",
            "monitor_members",
        )
    )


def backtest_frame(bt: pl.DataFrame, cv: pl.DataFrame, monitor: dict[str, str]) -> pl.DataFrame:
    """The bundle's ``unique_id, ds, cutoff, h, y, yhat, yhat_monitor`` backtest rows:
    ``yhat`` the chosen model's (``bt``), ``yhat_monitor`` the monitoring model's (``monitor``:
    series -> model, read from every model's rows ``cv``)."""
    if not bt.height:
        return pl.DataFrame(
            schema={
                ID_COL: pl.String,
                TIME_COL: pl.Date,
                "cutoff": pl.Date,
                "h": pl.Int64,
                TARGET_COL: pl.Float64,
                "yhat": pl.Float64,
                "yhat_monitor": pl.Float64,
            }
        )
    keys = [ID_COL, TIME_COL, "cutoff"]
    judged = chosen_rows(cv, monitor, []).select(*keys, pl.col("yhat").alias("yhat_monitor"))
    return bt.select(*keys, "h", TARGET_COL, "yhat").join(judged, on=keys, how="left")
