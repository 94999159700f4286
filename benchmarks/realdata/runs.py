"""One panel-origin: split, spendcast fit, bare statsforecast references, held-out scores."""

from __future__ import annotations

import hashlib
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, ROOT_ID, TARGET_COL, TIME_COL
from forecasting.monitoring.projections import annual_projection
from forecasting.training.config import TrainConfig
from forecasting.training.engines import make_sf
from forecasting.training.hierarchy import aggregate_panel, level_of
from forecasting.training.models import make_model
from forecasting.training.pipeline import TrainResult, fit

from .data import SuitePanel
from .protocol import (
    ANNUAL_LEVELS,
    COMBINATION,
    FINAL,
    HORIZON,
    LEVELS,
    ORIGINS,
    RAC_YEAR,
    REFERENCES,
    SEASON,
    methods,
    quiet,
)

__all__ = [
    "OriginRun",
    "split",
    "references",
    "train_origin",
    "forecast_frame",
    "accuracy",
    "annual",
    "rac_check",
    "timing_row",
    "fallback_rows",
    "peak_memory_mb",
]


@dataclass
class OriginRun:
    """One panel trained at one origin, with its references and held-out months.

    Attributes:
        panel: the panel.
        origin: ``last`` or ``earlier``.
        result: what ``fit`` returned.
        fit_seconds: wall time of ``fit``.
        train: ``unique_id, ds, y`` of every training series (every level).
        test: ``dataset, unique_id, ds, y, step`` of the scored series' held-out months.
        refs: ``unique_id, ds`` and one column per reference, on the scored series.
        ref_seconds: wall time of each reference's ``StatsForecast.forecast`` call.
    """

    panel: SuitePanel
    origin: str
    result: TrainResult
    fit_seconds: float
    train: pl.DataFrame
    test: pl.DataFrame
    refs: pl.DataFrame
    ref_seconds: dict[str, float]


