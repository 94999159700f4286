"""Runs of an experiment side by side: a table sorted by primary metric and a chart."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from forecasting.errors import SpendcastError
from forecasting.tracking.client import connect, tracking_uri

__all__ = ["list_runs", "compare_runs"]

_EXTRA_METRICS = ("metric:smape", "metric:rmsse", "metric:time.total", "metric:fit_seconds")


def list_runs(experiment: str) -> pl.DataFrame:
    """Runs of an experiment: run id, name, status, params and metrics (one row per run)."""
    mlflow_client = connect()
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        raise SpendcastError(f"no experiment named {experiment!r} in {tracking_uri()}")
    rows = []
    for r in mlflow_client.search_runs([exp.experiment_id], max_results=1000):
        rows.append(
            {
                "run_id": r.info.run_id,
                "run_name": r.info.run_name,
                "status": r.info.status,
                "config_models": r.data.params.get("models"),
                "primary_metric": r.data.params.get("primary_metric", "mase"),
                **{f"metric:{k}": v for k, v in r.data.metrics.items()},
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def compare_runs(experiment: str, out: str | Path) -> tuple[pl.DataFrame, list[str]]:
    """Finished runs of ``experiment`` sorted by primary metric, and a PNG chart at ``out``.

    Returns:
        The table (``label`` + metric columns) and the metric columns shown.
    """
    from forecasting import plots
    from forecasting.data.panel import atomic_path

    runs = list_runs(experiment)
    if runs.is_empty() or "metric:mase" not in runs.columns:
        raise SpendcastError(f"experiment {experiment!r} has no finished training runs")
    runs = runs.filter(pl.col("status") == "FINISHED")
    primary = runs["primary_metric"][0] if runs.height else "mase"
    wanted = _wanted(primary, [c for c in runs.columns if c.startswith("metric:")])
    table = (
        runs.with_columns(
            pl.concat_str(
                [pl.col("run_name").fill_null(""), pl.col("run_id").str.slice(0, 8)], separator=" "
            ).alias("label")
        )
        .sort(f"metric:{primary}", nulls_last=True)
        .select(["label", "run_id", "config_models", *wanted])
        .rename({c: c.removeprefix("metric:") for c in wanted})
    )
    shown = [c.removeprefix("metric:") for c in wanted]
    chart_metrics = [c for c in shown if not c.startswith("time") and c != "fit_seconds"]
    suffix = Path(out).suffix or ".png"
    with atomic_path(out) as tmp:
        png = tmp.with_suffix(suffix)
        plots.compare_chart(table, chart_metrics, png)
        png.replace(tmp)
    return table, shown


def _wanted(primary: str, cols: list[str]) -> list[str]:
    """The primary metric first, then its per-level values, coverages, other errors, times."""
    return [f"metric:{primary}"] + sorted(
        c
        for c in cols
        if c != f"metric:{primary}"
        and (
            c.startswith(f"metric:{primary}.level.")
            or (c.startswith("metric:coverage_") and "." not in c)
            or c in _EXTRA_METRICS
        )
    )
