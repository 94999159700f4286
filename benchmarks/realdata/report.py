"""The suite's report: every table and the JSON summary, from the runs' frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from forecasting.reliability import (
    ReliabilityTable,
    brier_score,
    climatology_brier,
    reliability_table,
)

from .protocol import POOLED, REFERENCES, methods
from .tables import (
    accuracy_table,
    annual_table,
    coverage_tables,
    dataset_order,
    false_alarm_table,
    pbs_levels_table,
    rac_table,
    recall_table,
    reliability_inputs,
    timing_table,
)

__all__ = [
    "Frames",
    "Report",
    "accuracy_summary",
    "calibration_summary",
    "monitoring_summary",
    "pooled_reliability",
    "time_summary",
    "build_report",
]


@dataclass
class Frames:
    """What every panel-origin produced, as frames (the trained models are not kept).

    Attributes:
        forecasts: held-out months with spendcast's forecast and bounds and the references.
        accuracy: MASE and sMAPE per series-origin and method.
        annual: annual totals per series-origin with the path intervals.
        path_totals: ``(n, n_paths)`` sample-path totals, rows as in ``annual``.
        judgements: month-by-month judgements (clean and shifted runs).
        fallbacks: series spendcast did not model.
        timings: wall times per panel-origin.
        rac: the RAC annual check, when RAC ran.
    """

    forecasts: list[pl.DataFrame] = field(default_factory=list)
    accuracy: list[pl.DataFrame] = field(default_factory=list)
    annual: list[pl.DataFrame] = field(default_factory=list)
    path_totals: list[np.ndarray] = field(default_factory=list)
    judgements: list[pl.DataFrame] = field(default_factory=list)
    fallbacks: list[pl.DataFrame] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    rac: dict[str, Any] | None = None


@dataclass
class Report:
    """The printed and written results: named tables and the JSON summary."""

    tables: dict[str, pl.DataFrame]
    summary: dict[str, Any]
    reliability: ReliabilityTable | None = None
    """The pooled budgets' reliability table (None without budgets)."""


def _records(df: pl.DataFrame, key: str) -> dict[str, dict[str, Any]]:
    """``{row[key]: {column: value}}`` of a small table."""
    return {str(r.pop(key)): r for r in df.iter_rows(named=True)} if df.height else {}


def _row(df: pl.DataFrame, key: str, value: str) -> dict[str, Any]:
    return _records(df, key).get(value, {})


def accuracy_summary(tables: dict[str, pl.DataFrame]) -> dict[str, Any]:
    """Pooled and per-data-set MASE / sMAPE per method, best single and ratios."""
    mase, smape = (
        _records(tables["accuracy_mase"], "dataset"),
        _records(tables["accuracy_smape"], "dataset"),
    )
    cols = [m for m in methods(REFERENCES) if m in tables["accuracy_mase"].columns]
    by = {
        d: {"n": r["n"], **{m: {"mase": r[m], "smape": smape[d][m]} for m in cols}}
        for d, r in mase.items()
    }
    pooled = mase.get(POOLED, {})
    return {
        "pooled": by.get(POOLED, {}),
        "by_dataset": {d: v for d, v in by.items() if d != POOLED},
        "best_single": pooled.get("best single"),
        "ratio_best_single": pooled.get("vs best"),
        "ratio_combination": pooled.get("vs comb."),
        "worse_than_seasonal_naive": [
            d for d, r in mase.items() if d != POOLED and r["worse than SNaive"]
        ],
    }


def _levels_of(row: dict[str, Any]) -> dict[str, float]:
    return {k.rstrip("%"): v for k, v in row.items() if k.endswith("%")}


def calibration_summary(tables: dict[str, pl.DataFrame], rel: dict[str, Any]) -> dict[str, Any]:
    """Coverage (pooled, per data set, per step, total level), annual coverage, Brier."""
    cov = _records(tables["coverage"], "dataset")
    ann = _records(tables["annual"], "dataset")
    return {
        "coverage": {
            "pooled": _levels_of(cov.get(POOLED, {})),
            "by_dataset": {d: _levels_of(r) for d, r in cov.items() if d != POOLED},
            "by_step": {
                k: _levels_of(r) for k, r in _records(tables["coverage_by_step"], "step").items()
            },
            "total_level": {
                k: _levels_of(r) for k, r in _records(tables["coverage_total"], "panel").items()
            },
        },
        "annual_coverage": {
            "pooled": _levels_of(ann.get(POOLED, {})),
            "by_dataset": {d: _levels_of(r) for d, r in ann.items() if d != POOLED},
        },
        "reliability": rel,
    }


