"""A small, seeded, coherent Bundle built by hand (fast; no training) and a loader for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, BundleMeta

__all__ = ["FakeLoaded", "make_bundle", "rename_series", "BOTTOM", "IDS"]

BOTTOM = ["total/a/x", "total/a/y", "total/b/z"]
IDS = ["total", "total/a", "total/b", *BOTTOM]


@dataclass
class FakeLoaded:
    """Shape of ``forecasting.tracking.LoadedModel``."""

    bundle: Bundle
    uri: str = "models:/synthetic@champion"
    name: str | None = "synthetic"
    version: str | None = "1"
    alias: str | None = "champion"
    run_id: str | None = "run0"
    from_cache: bool = False
    reason: str | None = None


def _months(start: dt.date, n: int) -> list[dt.date]:
    return [
        dt.date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1)
        for i in range(n)
    ]


def make_bundle(
    *,
    seed: int = 0,
    n_hist: int = 36,
    horizon: int = 12,
    n_paths: int = 200,
    levels: tuple[int, ...] = (80, 95, 99),
    start: dt.date = dt.date(2021, 1, 1),
    short: str | None = None,
) -> Bundle:
    """A three-level bundle (total / a,b / x,y,z) with seasonal data and coherent paths.

    Args:
        short: a bottom id whose history is cut to 6 months (INSUFFICIENT_DATA cases).
    """
    rng = np.random.default_rng(seed)
    hist_ds = _months(start, n_hist)
    fc_ds = _months(hist_ds[-1].replace(day=28) + dt.timedelta(days=4), horizon)
    season = 1 + 0.2 * np.sin(2 * np.pi * np.arange(n_hist + horizon) / 12)
    base = {b: 1000.0 * (i + 1) for i, b in enumerate(BOTTOM)}
    y = {b: base[b] * season[:n_hist] + rng.normal(0, 20, n_hist) for b in BOTTOM}
    mean = {b: base[b] * season[n_hist:] for b in BOTTOM}
    paths = {
        b: mean[b] + rng.normal(0, 30 * (i + 1), (n_paths, horizon)) for i, b in enumerate(BOTTOM)
    }
    children = {"total/a": BOTTOM[:2], "total/b": BOTTOM[2:], "total": BOTTOM}
    for parent, kids in children.items():
        y[parent] = sum(y[k] for k in kids)
        mean[parent] = sum(mean[k] for k in kids)
        paths[parent] = sum(paths[k] for k in kids)
    hist_rows, fc_rows, ins_rows, series_rows = [], [], [], []
    for uid in IDS:
        h_ds, h_y = hist_ds, y[uid]
        if uid == short:
            h_ds, h_y = hist_ds[-6:], h_y[-6:]
        hist_rows.append(pl.DataFrame({"unique_id": uid, "ds": h_ds, "y": h_y}))
        fc = {"unique_id": [uid] * horizon, "ds": fc_ds, "mean": mean[uid]}
        for lv in levels:
            a = (100 - lv) / 200
            q = np.quantile(paths[uid], [a, 1 - a], axis=0)
            fc[f"lo_{lv}"], fc[f"hi_{lv}"] = q[0], q[1]
        fc_rows.append(pl.DataFrame(fc))
        fitted = h_y + rng.normal(0, 10, len(h_y))
        ins = {"unique_id": uid, "ds": h_ds, "y": h_y, "fitted": fitted}
        for lv in levels:
            ins[f"lo_{lv}"], ins[f"hi_{lv}"] = fitted - lv, fitted + lv
        ins_rows.append(pl.DataFrame(ins))
        series_rows.append(
            {
                "unique_id": uid,
                "level": ["total", "famille", "executant"][uid.count("/")],
                "parent": None if uid == "total" else uid.rsplit("/", 1)[0],
                "last_ds": h_ds[-1],
                "model": "AutoETS",
                "mase": 0.8,
                "smape": 0.05,
                **{f"coverage_{lv}": lv / 100 for lv in levels},
                "fallback_reason": None,
            }
        )
    meta = BundleMeta(
        horizon=horizon,
        levels=list(levels),
        hierarchy=["famille", "executant"],
        measure="reimbursed",
        basis="flux",
        source="synthetic",
        first_ds=str(hist_ds[0]),
        last_ds=str(hist_ds[-1]),
        trained_at="2025-01-01T00:00:00+00:00",
        data_fingerprint=f"seed{seed}",
        models=["SeasonalNaive", "AutoETS"],
        metrics={"mase": 0.8, "coverage_80": 0.8},
    )
    return Bundle(
        meta=meta,
        history=pl.concat(hist_rows),
        forecasts=pl.concat(fc_rows),
        series=pl.DataFrame(series_rows),
        path_ids=list(IDS),
        paths=np.stack([paths[u] for u in IDS]).astype(np.float32),
        insample=pl.concat(ins_rows),
        backtest=pl.DataFrame(
            schema={
                "unique_id": pl.String,
                "ds": pl.Date,
                "cutoff": pl.Date,
                "h": pl.Int64,
                "y": pl.Float64,
                "yhat": pl.Float64,
            }
        ),
    )


def save_and_reload(bundle: Bundle, tmp: Path) -> Bundle:
    """Round-trip through the bundle files (float32 paths, parquet dtypes)."""
    return Bundle.load(bundle.save(tmp / "bundle"))


def fake_loader(bundle: Bundle, **fields: object):
    """A ``(uri, cache_dir, **options) -> FakeLoaded`` loader serving ``bundle``."""

    def load(uri: str, cache_dir: Path | None, **_options: object) -> FakeLoaded:
        return FakeLoaded(bundle, uri=uri, **fields)  # type: ignore[arg-type]

    return load


def rename_series(bundle: Bundle, old: str, new: str) -> Bundle:
    """The bundle with the root id ``old`` (and its prefix in every child id) renamed ``new``."""

    def ren(u: str | None) -> str | None:
        if u is None or not (u == old or u.startswith(old + "/")):
            return u
        return new + u[len(old) :]

    def frame(df: pl.DataFrame) -> pl.DataFrame:
        cols = [c for c in ("unique_id", "parent") if c in df.columns]
        return df.with_columns(pl.col(c).map_elements(ren, return_dtype=pl.String) for c in cols)

    return Bundle(
        meta=bundle.meta,
        history=frame(bundle.history),
        forecasts=frame(bundle.forecasts),
        series=frame(bundle.series),
        path_ids=[str(ren(u)) for u in bundle.path_ids],
        paths=bundle.paths,
        insample=frame(bundle.insample),
        backtest=frame(bundle.backtest),
    )
