"""Charts logged with training runs: fan charts, metric by model, run comparison (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from forecasting.bundle import Bundle, depth  # noqa: E402
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL  # noqa: E402

__all__ = ["fan_charts", "fan_chart", "metric_by_model", "compare_chart"]


def fan_chart(bundle: Bundle, unique_id: str, path: Path, history_months: int = 48) -> Path:
    """History, mean forecast and nested interval bands of one series."""
    hist = bundle.history.filter(pl.col(ID_COL) == unique_id).sort(TIME_COL).tail(history_months)
    fc = bundle.forecasts.filter(pl.col(ID_COL) == unique_id).sort(TIME_COL)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(hist[TIME_COL].to_list(), hist[TARGET_COL].to_list(), color="black", lw=1.2)
    for i, lvl in enumerate(sorted(bundle.meta.levels, reverse=True)):
        lo, hi = f"lo_{lvl}", f"hi_{lvl}"
        if lo in fc.columns:
            ax.fill_between(
                fc[TIME_COL].to_list(),
                fc[lo].to_list(),
                fc[hi].to_list(),
                color="tab:blue",
                alpha=0.12 + 0.1 * i,
                label=f"{lvl}%",
                lw=0,
            )
    ax.plot(fc[TIME_COL].to_list(), fc["mean"].to_list(), color="tab:blue", lw=1.5, label="mean")
    ax.set_title(unique_id)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def fan_charts(bundle: Bundle, directory: Path, max_depth: int = 1) -> list[Path]:
    """Fan charts of every series down to ``max_depth`` (0 = total, 1 = its children)."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = [i for i in bundle.ids if depth(i) <= max_depth]
    return [
        fan_chart(bundle, i, directory / f"fan_{i.replace('/', '__')}.png") for i in sorted(ids)
    ]


def metric_by_model(model_metrics: pl.DataFrame, metric: str, path: Path) -> Path:
    """Bar chart of ``metric`` per candidate model (lower is better)."""
    df = model_metrics.sort(metric) if metric in model_metrics.columns else model_metrics
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if metric in df.columns and df.height:
        ax.barh(df["model"].to_list(), df[metric].to_list(), color="tab:blue")
    ax.set_xlabel(f"{metric} (lower is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def compare_chart(runs: pl.DataFrame, metrics: list[str], path: Path) -> Path:
    """Grouped bars: one group per metric, one bar per run (``label`` column names runs)."""
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(metrics) * max(runs.height, 1) / 2), 4))
    width = 0.8 / max(runs.height, 1)
    for j, row in enumerate(runs.iter_rows(named=True)):
        xs = [i + j * width for i in range(len(metrics))]
        ys = [row.get(m) or 0.0 for m in metrics]
        ax.bar(xs, ys, width=width, label=str(row["label"]))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
