"""Hold-out accuracy of spendcast against each single candidate (and SeasonalNaive).

Usage::

    python benchmarks/accuracy.py DATA.csv --date-col Month --value-col Cost \
        --id-col Concession,Type,ATC1 --horizon 12

Holds out the last H months of every series, trains spendcast with the default config (or
``--models``) on the rest, and prints sMAPE and MASE over every series at every level, and
the empirical coverage of spendcast's intervals, next to each candidate fitted alone
(statsforecast ``forecast`` on the same aggregated training data, not reconciled).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from functools import partial
from pathlib import Path
from typing import cast

import polars as pl
from rich.console import Console
from rich.table import Table
from utilsforecast.evaluation import evaluate
from utilsforecast.losses import mase, smape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecasting.data.panel import PanelMeta  # noqa: E402
from forecasting.training.config import TrainConfig  # noqa: E402
from forecasting.training.engines import make_sf  # noqa: E402
from forecasting.training.hierarchy import aggregate_panel  # noqa: E402
from forecasting.training.models import make_model  # noqa: E402
from forecasting.training.pipeline import fit  # noqa: E402

__all__ = ["load_panel", "main"]


def load_panel(
    path: str, date_col: str, value_col: str, id_cols: list[str]
) -> tuple[pl.DataFrame, PanelMeta]:
    """Read a CSV into a bottom-level panel (sums duplicates, fills gaps with 0)."""
    raw = pl.read_csv(path, infer_schema_length=10_000)
    if not id_cols:
        raw = raw.with_columns(pl.lit("series").alias("series"))
        id_cols = ["series"]
    ds = pl.col(date_col).cast(pl.String).str.slice(0, 7).str.to_date("%Y-%m")
    df = (
        raw.select(
            *[pl.col(c).cast(pl.String) for c in id_cols],
            ds.alias("ds"),
            pl.col(value_col).cast(pl.Float64).fill_null(0.0).alias("y"),
        )
        .group_by([*id_cols, "ds"])
        .agg(pl.col("y").sum())
    )
    lo, hi = cast(dt.date, df["ds"].min()), cast(dt.date, df["ds"].max())
    grid = (
        df.select(id_cols)
        .unique()
        .join(pl.DataFrame({"ds": pl.date_range(lo, hi, "1mo", eager=True)}), how="cross")
    )
    panel = grid.join(df, on=[*id_cols, "ds"], how="left").with_columns(pl.col("y").fill_null(0.0))
    return panel.sort([*id_cols, "ds"]), PanelMeta(hierarchy=tuple(id_cols), source=path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--date-col", default="ds")
    ap.add_argument("--value-col", default="y")
    ap.add_argument("--id-col", default="", help="comma-separated hierarchy columns")
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--models", default=None, help="comma-separated candidates")
    args = ap.parse_args(argv)
    ids = [c for c in args.id_col.split(",") if c]
    panel, meta = load_panel(args.data, args.date_col, args.value_col, ids)
    h = args.horizon
    last = panel["ds"].max()
    cut = panel["ds"].unique().sort()[-h - 1]
    train, test = panel.filter(pl.col("ds") <= cut), panel.filter(pl.col("ds") > cut)
    overrides = {"horizon": h}
    if args.models:
        overrides["models"] = args.models.split(",")
    cfg = TrainConfig(**overrides)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    res = fit(train, meta, cfg, progress=False)
    secs = time.perf_counter() - t0
    y_train, _ = aggregate_panel(train, meta)
    y_test, _ = aggregate_panel(test, meta)
    fc = res.bundle.forecasts.rename({"mean": "spendcast"})
    joined = y_test.join(fc, on=["unique_id", "ds"], how="inner")
    for alias in cfg.models:
        base = pl.DataFrame(make_sf([make_model(alias)]).forecast(h=h, df=y_train))
        joined = joined.join(base, on=["unique_id", "ds"], how="left")
    models = ["spendcast", *cfg.models]
    metrics = [partial(mase, seasonality=12), smape]
    for fn, name in zip(metrics, ("mase", "smape"), strict=True):
        setattr(fn, "__name__", name)  # noqa: B010
    ev = pl.DataFrame(
        evaluate(
            joined.select("unique_id", "ds", "y", *models),
            metrics=metrics,  # type: ignore[arg-type]
            models=models,
            train_df=y_train,
        )
    )
    table = Table(
        title=f"{Path(args.data).name} {','.join(ids) or 'single'} h={h} "
        f"(test {cut!s} < ds <= {last!s}, {y_test['unique_id'].n_unique()} series)"
    )
    table.add_column("model")
    table.add_column("MASE", justify="right")
    table.add_column("sMAPE %", justify="right")
    for m in models:
        d = ev.group_by("metric").agg(pl.col(m).mean())
        vals = dict(d.iter_rows())
        table.add_row(m, f"{vals['mase']:.4f}", f"{200 * vals['smape']:.3f}")
    Console().print(table)
    cov = []
    for lv in cfg.levels:
        inside = ((joined["y"] >= joined[f"lo_{lv}"]) & (joined["y"] <= joined[f"hi_{lv}"])).mean()
        cov.append(f"{lv}%: {float(inside or 0):.3f}")  # type: ignore[arg-type]
    print("spendcast hold-out coverage:", ", ".join(cov))
    print(
        f"intervals used: {res.bundle.meta.config['intervals_used']}; "
        f"chosen models: {dict(res.selection.group_by('model').len().iter_rows())}"
    )
    print(f"fit seconds: {secs:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