def split(panel: SuitePanel, back: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Training bottom panel, its series at every level, and the next 12 scored months.

    Each series loses its own last ``back`` months (a flat panel's series end at different
    months); the test is the ``HORIZON`` months after each series' training end.
    """
    keys = list(panel.meta.hierarchy)
    ranked = panel.bottom.with_columns(pl.int_range(pl.len()).reverse().over(keys).alias("_r"))
    train_bottom = ranked.filter(pl.col("_r") >= back).drop("_r")
    upto = ranked.filter(pl.col("_r") >= back - HORIZON).drop("_r")
    train, _ = aggregate_panel(train_bottom, panel.meta)
    full, _ = aggregate_panel(upto, panel.meta)
    datasets = {u: panel.dataset_of(u) for u in full[ID_COL].unique().to_list()}
    last = train.group_by(ID_COL).agg(pl.col(TIME_COL).max().alias("_last"))
    test = (
        full.join(last, on=ID_COL)
        .filter(pl.col(TIME_COL) > pl.col("_last"))
        .sort(ID_COL, TIME_COL)
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(ID_COL).alias("step"),
            pl.col(ID_COL).replace_strict(datasets, return_dtype=pl.String).alias("dataset"),
        )
        .filter((pl.col("step") <= HORIZON) & pl.col("dataset").is_not_null())
        .select("dataset", ID_COL, TIME_COL, TARGET_COL, "step")
    )
    return train_bottom, train, test


REFERENCE_CACHE: list[Path] = []
"""A folder where the references' forecasts are kept between runs (``--reference-cache``):
they depend only on the data, so a suite re-run on a new configuration skips them."""


def _reference(
    train: pl.DataFrame, alias: str, horizon: int = HORIZON
) -> tuple[pl.DataFrame, float]:
    """One reference's forecasts (``unique_id, ds, <alias>``) and its seconds (cached)."""
    key = hashlib.sha256(alias.encode() + str(horizon).encode())
    key.update(train.sort(ID_COL, TIME_COL).write_ipc(None).getvalue())
    path = (
        REFERENCE_CACHE[0] / f"{alias}-{key.hexdigest()[:24]}.parquet" if REFERENCE_CACHE else None
    )
    if path is not None and path.exists():
        cached = pl.read_parquet(path)
        return cached.drop("_seconds"), float(cached["_seconds"][0])
    t0 = time.perf_counter()
    with quiet():
        raw = make_sf([make_model(alias)], n_jobs=-1).forecast(h=horizon, df=train)
    seconds = time.perf_counter() - t0
    fc = pl.DataFrame(raw).select(ID_COL, pl.col(TIME_COL).cast(pl.Date), alias)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fc.with_columns(pl.lit(seconds).alias("_seconds")).write_parquet(path)
    return fc, seconds


def references(
    train: pl.DataFrame, aliases: tuple[str, ...] = REFERENCES, horizon: int = HORIZON
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Bare statsforecast: each reference in one timed call, plus their mean combination."""
    out: pl.DataFrame | None = None
    seconds: dict[str, float] = {}
    for alias in aliases:
        fc, seconds[alias] = _reference(train, alias, horizon)
        out = fc if out is None else out.join(fc, on=[ID_COL, TIME_COL], how="left")
    assert out is not None
    return out.with_columns(pl.mean_horizontal(FINAL).alias(COMBINATION)), seconds


def train_origin(
    panel: SuitePanel,
    origin: str,
    config: TrainConfig,
    *,
    aliases: tuple[str, ...] = REFERENCES,
    stage: Callable[[str], None] = lambda _: None,
) -> OriginRun:
    """Fit spendcast (timed) and the references ``aliases`` at one origin."""
    train_bottom, train, test = split(panel, ORIGINS[origin])
    cfg = config.model_copy(update={"reconciliation": "none"}) if panel.flat else config
    if panel.calendar and cfg.calendar == "auto":
        cfg = cfg.model_copy(update={"calendar": panel.calendar})
    stage("fit")
    t0 = time.perf_counter()
    with quiet():
        result = fit(train_bottom, panel.meta, cfg)
    fit_seconds = time.perf_counter() - t0
    stage("references")
    scored = test[ID_COL].unique().implode()
    refs, ref_seconds = references(train.filter(pl.col(ID_COL).is_in(scored)), aliases)
    return OriginRun(panel, origin, result, fit_seconds, train, test, refs, ref_seconds)


def forecast_frame(run: OriginRun) -> pl.DataFrame:
    """Held-out months of the scored series: actual, spendcast (mean, bounds), references."""
    bundle = run.result.bundle
    bounds = [f"{s}_{lv}" for lv in LEVELS if lv in bundle.meta.levels for s in ("lo", "hi")]
    fc = bundle.forecasts.select(ID_COL, TIME_COL, pl.col("mean").alias("spendcast"), *bounds)
    hierarchy = run.panel.meta.hierarchy
    return (
        run.test.join(fc, on=[ID_COL, TIME_COL], how="left")
        .join(run.refs, on=[ID_COL, TIME_COL], how="left")
        .with_columns(
            pl.lit(run.panel.name).alias("panel"),
            pl.lit(run.origin).alias("origin"),
            pl.col(ID_COL)
            .map_elements(lambda u: level_of(u, hierarchy), return_dtype=pl.String)
            .alias("level"),
        )
    )


def accuracy(run: OriginRun, fc: pl.DataFrame) -> pl.DataFrame:
    """``panel, origin, dataset, level, unique_id, method, mase, smape`` (sMAPE in %)."""
    from utilsforecast.losses import mase, smape

    models = list(methods(tuple(run.ref_seconds)))
    df = fc.select(ID_COL, TIME_COL, TARGET_COL, *models)
    train = run.train.filter(pl.col(ID_COL).is_in(fc[ID_COL].unique().implode()))
    with quiet():
        m = pl.DataFrame(mase(df, models=models, seasonality=SEASON, train_df=train))
        s = pl.DataFrame(smape(df, models=models))
    long = m.unpivot(index=ID_COL, variable_name="method", value_name="mase").join(
        s.unpivot(index=ID_COL, variable_name="method", value_name="smape"),
        on=[ID_COL, "method"],
    )
    keys = fc.select("panel", "origin", "dataset", "level", ID_COL).unique()
    return keys.join(long, on=ID_COL).with_columns(pl.col("smape") * 200)


def annual(run: OriginRun, fc: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """Annual totals of the scored series with 12 held-out months, against the path totals.

    Returns:
        ``panel, origin, dataset, unique_id, actual, forecast, lo_L, hi_L, in_L`` and the
        ``(n_series, n_paths)`` path totals in the same row order.
    """
    bundle = run.result.bundle
    row = {u: i for i, u in enumerate(bundle.path_ids)}
    sums = (
        fc.group_by("panel", "origin", "dataset", ID_COL)
        .agg(
            pl.len().alias("months"),
            pl.col(TARGET_COL).sum().alias("actual"),
            pl.col("spendcast").sum().alias("forecast"),
        )
        .filter(pl.col("months") == HORIZON)
        .sort(ID_COL)
        .drop("months")
    )
    idx = [row[u] for u in sums[ID_COL].to_list()]
    totals = bundle.paths[idx].astype(np.float64).sum(axis=2)
    cols = []
    actual = sums["actual"].to_numpy()
    for lv in ANNUAL_LEVELS:
        a = (100 - lv) / 200
        lo, hi = np.quantile(totals, [a, 1 - a], axis=1) if idx else (np.empty(0), np.empty(0))
        cols += [
            pl.Series(f"lo_{lv}", lo),
            pl.Series(f"hi_{lv}", hi),
            pl.Series(f"in_{lv}", (actual >= lo) & (actual <= hi)),
        ]
    return sums.with_columns(cols), totals


def rac_check(run: OriginRun) -> dict[str, Any]:
    """2024 national total projected from 2019-2023 against the observed, and naive growth."""
    bundle = run.result.bundle
    hist = run.train.filter(pl.col(ID_COL) == ROOT_ID).sort(TIME_COL)
    fc = bundle.forecasts.filter(pl.col(ID_COL) == ROOT_ID).sort(TIME_COL)
    test = run.test.filter((pl.col(ID_COL) == ROOT_ID) & (pl.col(TIME_COL).dt.year() == RAC_YEAR))
    observed = float(test[TARGET_COL].sum())
    proj = annual_projection(
        RAC_YEAR,
        history_ds=hist[TIME_COL].to_list(),
        history_y=hist[TARGET_COL].to_numpy(),
        forecast_ds=fc[TIME_COL].to_list(),
        forecast_mean=fc["mean"].to_numpy(),
        paths=bundle.paths[bundle.path_ids.index(ROOT_ID)],
        levels=ANNUAL_LEVELS,
        budget=observed,
    )
    yearly = dict(
        hist.group_by(pl.col(TIME_COL).dt.year().alias("year"))
        .agg(pl.col(TARGET_COL).sum())
        .iter_rows()
    )
    y21, y22, y23 = (float(yearly[y]) for y in (RAC_YEAR - 3, RAC_YEAR - 2, RAC_YEAR - 1))
    g22, g23 = y22 / y21 - 1, y23 / y22 - 1
    methods = {
        "spendcast": proj.total,
        f"{RAC_YEAR - 1} x own growth": y23 * (1 + g23),
        f"{RAC_YEAR - 1} x mean growth {RAC_YEAR - 2}-{RAC_YEAR - 1}": y23 * (1 + (g22 + g23) / 2),
    }
    out: dict[str, Any] = {
        "observed": observed,
        "months_test": test.height,
        "months_projected": proj.months_projected,
        "prob_over_observed": proj.prob_over_budget,
        "methods": {
            k: {"total": v, "error_pct": 100 * (v / observed - 1)} for k, v in methods.items()
        },
    }
    for lv, (lo, hi) in proj.intervals.items():
        out[f"lo_{lv}"], out[f"hi_{lv}"] = lo, hi
        out[f"inside_{lv}"] = bool(lo <= observed <= hi)
    out["error_pct"] = out["methods"]["spendcast"]["error_pct"]
    return out


def timing_row(run: OriginRun) -> dict[str, Any]:
    """Wall times of one panel-origin: spendcast's fit, each reference, the bare final fit.

    The bare final fit is bare statsforecast fitting and forecasting once the candidates this
    run's spendcast fitted (its configuration's, plus AutoARIMA where the panel's calendar
    adds it; the reference AutoARIMA has no regressor, so it is the cheaper of the two).
    """
    fitted = [m for m in run.result.bundle.meta.models if m in run.ref_seconds]
    bare = sum(run.ref_seconds[a] for a in fitted)
    return {
        "panel": run.panel.name,
        "origin": run.origin,
        "series": len(run.result.bundle.path_ids),
        "fit_s": run.fit_seconds,
        **{f"{a}_s": s for a, s in run.ref_seconds.items()},
        "bare_final_s": bare,
        "ratio": run.fit_seconds / bare if bare > 0 else math.nan,
    }


def fallback_rows(run: OriginRun) -> pl.DataFrame:
    """Series spendcast did not model (``result.fallbacks``), with their training length."""
    months = run.train.group_by(ID_COL).agg(pl.len().cast(pl.Int64).alias("train_months"))
    return (
        run.result.fallbacks.join(months, on=ID_COL, how="left")
        .with_columns(pl.lit(run.panel.name).alias("panel"), pl.lit(run.origin).alias("origin"))
        .select("panel", "origin", ID_COL, "model", "reason", "train_months")
    )


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory in MB: this process (VmHWM) and the largest finished child.

    statsforecast's ``n_jobs=-1`` pools run in child processes, which VmHWM does not count;
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` gives the largest of them (not their sum).
    """
    own = math.nan
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = float(line.split()[1]) / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": own, "children_peak_rss_mb": float(children)}
