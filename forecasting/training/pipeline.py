"""Training: aggregate, backtest every candidate, select per series, forecast, reconcile.

:func:`fit` is the one entry point (used by ``spendcast train`` through
:mod:`forecasting.tracking` and by the tests). It returns a :class:`TrainResult` whose
``bundle`` holds everything the service needs (see :mod:`forecasting.bundle`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import Bundle, BundleMeta, level_cols, parent_id
from forecasting.calendar import months_after, working_days_frame
from forecasting.data.panel import ID_COL, ROOT_ID, TARGET_COL, TIME_COL, PanelMeta, validate_panel
from forecasting.errors import SpendcastError
from forecasting.monitoring.completion import CompletionReport, complete, load_triangle
from forecasting.training.backtest import (
    METRIC_NAMES,
    horizon_profile,
    local_jobs,
    make_sf,
    rank_models,
    run_cv,
    score,
)
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import Hierarchy, aggregate_panel, reconcile
from forecasting.training.models import (
    ENSEMBLE_PREFIX,
    SEASON,
    add_ensembles,
    combine,
    degenerate_reasons,
    ensemble_alias,
    ensemble_kind,
    make_model,
    min_length,
)

__all__ = ["TrainResult", "fit", "data_fingerprint", "ENGINES"]

ENGINES = ("local", "dask")


@dataclass
class TrainResult:
    """Everything a training run produced (see the training contract)."""

    bundle: Bundle
    cv: pl.DataFrame
    scores: pl.DataFrame
    selection: pl.DataFrame
    metrics: dict[str, float]
    model_metrics: pl.DataFrame
    coverage: pl.DataFrame
    fallbacks: pl.DataFrame
    n_series: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    completion: CompletionReport | None = None
    """Care basis: what the chain-ladder completion did (None for flux basis)."""


def data_fingerprint(panel: pl.DataFrame, meta: PanelMeta) -> str:
    """Stable sha256 of the bottom panel's content (sorted) and its hierarchy/measure/basis."""
    cols = [*meta.hierarchy, TIME_COL, TARGET_COL]
    df = panel.select(cols).sort([*meta.hierarchy, TIME_COL])
    h = hashlib.sha256()
    h.update(f"{','.join(meta.hierarchy)}|{meta.measure}|{meta.basis}".encode())
    for c in meta.hierarchy:
        h.update("\x1f".join(df[c].to_list()).encode())
    h.update(df[TIME_COL].cast(pl.Int32).to_numpy().tobytes())
    h.update(np.round(df[TARGET_COL].to_numpy(), 6).tobytes())
    return h.hexdigest()


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class _Stages:
    """Times stages; shows a rich progress bar when asked."""

    def __init__(self, names: list[str], progress: bool) -> None:
        self.timings: dict[str, float] = {}
        self._progress: Any = None
        if progress:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()
            )
            self._task = self._progress.add_task("training", total=len(names))
            self._progress.start()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress.update(self._task, description=f"training: {name}")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            if self._progress is not None:
                self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _degenerate_forecast(
    hist: pl.DataFrame, reason: str, h: int, levels: list[int]
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Point forecast, half-widths per level and in-sample fit of a degenerate series."""
    y = hist[TARGET_COL].to_numpy()
    if reason in ("all_zero", "constant"):
        mean = np.full(h, y[-1])
        return mean, {lv: np.zeros(h) for lv in levels}, np.full(len(y), y[-1])
    if len(y) >= SEASON:
        mean = np.array([y[len(y) - SEASON + (j % SEASON)] for j in range(h)])
        fitted = np.concatenate([np.full(SEASON, np.nan), y[:-SEASON]])
    else:
        mean = np.full(h, y[-1])
        fitted = np.concatenate([[np.nan], y[:-1]])
    err = np.abs(y - fitted)
    err = err[np.isfinite(err)]
    scale = np.sqrt(np.arange(1, h + 1))
    half = {lv: (np.quantile(err, lv / 100) if err.size else 0.0) * scale for lv in levels}
    return mean, half, fitted


def fit(
    panel: pl.DataFrame,
    meta: PanelMeta,
    config: TrainConfig,
    *,
    engine: str = "local",
    dask_address: str | None = None,
    progress: bool = False,
    triangle: pl.DataFrame | None = None,
) -> TrainResult:
    """Train spendcast on a bottom-level panel.

    Aggregates to every level, backtests every candidate with rolling origins, builds the
    ensembles, picks each series' model by ``config.primary_metric``, forecasts, computes
    intervals (model or conformal), reconciles (coherent, non-negative), draws coherent
    sample paths and packs the :class:`~forecasting.bundle.Bundle`.

    Args:
        panel: bottom-level panel (hierarchy columns, ``ds``, ``y``).
        meta: the panel's metadata.
        config: the experiment configuration.
        engine: ``local`` or ``dask`` (per-series fitting on a Dask cluster).
        dask_address: scheduler address for ``dask``; a ``LocalCluster`` when None.
        progress: show a rich progress bar per stage.
        triangle: care basis: the processing x care triangle (default: the one named in the
            panel's ``spendcast.triangle`` metadata). The recent care months are completed
            (forecasting.monitoring.completion) before fitting and the paid shares by age go
            into the bundle; without a triangle a care panel is fitted as is, with a warning.

    Returns:
        The :class:`TrainResult`.

    Raises:
        forecasting.data.panel.PanelError: the panel breaks the contract.
        SpendcastError: unknown engine.
    """
    if engine not in ENGINES:
        raise SpendcastError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
    validate_panel(panel, meta.hierarchy)
    t_start = time.perf_counter()
    input_panel = panel
    completion_frame: pl.DataFrame | None = None
    completion_report: CompletionReport | None = None
    if meta.basis == "care":
        tri = triangle if triangle is not None else load_triangle(meta)
        panel, completion_frame, completion_report = complete(panel, tri, meta)
    h, windows, step, levels = config.horizon, config.windows, config.step_size, config.levels
    candidates = list(config.models)
    ens_kinds: list[str] = list(config.ensembles) if len(candidates) >= 2 else []
    ens_aliases = [ensemble_alias(k) for k in ens_kinds]
    all_models = candidates + ens_aliases
    st = _Stages(
        ["aggregate", *[f"backtest {m}" for m in candidates], "select", "intervals"]
        + [f"forecast {m}" for m in candidates]
        + ["reconcile", "paths", "bundle"],
        progress,
    )
    cluster = None
    try:
        with st.stage("aggregate"):
            y_all, hier = aggregate_panel(panel, meta)
            lvl_of = hier.level_of
            degen = degenerate_reasons(y_all, min_length(h, windows, step))
            reasons = dict(zip(degen[ID_COL].to_list(), degen["reason"].to_list(), strict=True))
            good_ids = [u for u in hier.ids if u not in reasons]
            y_good = y_all.filter(pl.col(ID_COL).is_in(good_ids))
            use_cal = config.calendar and "AutoARIMA" in candidates
            last_ds = y_all.group_by(ID_COL).agg(pl.col(TIME_COL).max())
            last_map = dict(
                zip(last_ds[ID_COL].to_list(), last_ds[TIME_COL].to_list(), strict=True)
            )
            if use_cal:
                months = set(y_all[TIME_COL].to_list())
                for u in good_ids:
                    months.update(months_after(last_map[u], h))
                wd = working_days_frame(months)
                y_good = y_good.join(wd, on=TIME_COL, how="left")
        if engine == "dask":
            cluster = _dask_client(dask_address)

        # ---- backtest
        cv = pl.DataFrame(
            schema={ID_COL: pl.String, TIME_COL: pl.Date, "cutoff": pl.Date, TARGET_COL: pl.Float64}
        )
        model_secs: dict[str, float] = {}
        for alias in candidates:
            with st.stage(f"backtest {alias}"):
                if good_ids:
                    cv_m, secs = _run_cv(
                        y_good,
                        alias,
                        horizon=h,
                        windows=windows,
                        step=step,
                        levels=levels,
                        client=cluster,
                    )
                    model_secs[alias] = secs
                    cv = (
                        cv_m
                        if cv.is_empty()
                        else cv.join(
                            cv_m.drop(TARGET_COL), on=[ID_COL, TIME_COL, "cutoff"], how="left"
                        )
                    )
                else:
                    model_secs[alias] = 0.0
        with st.stage("select"):
            if good_ids:
                cv = cv.sort(ID_COL, "cutoff", TIME_COL)
                scores = score(cv, candidates, y_good)
                ranks = rank_models(scores, config.primary_metric)
                cv = add_ensembles(cv, ranks, candidates, ens_kinds, config.ensemble_k)
                if ens_aliases:
                    scores = pl.concat([scores, score(cv, ens_aliases, y_good)])
                all_ranks = rank_models(scores, config.primary_metric)
                chosen = all_ranks.filter(pl.col("rank") == 1).select(ID_COL, "model")
                top_k = _top_k(scores, candidates, config)
            else:
                scores = pl.DataFrame(
                    schema={ID_COL: pl.String, "model": pl.String}
                    | {m: pl.Float64 for m in METRIC_NAMES}
                )
                chosen = pl.DataFrame(schema={ID_COL: pl.String, "model": pl.String})
                top_k = {}
            scores = scores.with_columns(
                pl.col(ID_COL)
                .replace_strict(lvl_of, return_dtype=pl.String)
                .alias("hierarchy_level")
            ).select(ID_COL, "hierarchy_level", "model", *METRIC_NAMES)
            chosen_map = dict(zip(chosen[ID_COL].to_list(), chosen["model"].to_list(), strict=True))
            fallback_rows = [
                {ID_COL: u, "model": "SeasonalNaive" if "short" in r else "Naive", "reason": r}
                for u, r in reasons.items()
            ]
            fallbacks = pl.DataFrame(
                fallback_rows, schema={ID_COL: pl.String, "model": pl.String, "reason": pl.String}
            )
            sel_good = chosen.join(scores.drop("hierarchy_level"), on=[ID_COL, "model"], how="left")
            sel_bad = pl.DataFrame(
                {ID_COL: fallbacks[ID_COL], "model": fallbacks["model"]},
                schema={ID_COL: pl.String, "model": pl.String},
            ).with_columns([pl.lit(None, pl.Float64).alias(m) for m in METRIC_NAMES])
            selection = (
                pl.concat([sel_good, sel_bad], how="diagonal_relaxed")
                .join(
                    fallbacks.select(ID_COL, pl.col("reason").alias("fallback_reason")),
                    on=ID_COL,
                    how="left",
                )
                .with_columns(
                    pl.col(ID_COL)
                    .replace_strict(lvl_of, return_dtype=pl.String)
                    .alias("hierarchy_level")
                )
                .select(ID_COL, "hierarchy_level", "model", *METRIC_NAMES, "fallback_reason")
                .sort(ID_COL)
            )

        # ---- intervals on the backtest
        with st.stage("intervals"):
            bt, q_conf, cov_method = _backtest_intervals(cv, chosen, levels, config.intervals)

        # ---- final forecasts
        fc_point: dict[str, dict[str, np.ndarray]] = {}
        fc_model_bounds: dict[str, dict[str, np.ndarray]] = {}
        fitted_by: dict[str, pl.DataFrame] = {}
        for alias in candidates:
            with st.stage(f"forecast {alias}"):
                if not good_ids:
                    continue
                t0 = time.perf_counter()
                fc_m, fit_m = _forecast_one(y_good, alias, h, levels, use_cal, last_map, cluster)
                model_secs[alias] += time.perf_counter() - t0
                fitted_by[alias] = fit_m
                for row in fc_m.partition_by(ID_COL, as_dict=False):
                    u = row[ID_COL][0]
                    fc_point.setdefault(u, {})[alias] = row[alias].to_numpy()
                    fc_model_bounds.setdefault(u, {}).update(
                        {
                            f"{alias}|{side}_{lv}": row[f"{alias}-{side}-{lv}"].to_numpy()
                            for lv in levels
                            for side in ("lo", "hi")
                        }
                    )

        # ---- assemble base forecasts, reconcile
        with st.stage("reconcile"):
            n = len(hier.ids)
            cols = ["mean", *level_cols(levels)]
            base = {c: np.zeros((n, h)) for c in cols}
            fitted_rows: list[pl.DataFrame] = []
            hist_by = _by_id(y_all)
            fitted_parts = {a: _by_id(f) for a, f in fitted_by.items()}
            for i, u in enumerate(hier.ids):
                hist = hist_by[u]
                if u in reasons:
                    mean, half, fitted = _degenerate_forecast(hist, reasons[u], h, levels)
                    base["mean"][i] = mean
                    for lv in levels:
                        base[f"lo_{lv}"][i] = mean - half[lv]
                        base[f"hi_{lv}"][i] = mean + half[lv]
                    qi = {lv: float(half[lv][0]) for lv in levels}
                else:
                    m = chosen_map[u]
                    members = [m] if m in candidates else top_k[u]
                    stack = np.vstack([fc_point[u][a] for a in members])
                    mean = combine(stack, ensemble_kind(m) or "mean")
                    base["mean"][i] = mean
                    use_model = cov_method == "model" and m in candidates
                    qi_h = q_conf.get(u, {lv: np.zeros(h) for lv in levels})
                    qi = {lv: float(qi_h[lv][0]) for lv in levels}
                    for lv in levels:
                        if use_model:
                            base[f"lo_{lv}"][i] = fc_model_bounds[u][f"{m}|lo_{lv}"]
                            base[f"hi_{lv}"][i] = fc_model_bounds[u][f"{m}|hi_{lv}"]
                        else:
                            base[f"lo_{lv}"][i] = mean - qi_h[lv][:h]
                            base[f"hi_{lv}"][i] = mean + qi_h[lv][:h]
                    fit_stack = [fitted_parts[a][u][a].to_numpy() for a in members]
                    fitted = combine(np.vstack(fit_stack), ensemble_kind(m) or "mean")
                ins = pl.DataFrame(
                    {
                        ID_COL: u,
                        TIME_COL: hist[TIME_COL],
                        TARGET_COL: hist[TARGET_COL],
                        "fitted": fitted.astype(np.float64),
                    }
                ).with_columns(
                    [
                        (pl.col("fitted") + sign * qi[lv]).alias(f"{side}_{lv}")
                        for lv in levels
                        for side, sign in (("lo", -1.0), ("hi", 1.0))
                    ]
                )
                fitted_rows.append(ins)
            residuals = _residual_matrix(cv, chosen_map, hier, windows * h)
            rec = _safe_reconcile(hier, base, config, residuals, levels)
            forecasts = _forecast_frame(hier.ids, last_map, rec, h, levels)
            insample = (
                pl.concat(fitted_rows)
                .filter(pl.col("fitted").is_not_nan() & pl.col("fitted").is_not_null())
                .with_columns(pl.col(TIME_COL).cast(pl.Date))
            )

        with st.stage("paths"):
            paths = _paths(hier, rec, residuals, cv, chosen_map, config, h, levels)

        with st.stage("bundle"):
            coverage = _coverage_table(bt, levels, lvl_of)
            metrics, model_metrics = _metrics(selection, scores, coverage, all_models, model_secs)
            n_series = {name: len(ids) for name, ids in hier.tags.items()}
            series = _series_frame(hier, selection, bt, last_map, levels, top_k)
            backtest = (
                bt.select(ID_COL, TIME_COL, "cutoff", "h", TARGET_COL, "yhat")
                if (bt.height)
                else pl.DataFrame(
                    schema={
                        ID_COL: pl.String,
                        TIME_COL: pl.Date,
                        "cutoff": pl.Date,
                        "h": pl.Int64,
                        TARGET_COL: pl.Float64,
                        "yhat": pl.Float64,
                    }
                )
            )
            metrics["fit_seconds"] = time.perf_counter() - t_start
            bmeta = BundleMeta(
                horizon=h,
                levels=list(levels),
                hierarchy=list(meta.hierarchy),
                measure=meta.measure,
                basis=meta.basis,
                source=meta.source,
                first_ds=str(y_all[TIME_COL].min()),
                last_ds=str(y_all[TIME_COL].max()),
                trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                data_fingerprint=data_fingerprint(input_panel, meta),
                primary_metric=config.primary_metric,
                reconciliation=config.reconciliation,
                models=all_models,
                metrics=metrics,
                config=config.model_dump() | {"intervals_used": cov_method},
            )
            bundle = Bundle(
                meta=bmeta,
                history=y_all,
                forecasts=forecasts,
                series=series,
                path_ids=list(hier.ids),
                paths=paths,
                insample=insample,
                backtest=backtest,
                completion=completion_frame,
            )
    finally:
        st.close()
        if cluster is not None:
            cluster.close()
    cv_out = cv.select(
        ID_COL, TIME_COL, "cutoff", TARGET_COL, *[m for m in all_models if m in cv.columns]
    )
    return TrainResult(
        bundle=bundle,
        cv=cv_out,
        scores=scores,
        selection=selection,
        metrics=metrics,
        model_metrics=model_metrics,
        coverage=coverage,
        fallbacks=fallbacks,
        n_series=n_series,
        timings=st.timings,
        completion=completion_report,
    )


# --------------------------------------------------------------------------- helpers


def _dask_client(address: str | None) -> Any:
    """A distributed client (``LocalCluster`` with 2 workers when no address)."""
    from distributed import Client, LocalCluster

    if address:
        return Client(address)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)

    class _Owned:
        def __init__(self) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def close(self) -> None:
            client.close()
            cluster.close()

    return _Owned()


def _chunks(df: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    ids = df[ID_COL].unique(maintain_order=True).to_list()
    size = max(1, -(-len(ids) // n))
    return [df.filter(pl.col(ID_COL).is_in(ids[i : i + size])) for i in range(0, len(ids), size)]


def _distributed(client: Any, fn: Any, df: pl.DataFrame, *args: Any) -> list[Any]:
    """Run ``fn(chunk, *args)`` on every chunk of series on the Dask cluster."""
    n = max(2, len(client.scheduler_info().get("workers", {})) * 2)
    futures = [client.submit(fn, chunk, *args, pure=False) for chunk in _chunks(df, n)]
    return list(client.gather(futures))


def _cv_local(
    df: pl.DataFrame, alias: str, h: int, windows: int, step: int, levels: list[int]
) -> pl.DataFrame:
    return run_cv(df, alias, horizon=h, windows=windows, step=step, levels=levels)[0]


def _run_cv(
    df: pl.DataFrame,
    alias: str,
    *,
    horizon: int,
    windows: int,
    step: int,
    levels: list[int],
    client: Any,
) -> tuple[pl.DataFrame, float]:
    if client is None:
        return run_cv(
            df,
            alias,
            horizon=horizon,
            windows=windows,
            step=step,
            levels=levels,
            n_jobs=local_jobs(df),
        )
    t0 = time.perf_counter()
    parts = _distributed(client, _cv_local, df, alias, horizon, windows, step, levels)
    return pl.concat(parts), time.perf_counter() - t0


def _forecast_local(
    df: pl.DataFrame,
    alias: str,
    h: int,
    levels: list[int],
    use_cal: bool,
    last_map: dict[str, dt.date],
    n_jobs: int = 1,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    sf = make_sf([make_model(alias)], n_jobs)
    x_df = None
    if alias == "AutoARIMA" and use_cal:
        data = df
        ids = df[ID_COL].unique(maintain_order=True).to_list()
        fut = pl.DataFrame(
            {
                ID_COL: [u for u in ids for _ in range(h)],
                TIME_COL: [d for u in ids for d in months_after(last_map[u], h)],
            },
            schema={ID_COL: pl.String, TIME_COL: pl.Date},
        )
        wd = working_days_frame(fut[TIME_COL].to_list())
        x_df = fut.join(wd, on=TIME_COL, how="left")
    else:
        data = df.select(ID_COL, TIME_COL, TARGET_COL)
    fc = sf.forecast(h=h, df=data, X_df=x_df, level=levels, fitted=True)
    fitted = sf.forecast_fitted_values()
    return pl.DataFrame(fc), pl.DataFrame(fitted).select(ID_COL, TIME_COL, alias)


def _forecast_one(
    df: pl.DataFrame,
    alias: str,
    h: int,
    levels: list[int],
    use_cal: bool,
    last_map: dict[str, dt.date],
    client: Any,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if client is None:
        return _forecast_local(df, alias, h, levels, use_cal, last_map, local_jobs(df))
    parts = _distributed(client, _forecast_local, df, alias, h, levels, use_cal, last_map)
    return pl.concat([p[0] for p in parts]), pl.concat([p[1] for p in parts])


def _top_k(
    scores: pl.DataFrame, candidates: list[str], config: TrainConfig
) -> dict[str, list[str]]:
    ranks = rank_models(scores.filter(pl.col("model").is_in(candidates)), config.primary_metric)
    k = min(config.ensemble_k, len(candidates))
    top = ranks.filter(pl.col("rank") <= k).group_by(ID_COL).agg(pl.col("model"))
    return dict(zip(top[ID_COL].to_list(), top["model"].to_list(), strict=True))


def _chosen_frame(cv: pl.DataFrame, chosen: pl.DataFrame, levels: list[int]) -> pl.DataFrame:
    """Backtest rows of each series' chosen model: ``yhat`` and model bounds (null if none)."""
    parts = []
    for m in chosen["model"].unique().to_list():
        ids = chosen.filter(pl.col("model") == m)[ID_COL]
        sub = cv.filter(pl.col(ID_COL).is_in(ids.implode()))
        exprs = [pl.col(m).alias("yhat")]
        for lv in levels:
            for side in ("lo", "hi"):
                name = f"{m}-{side}-{lv}"
                exprs.append(
                    (pl.col(name) if name in cv.columns else pl.lit(None, pl.Float64)).alias(
                        f"m{side}_{lv}"
                    )
                )
        parts.append(sub.select(ID_COL, TIME_COL, "cutoff", TARGET_COL, *exprs))
    if not parts:
        return pl.DataFrame(
            schema={
                ID_COL: pl.String,
                TIME_COL: pl.Date,
                "cutoff": pl.Date,
                TARGET_COL: pl.Float64,
                "yhat": pl.Float64,
            }
            | {f"m{s}_{lv}": pl.Float64 for lv in levels for s in ("lo", "hi")}
        )
    return (
        pl.concat(parts)
        .sort(ID_COL, "cutoff", TIME_COL)
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(ID_COL, "cutoff").cast(pl.Int64).alias("h")
        )
    )


def _backtest_intervals(
    cv: pl.DataFrame, chosen: pl.DataFrame, levels: list[int], method: str
) -> tuple[pl.DataFrame, dict[str, dict[int, np.ndarray]], str]:
    """Chosen-model backtest rows with the interval bounds actually used.

    Conformal half-widths are *locally scaled and globally pooled*: a series' absolute
    backtest errors, divided by the step-ahead profile, are divided by their own mean (the
    series' scale); those scale-free ratios are pooled over every series and the level's
    conformal quantile of the pool (finite-sample corrected) is multiplied back by each
    series' scale and the profile. A per-series quantile from 3-4 windows is too few points
    for a 95 or 99 % bound (it under-covers); the pool has thousands. Bounds on window w use
    only the other windows (leave-one-window-out, scales and pool alike), so their backtest
    coverage is honest; the final half-widths use every window.

    Returns:
        rows ``unique_id, ds, cutoff, h, y, yhat, lo_L, hi_L``, the conformal half-widths
        per series and level, and the method used (``model`` or ``conformal``).
    """
    bt = _chosen_frame(cv, chosen, levels)
    q_conf: dict[str, dict[int, np.ndarray]] = {}
    conf_lo: dict[int, list[np.ndarray]] = {lv: [] for lv in levels}
    order: list[pl.DataFrame] = []
    profile = horizon_profile(bt)
    parts = bt.partition_by(ID_COL, maintain_order=True)
    errs, cuts = [], []
    for part in parts:
        step = profile[part["h"].to_numpy() - 1]
        errs.append(np.abs(part[TARGET_COL].to_numpy() - part["yhat"].to_numpy()) / step)
        cuts.append(part["cutoff"].to_numpy())
    all_cuts = np.unique(np.concatenate(cuts)) if cuts else np.array([])

    def ratios(keep: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
        scales = [
            float(np.nanmean(e[k])) if k.any() else np.nan for e, k in zip(errs, keep, strict=True)
        ]
        pool = [
            e[k] / sc
            for e, k, sc in zip(errs, keep, scales, strict=True)
            if np.isfinite(sc) and sc > 0
        ]
        return (np.concatenate(pool) if pool else np.array([])), scales

    def quantile(pool: np.ndarray, lv: int) -> float:
        pool = pool[np.isfinite(pool)]
        if not pool.size:
            return np.inf
        q = min(1.0, np.ceil((pool.size + 1) * lv / 100) / pool.size)
        return float(np.quantile(pool, q))

    pool_all, scale_all = ratios([np.ones(len(e), dtype=bool) for e in errs])
    q_all = {lv: quantile(pool_all, lv) for lv in levels}
    loo = {}
    for c in all_cuts:
        pool_c, scale_c = ratios([cut != c for cut in cuts])
        loo[c] = ({lv: quantile(pool_c, lv) for lv in levels}, scale_c)
    for i, part in enumerate(parts):
        u = part[ID_COL][0]
        step = profile[part["h"].to_numpy() - 1]
        sc = scale_all[i] if np.isfinite(scale_all[i]) else 0.0
        q_conf[u] = {lv: sc * q_all[lv] * profile for lv in levels}
        for lv in levels:
            half = np.empty(len(errs[i]))
            for c in np.unique(cuts[i]):
                q_c, scale_c = loo[c]
                sc_c = scale_c[i]
                half[cuts[i] == c] = sc_c * q_c[lv] if np.isfinite(sc_c) else np.inf
            conf_lo[lv].append(half * step)
        order.append(part)
    if not order:
        return (
            bt.with_columns([pl.lit(None, pl.Float64).alias(c) for c in level_cols(levels)]),
            q_conf,
            "conformal",
        )
    bt = pl.concat(order)
    halves = {lv: np.concatenate(conf_lo[lv]) for lv in levels}
    conf = bt.with_columns(
        [
            (pl.col("yhat") + sign * pl.Series(values=halves[lv])).alias(f"{side}_{lv}")
            for lv in levels
            for side, sign in (("lo", -1.0), ("hi", 1.0))
        ]
    )
    has_model = bt[f"mlo_{levels[0]}"].is_not_null()
    model = conf.with_columns(
        [
            pl.when(has_model)
            .then(pl.col(f"m{side}_{lv}"))
            .otherwise(pl.col(f"{side}_{lv}"))
            .alias(f"{side}_{lv}")
            for lv in levels
            for side in ("lo", "hi")
        ]
    )

    def calib(df: pl.DataFrame) -> float:
        sub = df.filter(has_model)
        if sub.is_empty():
            return 0.0
        errs = []
        for lv in levels:
            inside = (
                (sub[TARGET_COL] >= sub[f"lo_{lv}"]) & (sub[TARGET_COL] <= sub[f"hi_{lv}"])
            ).mean()
            errs.append(abs(_as_float(inside) - lv / 100))
        return float(np.mean(errs))

    if method == "model" or (method == "auto" and calib(model) < calib(conf)):
        used, name = model, "model"
    else:
        used, name = conf, "conformal"
    drop = [f"m{s}_{lv}" for lv in levels for s in ("lo", "hi")]
    return used.drop(drop), q_conf, name


def _residual_matrix(
    cv: pl.DataFrame, chosen: dict[str, str], hier: Hierarchy, width: int
) -> np.ndarray:
    res = np.zeros((len(hier.ids), width))
    if cv.is_empty():
        return res
    cv_by = _by_id(cv)
    for i, u in enumerate(hier.ids):
        m = chosen.get(u)
        if m is None:
            continue
        sub = cv_by.get(u)
        if sub is None:
            continue
        e = (sub[TARGET_COL] - sub[m]).to_numpy()[:width]
        res[i, : len(e)] = e
    return res


def _safe_reconcile(
    hier: Hierarchy,
    base: dict[str, np.ndarray],
    config: TrainConfig,
    residuals: np.ndarray,
    levels: list[int],
) -> dict[str, np.ndarray]:
    lower = [f"lo_{lv}" for lv in levels]
    upper = [f"hi_{lv}" for lv in levels]
    res = residuals.copy()
    flat = res.std(axis=1) == 0
    if flat.any():  # degenerate rows: a tiny deterministic jitter keeps the covariance invertible
        rng = np.random.default_rng(0)
        scale = np.maximum(np.abs(base["mean"][flat]).mean(axis=1, keepdims=True), 1.0) * 1e-6
        res[flat] = rng.standard_normal((int(flat.sum()), res.shape[1])) * scale
    try:
        return reconcile(
            hier,
            base,
            method=config.reconciliation,
            residuals=res,
            nonnegative=config.nonnegative,
            lower=lower,
            upper=upper,
        )
    except (np.linalg.LinAlgError, ValueError, Exception) as exc:  # noqa: BLE001
        if config.reconciliation == "wls_struct":
            raise
        warnings.warn(f"{config.reconciliation} failed ({exc}); using wls_struct", stacklevel=2)
        return reconcile(
            hier,
            base,
            method="wls_struct",
            residuals=res,
            nonnegative=config.nonnegative,
            lower=lower,
            upper=upper,
        )


def _forecast_frame(
    ids: list[str],
    last_map: dict[str, dt.date],
    rec: dict[str, np.ndarray],
    h: int,
    levels: list[int],
) -> pl.DataFrame:
    cols = ["mean", *level_cols(levels)]
    data: dict[str, Any] = {
        ID_COL: [u for u in ids for _ in range(h)],
        TIME_COL: [d for u in ids for d in months_after(last_map[u], h)],
    }
    for c in cols:
        data[c] = rec[c].reshape(-1)
    return pl.DataFrame(
        data, schema={ID_COL: pl.String, TIME_COL: pl.Date} | {c: pl.Float64 for c in cols}
    )


def _z(level: int) -> float:
    """Standard normal quantile of a central ``level`` % interval's upper bound."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 200)


def _ar1(eps: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance AR(1) along axis 1 driven by ``eps`` (``z_t = phi z_(t-1) + ...``)."""
    z = np.empty_like(eps)
    z[:, 0] = eps[:, 0]
    for t in range(1, eps.shape[1]):
        z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi**2) * eps[:, t]
    return z


def _paths(
    hier: Hierarchy,
    rec: dict[str, np.ndarray],
    residuals: np.ndarray,
    cv: pl.DataFrame,
    chosen: dict[str, str],
    config: TrainConfig,
    h: int,
    levels: list[int],
) -> np.ndarray:
    """Coherent joint sample paths, centred on the reconciled means.

    Bottom series are drawn and summed up the hierarchy (``S``), so every parent path is the
    sum of its children's. Each bottom draw is ``mean + sigma * z`` with a two-piece scale
    (``sigma_lo`` below the mean, ``sigma_hi`` above) read from that series' reconciled
    interval at the widest trained level, so the paths' spread matches the calibrated
    intervals. ``z`` keeps the dependence of forecast errors: across series, each step draws a
    whole cross-section of standardised (centred, unit-variance) backtest errors, so the
    empirical correlation between categories is kept exactly (and with it the spread of the
    parents); across the horizon, ``z_t = phi z_(t-1) + sqrt(1 - phi^2) e_t`` with ``phi`` the
    pooled lag-1 autocorrelation of backtest errors within a window, so sums over months
    (annual totals) keep the persistence of forecast errors. Clipped at zero when
    ``nonnegative``.
    """
    rng = np.random.default_rng(config.seed)
    bidx = hier.bottom_index()
    nb = len(hier.bottom)
    mean = rec["mean"][bidx]  # (nb, h)
    lv = max(levels)
    z_lv = _z(lv)
    sig_lo = np.maximum(mean - rec[f"lo_{lv}"][bidx], 0.0) / z_lv
    sig_hi = np.maximum(rec[f"hi_{lv}"][bidx] - mean, 0.0) / z_lv

    res = residuals[bidx].astype(np.float64)
    width = res.shape[1]
    sd = res.std(axis=1)
    ok = np.isfinite(sd) & (sd > 0)
    draws = (config.n_paths, h)
    if width >= 2 and ok.any():
        pool = np.zeros((width, nb))
        pool[:, ok] = ((res[ok] - res[ok].mean(axis=1, keepdims=True)) / sd[ok, None]).T
        eps = pool[rng.integers(0, width, size=draws)]  # (n_paths, h, nb)
        eps[..., ~ok] = rng.standard_normal((*draws, int((~ok).sum())))
    else:
        eps = rng.standard_normal((*draws, nb))
    phi = _error_persistence(cv, chosen, hier.bottom)
    z = _ar1(eps, phi)
    dev = np.where(z < 0, z * sig_lo.T[None], z * sig_hi.T[None])  # (n_paths, h, nb)
    dev += _common_shock(hier, rec, dev, lv, phi, rng)
    bottom = mean.T[None] + dev
    if config.nonnegative:
        bottom = np.maximum(bottom, 0.0)
    full = np.einsum("sb,phb->sph", hier.S, bottom)
    return full.astype(np.float32)


def _common_shock(
    hier: Hierarchy,
    rec: dict[str, np.ndarray],
    dev: np.ndarray,
    level: int,
    phi: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The part of the total's error that the bottom draws miss, shared out by size.

    A few backtest windows understate how much the categories' errors move together, so
    the sum of the bottom draws is narrower than the total's own calibrated interval. The
    missing variance at each step is added as one shock per path (AR(1) over the horizon),
    split between bottom series in proportion to their own interval's width (noisy series
    take most of it): parents stay sums of children, the total's paths get its interval's
    spread.
    """
    bidx = hier.bottom_index()
    root = hier.ids.index(ROOT_ID) if ROOT_ID in hier.ids else None
    if root is None or dev.shape[2] < 2:
        return np.zeros_like(dev)
    z_lv = _z(level)
    target = ((rec[f"hi_{level}"][root] - rec[f"lo_{level}"][root]) / (2 * z_lv)) ** 2
    have = dev.sum(axis=2).var(axis=0)
    extra = np.sqrt(np.maximum(target - have, 0.0))  # (h,)
    spread = np.maximum(rec[f"hi_{level}"][bidx] - rec[f"lo_{level}"][bidx], 0.0)  # (nb, h)
    share = spread / np.maximum(spread.sum(axis=0, keepdims=True), 1e-12)
    n_paths, h = dev.shape[:2]
    u = _ar1(rng.standard_normal((n_paths, h)), phi)
    return (u * extra[None])[:, :, None] * share.T[None]


def _error_persistence(cv: pl.DataFrame, chosen: dict[str, str], bottom: list[str]) -> float:
    """Pooled lag-1 autocorrelation of backtest errors within a window, in [0, 0.95]."""
    if cv.is_empty():
        return 0.0
    cv_by = _by_id(cv)
    num = den = 0.0
    for u in bottom:
        m, sub = chosen.get(u), cv_by.get(u)
        if m is None or sub is None:
            continue
        for part in sub.sort("cutoff", TIME_COL).partition_by("cutoff", maintain_order=True):
            e = (part[TARGET_COL] - part[m]).to_numpy().astype(np.float64)
            e = e[np.isfinite(e)]
            if e.size < 3 or e.std() == 0:
                continue
            e = (e - e.mean()) / e.std()
            num += float(np.sum(e[1:] * e[:-1]))
            den += float(np.sum(e * e))
    return float(np.clip(num / den, 0.0, 0.95)) if den > 0 else 0.0


def _coverage_table(bt: pl.DataFrame, levels: list[int], lvl_of: dict[str, str]) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    if bt.is_empty():
        return pl.DataFrame(
            schema={"hierarchy_level": pl.String, "level": pl.Int64, "coverage": pl.Float64}
        )
    df = bt.with_columns(
        pl.col(ID_COL).replace_strict(lvl_of, return_dtype=pl.String).alias("hierarchy_level")
    )
    groups = [("overall", df), *[(g[0], d) for g, d in df.group_by("hierarchy_level")]]
    for name, d in groups:
        for lv in levels:
            inside = ((d[TARGET_COL] >= d[f"lo_{lv}"]) & (d[TARGET_COL] <= d[f"hi_{lv}"])).mean()
            rows.append({"hierarchy_level": str(name), "level": lv, "coverage": _as_float(inside)})
    return pl.DataFrame(
        rows, schema={"hierarchy_level": pl.String, "level": pl.Int64, "coverage": pl.Float64}
    ).sort("hierarchy_level", "level")


def _finite_mean(s: pl.Series) -> float:
    v = s.drop_nulls().to_numpy().astype(np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _metrics(
    selection: pl.DataFrame,
    scores: pl.DataFrame,
    coverage: pl.DataFrame,
    models: list[str],
    model_secs: dict[str, float],
) -> tuple[dict[str, float], pl.DataFrame]:
    out: dict[str, float] = {}
    for m in METRIC_NAMES:
        out[m] = _finite_mean(selection[m])
        for (lvl,), d in selection.group_by("hierarchy_level"):
            out[f"{m}.level.{_key(str(lvl))}"] = _finite_mean(d[m])
    mm_rows = []
    for model in models:
        d = scores.filter(pl.col("model") == model)
        row: dict[str, Any] = {"model": model}
        for m in METRIC_NAMES:
            row[m] = _finite_mean(d[m]) if d.height else float("nan")
            out[f"{m}.model.{_key(model)}"] = row[m]
        row["fit_seconds"] = float(model_secs.get(model, 0.0))
        mm_rows.append(row)
    for r in coverage.iter_rows(named=True):
        suffix = "" if r["hierarchy_level"] == "overall" else f".level.{_key(r['hierarchy_level'])}"
        out[f"coverage_{r['level']}{suffix}"] = r["coverage"]
    schema = (
        {"model": pl.String} | {m: pl.Float64 for m in METRIC_NAMES} | {"fit_seconds": pl.Float64}
    )
    out = {k: v for k, v in out.items() if np.isfinite(v)}
    return out, pl.DataFrame(mm_rows, schema=schema)


def _series_frame(
    hier: Hierarchy,
    selection: pl.DataFrame,
    bt: pl.DataFrame,
    last_map: dict[str, dt.date],
    levels: list[int],
    top_k: dict[str, list[str]],
) -> pl.DataFrame:
    """One row per series; ``members`` lists an ensemble's models (comma-separated)."""
    lvl_of = hier.level_of
    base = pl.DataFrame(
        {
            ID_COL: hier.ids,
            "level": [lvl_of[u] for u in hier.ids],
            "parent": [parent_id(u) for u in hier.ids],
            "last_ds": [last_map[u] for u in hier.ids],
        },
        schema={ID_COL: pl.String, "level": pl.String, "parent": pl.String, "last_ds": pl.Date},
    )
    sel = selection.select(ID_COL, "model", "mase", "smape", "fallback_reason").with_columns(
        pl.when(pl.col("model").str.starts_with(ENSEMBLE_PREFIX))
        .then(
            pl.col(ID_COL).replace_strict(
                {u: ",".join(sorted(m)) for u, m in top_k.items()},
                default=None,
                return_dtype=pl.String,
            )
        )
        .otherwise(None)
        .alias("members")
    )
    if bt.height:
        cov = bt.group_by(ID_COL).agg(
            [
                (
                    (pl.col(TARGET_COL) >= pl.col(f"lo_{lv}"))
                    & (pl.col(TARGET_COL) <= pl.col(f"hi_{lv}"))
                )
                .mean()
                .cast(pl.Float64)
                .alias(f"coverage_{lv}")
                for lv in levels
            ]
        )
    else:
        cov = pl.DataFrame(
            schema={ID_COL: pl.String} | {f"coverage_{lv}": pl.Float64 for lv in levels}
        )
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
            *[f"coverage_{lv}" for lv in levels],
            "fallback_reason",
            "members",
        )
    )


def _as_float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _by_id(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows of each series, keyed by ``unique_id``."""
    return {str(k[0]): part for k, part in df.partition_by(ID_COL, as_dict=True).items()}