def monitoring_summary(tables: dict[str, pl.DataFrame], shifts: bool) -> dict[str, Any]:
    """False alarms on clean months; recall per kind of shift."""
    fa = _records(tables["false_alarms"], "dataset")
    rec = _records(tables["recall"], "kind")
    clean = rec.pop("clean series (false alarms)", {})
    return {
        "shifts": shifts,
        "false_alarm": {
            "pooled": fa.get(POOLED, {}).get("rate"),
            "pbs": fa.get("pbs", {}).get("rate"),
            "by_dataset": {d: r["rate"] for d, r in fa.items() if d != POOLED},
        },
        "recall": {k: r["rate"] for k, r in rec.items()},
        "shift_detection": {k: r.get("detected_rate") for k, r in rec.items()},
        "shifted_run_false_alarm": clean.get("rate"),
    }


def pooled_reliability(
    sums: pl.DataFrame, p: np.ndarray, outcome: np.ndarray
) -> tuple[dict[str, Any], ReliabilityTable | None]:
    """Brier score, its climatological reference and the reliability table (RAC left out)."""
    keep = (sums["panel"] != "rac").to_numpy() if sums.height else np.zeros(0, dtype=bool)
    if not keep.any():
        return {"n": 0, "brier": None, "brier_climatology": None}, None
    table = reliability_table(p[keep], outcome[keep], bins=10)
    return {
        "n": int(p[keep].size),
        "brier": brier_score(p[keep], outcome[keep]),
        "brier_climatology": climatology_brier(outcome[keep]),
        "table": table.rows(),
    }, table


def time_summary(timings: pl.DataFrame) -> dict[str, Any]:
    """Total fit and bare final-fit seconds and their ratio."""
    total = _row(timings, "panel", "all")
    return {
        "fit_seconds": total.get("fit_s"),
        "bare_final_seconds": total.get("bare_final_s"),
        "ratio": total.get("ratio"),
    }


def build_report(suite: Frames, info: dict[str, Any], *, seed: int) -> Report:
    """Every table and the JSON summary from the suite's frames."""
    order = dataset_order(info["panels"])
    fc = pl.concat(suite.forecasts, how="diagonal_relaxed")
    acc = pl.concat(suite.accuracy, how="diagonal_relaxed")
    sums, p, outcome = reliability_inputs(
        pl.concat(suite.annual, how="diagonal_relaxed"), np.concatenate(suite.path_totals), seed
    )
    judged = pl.concat(suite.judgements, how="diagonal_relaxed")
    fallbacks = pl.concat(suite.fallbacks, how="diagonal_relaxed")
    rel, rel_table = pooled_reliability(sums, p, outcome)
    tables = {
        "accuracy_series": acc,
        "accuracy_mase": accuracy_table(acc, "mase", order),
        "accuracy_smape": accuracy_table(acc, "smape", order),
        "accuracy_pbs_levels": pbs_levels_table(acc),
        **coverage_tables(fc, order),
        "annual": annual_table(sums, order),
        "annual_series": sums,
        "reliability": pl.DataFrame(rel.get("table", [])),
        "false_alarms": false_alarm_table(judged, order),
        "recall": recall_table(judged),
        "judgements": judged,
        "fallbacks": fallbacks,
        "timings": timing_table(suite.timings),
        "rac": rac_table(suite.rac),
    }
    summary: dict[str, Any] = {
        "suite": info,
        "accuracy": accuracy_summary(tables),
        **calibration_summary(tables, {k: v for k, v in rel.items() if k != "table"}),
        "monitoring": monitoring_summary(tables, info["shifts"]),
        "rac": suite.rac,
        "time": time_summary(tables["timings"]),
        "fallbacks": {
            "count": fallbacks.height,
            "long_count": fallbacks.filter(pl.col("train_months") >= 25).height,
        },
    }
    return Report(tables, summary, rel_table)
