"""Chain-ladder completion of recent care months (care basis).

Open DAMIR files each hold one processing month spread over care months; ingest keeps the
processing x care triangle of every bottom series (``PANEL.triangle.parquet``: hierarchy
columns, ``ds`` = care month, ``processing_ds``, ``y``). A care month is paid over the
following months (about 58 % in its own month, 87 % one month later, 99 % after a year), so
the latest care months of a care-basis panel are incomplete. This module:

- estimates chain-ladder development factors ``f_a = sum C[c, a+1] / sum C[c, a]`` (``C`` the
  cumulative paid amount of care month ``c`` by age ``a`` = processing month - care month) on
  the triangle of every series at every level (aggregated triangles for parents), over the
  care months fully observed in the files (a care month before the first processing month
  is left-truncated and not used);
- pools each series' factors toward its parent's (empirical Bayes: weight
  ``tau2 / (tau2 + var_f)`` with ``var_f`` Mack's variance of the factor and ``tau2`` the
  between-children variance of the factors around the parent), so that thin bottom series
  borrow the parent's development pattern and large ones keep their own;
- turns the factors into cumulative paid shares by age, ``share(a) = 1 / prod_{k>=a} f_k``
  (age ``A - 1``: share 1; ages >= A: 1), with a standard error from Mack's factor variances
  (delta method on ``log share``);
- back-tests: for every past care month and age ``a``, the ultimate predicted from what was
  paid by age ``a`` with the factors estimable *then* (processing months <= care + a) against
  the actual amount paid by age ``A - 1`` (care months from the 7th processing month on:
  ``BACKTEST_MIN_MONTHS``); reported as the amount-weighted absolute
  percentage error by age (``sum |pred - actual| / sum actual`` over all series and care
  months, every level) so that tiny series do not dominate;
- completes a care-basis panel: bottom value / share(age) for ages below ``A - 1``; care
  months before the first processing month (left-truncated, missing their early payments)
  are dropped. Flux basis: nothing to do.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import parent_id
from forecasting.calendar import month_index_expr, month_of
from forecasting.data.panel import (
    ID_COL,
    META_TRIANGLE,
    PROCESSING_COL,
    ROOT_ID,
    SEP,
    TARGET_COL,
    TIME_COL,
    PanelMeta,
    triangle_path,
)

__all__ = [
    "MAX_AGE",
    "PROCESSING_COL",
    "CompletionReport",
    "complete",
    "estimate",
    "load_triangle",
    "paid_share",
    "ShareTable",
    "share_tables",
    "share_at",
]

MAX_AGE = 24
"""Oldest age with a development factor: care months are taken as complete after it."""
COMPLETION_COLUMNS = {
    ID_COL: pl.String,
    "age": pl.Int64,
    "paid_share": pl.Float64,
    "paid_share_sd": pl.Float64,
}
BACKTEST_MIN_MONTHS = 6
"""Back-test care months start this many months after the first processing month (before,
no development factor is estimable yet and the prediction is just the paid amount)."""
MIN_SHARE = 0.05
"""A share below this (a series paid almost nothing so far) is not used to divide."""


ShareTable = dict[int, tuple[float, float]]
"""``age -> (expected cumulative paid share, its standard error)`` of one series."""


def share_tables(completion: pl.DataFrame | None) -> dict[str, ShareTable]:
    """Each series' :data:`ShareTable` from a completion table (the first row of an age)."""
    tables: dict[str, ShareTable] = {}
    if completion is None:
        return tables
    cols = completion.select(ID_COL, "age", "paid_share", "paid_share_sd")
    for uid, age, share, sd in cols.iter_rows():
        tables.setdefault(str(uid), {}).setdefault(int(age), (float(share), float(sd)))
    return tables


def share_at(table: ShareTable, age: int) -> tuple[float, float]:
    """(paid share, sd) at ``age`` (a negative age is 0; ``(1.0, 0.0)`` beyond the table)."""
    return table.get(max(int(age), 0), (1.0, 0.0))


def paid_share(completion: pl.DataFrame | None, unique_id: str, age: int) -> tuple[float, float]:
    """(expected cumulative paid share, its standard error) of a series' care month at ``age``.

    ``(1.0, 0.0)`` when there is no completion table (flux basis, old bundle), the age is
    beyond the table, or the series is unknown (a negative age is treated as 0).
    """
    return share_at(share_tables(completion).get(unique_id, {}), age)


def load_triangle(meta: PanelMeta, panel_path: Path | None = None) -> pl.DataFrame | None:
    """The triangle of a panel: ``spendcast.triangle`` in its metadata, else beside it."""
    candidates: list[Path] = []
    if META_TRIANGLE in meta.extra:
        candidates.append(Path(meta.extra[META_TRIANGLE]))
    if panel_path is not None:
        candidates.append(triangle_path(Path(panel_path)))
    for c in candidates:
        if c.exists():
            return pl.read_parquet(c)
    return None


@dataclass
class CompletionReport:
    """What completion did (logged by tracking)."""

    applied: bool
    reason: str = ""
    max_age: int = 0
    as_of: str | None = None
    months_completed: int = 0
    rows_completed: int = 0
    dropped_truncated: int = 0
    mape_by_age: dict[int, float] = field(default_factory=dict)
    factors: pl.DataFrame | None = None
    backtest: pl.DataFrame | None = None

    def metrics(self) -> dict[str, float]:
        out = {f"completion_mape_age{a}": v for a, v in self.mape_by_age.items()}
        out["completion_months_completed"] = float(self.months_completed)
        out["completion_rows_completed"] = float(self.rows_completed)
        out["completion_dropped_truncated"] = float(self.dropped_truncated)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "max_age": self.max_age,
            "as_of": self.as_of,
            "months_completed": self.months_completed,
            "rows_completed": self.rows_completed,
            "dropped_truncated": self.dropped_truncated,
            "mape_by_age": {str(k): v for k, v in self.mape_by_age.items()},
        }

    def __str__(self) -> str:
        return json.dumps(self.to_json())


# --------------------------------------------------------------------------- estimation


def _all_levels(triangle: pl.DataFrame, levels: tuple[str, ...]) -> pl.DataFrame:
    """``unique_id, c, p, y`` (month indexes) for every series at every level."""
    base = triangle.with_columns(
        month_index_expr(pl.col(TIME_COL)).alias("c"),
        month_index_expr(pl.col(PROCESSING_COL)).alias("p"),
    )
    frames = []
    for i in range(len(levels) + 1):
        uid = pl.concat_str([pl.lit(ROOT_ID), *[pl.col(c) for c in levels[:i]]], separator=SEP)
        frames.append(
            base.with_columns(uid.alias(ID_COL))
            .group_by(ID_COL, "c", "p")
            .agg(pl.col(TARGET_COL).sum())
        )
    return pl.concat(frames)


@dataclass
class _Cube:
    ids: list[str]
    first: int  # first processing month index
    last: int  # last processing month index
    A: int  # ages 0..A-1
    cum: np.ndarray  # (U, care months first..last, A) cumulative paid, nan if unobserved
    parent: np.ndarray  # (U,) parent row or -1
    depth: np.ndarray  # (U,)


def _cube(triangle: pl.DataFrame, levels: tuple[str, ...], max_age: int) -> _Cube:
    tri = _all_levels(triangle, levels)
    first, last = int(tri["p"].min()), int(tri["p"].max())  # type: ignore[arg-type]
    A = max(1, min(max_age + 1, last - first + 1))
    ids = sorted(tri[ID_COL].unique().to_list(), key=lambda u: (u.count(SEP), u))
    pos = {u: i for i, u in enumerate(ids)}
    n_c = last - first + 1
    inc = np.zeros((len(ids), n_c, A))
    t = tri.filter((pl.col("c") >= first) & (pl.col("p") - pl.col("c") < A))
    t = t.filter(pl.col("p") >= pl.col("c"))
    u_idx = np.array([pos[u] for u in t[ID_COL].to_list()], dtype=np.int64)
    c_idx = (t["c"].to_numpy() - first).astype(np.int64)
    a_idx = (t["p"].to_numpy() - t["c"].to_numpy()).astype(np.int64)
    np.add.at(inc, (u_idx, c_idx, a_idx), t[TARGET_COL].to_numpy())
    cum = np.cumsum(inc, axis=2)
    observed = (np.arange(n_c)[:, None] + np.arange(A)[None, :]) <= (last - first)
    cum[:, ~observed] = np.nan
    parent = np.array([pos.get(parent_id(u) or "", -1) for u in ids], dtype=np.int64)
    depth = np.array([u.count(SEP) for u in ids], dtype=np.int64)
    return _Cube(ids, first, last, A, cum, parent, depth)


def _factors(cum: np.ndarray, cutoff: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Chain-ladder factors and Mack's factor variances, (U, A-1) each.

    ``cutoff``: use only cells with care index + age + 1 <= cutoff (data known then).
    """
    U, n_c, A = cum.shape
    if A < 2:
        return np.ones((U, 0)), np.zeros((U, 0))
    x, y = cum[:, :, :-1], cum[:, :, 1:]
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if cutoff is not None:
        ok &= (np.arange(n_c)[:, None] + np.arange(1, A)[None, :]) <= cutoff
    xs = np.where(ok, x, 0.0).sum(axis=1)
    ys = np.where(ok, y, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(xs > 0, ys / xs, 1.0)
        ratio = np.where(ok, y / np.where(ok, x, 1.0), 0.0)
        dev = np.where(ok, x * (ratio - f[:, None, :]) ** 2, 0.0).sum(axis=1)
        n = ok.sum(axis=1)
        sigma2 = np.where(n >= 2, dev / np.maximum(n - 1, 1), np.nan)
    # Mack: an age with < 2 ratios borrows the previous age's sigma^2 (0 if none)
    for a in range(1, sigma2.shape[1]):
        sigma2[:, a] = np.where(np.isnan(sigma2[:, a]), sigma2[:, a - 1], sigma2[:, a])
    sigma2 = np.nan_to_num(sigma2, nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_f = np.where(xs > 0, sigma2 / xs, 0.0)
    f = np.where(np.isfinite(f) & (f > 0), f, 1.0)
    return f, var_f


def _pool(cube: _Cube, f: np.ndarray, var_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink each series' factors toward its parent's (top-down, empirical Bayes)."""
    f, var_f = f.copy(), var_f.copy()
    for d in range(1, int(cube.depth.max(initial=0)) + 1):
        rows = np.flatnonzero(cube.depth == d)
        for par in np.unique(cube.parent[rows]):
            kids = rows[cube.parent[rows] == par]
            fp, vp = f[par], var_f[par]
            # between-children variance of the factors around the parent (per age)
            tau2 = np.maximum(((f[kids] - fp) ** 2).mean(axis=0) - var_f[kids].mean(axis=0), 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(tau2 + var_f[kids] > 0, tau2 / (tau2 + var_f[kids]), 0.0)
            f[kids] = w * f[kids] + (1 - w) * fp
            # posterior variance (normal-normal): w * var_own, plus the parent's own uncertainty
            var_f[kids] = w * var_f[kids] + (1 - w) ** 2 * vp
    return f, var_f


def _shares(f: np.ndarray, var_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative paid share by age 0..A-1 and its standard error, (U, A) each."""
    U = f.shape[0]
    log_f = np.log(f)
    rel = var_f / f**2
    # share(a) = exp(-sum_{k>=a} log f_k)
    tail_log = np.concatenate([np.cumsum(log_f[:, ::-1], axis=1)[:, ::-1], np.zeros((U, 1))], 1)
    tail_rel = np.concatenate([np.cumsum(rel[:, ::-1], axis=1)[:, ::-1], np.zeros((U, 1))], 1)
    share = np.exp(-tail_log)
    return share, share * np.sqrt(tail_rel)


def estimate(
    triangle: pl.DataFrame, meta: PanelMeta, *, max_age: int = MAX_AGE, backtest: bool = True
) -> tuple[pl.DataFrame, CompletionReport]:
    """Paid shares by age for every series (completion frame) and the back-test.

    Args:
        triangle: hierarchy columns, ``ds`` (care month), ``processing_ds``, ``y``.
        meta: the panel's metadata (its hierarchy).
        max_age: oldest age with a factor (fewer when the files span fewer months).
        backtest: also compute the back-test errors by age.

    Returns:
        ``unique_id, age, paid_share, paid_share_sd`` and a report (factors, back-test).
    """
    cube = _cube(triangle, tuple(meta.hierarchy), max_age)
    f, var_f = _pool(cube, *_factors(cube.cum))
    share, sd = _shares(f, var_f)
    U, A = share.shape
    frame = pl.DataFrame(
        {
            ID_COL: np.repeat(np.array(cube.ids, dtype=object), A).tolist(),
            "age": np.tile(np.arange(A, dtype=np.int64), U),
            "paid_share": share.ravel(),
            "paid_share_sd": sd.ravel(),
        },
        schema=COMPLETION_COLUMNS,
    )
    factors = frame.join(
        pl.DataFrame(
            {
                ID_COL: np.repeat(np.array(cube.ids, dtype=object), A).tolist(),
                "age": np.tile(np.arange(A, dtype=np.int64), U),
                "factor": np.concatenate([f, np.ones((U, 1))], axis=1).ravel(),
                "factor_sd": np.sqrt(np.concatenate([var_f, np.zeros((U, 1))], axis=1)).ravel(),
            },
            schema_overrides={ID_COL: pl.String},
        ),
        on=[ID_COL, "age"],
    )
    as_of = month_of(cube.last)
    report = CompletionReport(applied=False, max_age=A - 1, as_of=str(as_of), factors=factors)
    if backtest:
        report.backtest = _backtest(cube)
        bt = report.backtest.group_by("age").agg(
            ((pl.col("predicted") - pl.col("actual")).abs().sum() / pl.col("actual").sum()).alias(
                "mape"
            )
        )
        report.mape_by_age = {int(a): float(m) for a, m in bt.sort("age").iter_rows()}
    return frame, report


def _backtest(cube: _Cube) -> pl.DataFrame:
    """Ultimate predicted at each age with the factors known then, vs the actual."""
    U, n_c, A = cube.cum.shape
    rows: list[tuple[np.ndarray, int, int, np.ndarray, np.ndarray]] = []
    last_rel = cube.last - cube.first
    lo = max(0, min(BACKTEST_MIN_MONTHS, last_rel - (A - 1)))
    for cutoff in range(0, last_rel + 1):
        care = [(cutoff - a, a) for a in range(A - 1) if lo <= cutoff - a <= last_rel - (A - 1)]
        if not care:
            continue
        f, var_f = _pool(cube, *_factors(cube.cum, cutoff))
        share, _ = _shares(f, var_f)
        for c, a in care:
            paid = cube.cum[:, c, a]
            actual = cube.cum[:, c, A - 1]
            s = np.where(share[:, a] >= MIN_SHARE, share[:, a], 1.0)
            rows.append((np.arange(U), c, a, paid / s, actual))
    if not rows:
        return pl.DataFrame(
            schema={
                ID_COL: pl.String,
                TIME_COL: pl.Date,
                "age": pl.Int64,
                "predicted": pl.Float64,
                "actual": pl.Float64,
            }
        )
    ids = np.array(cube.ids, dtype=object)
    frames = []
    for u, c, a, pred, actual in rows:
        m = cube.first + c
        frames.append(
            pl.DataFrame(
                {
                    ID_COL: ids[u].tolist(),
                    TIME_COL: [month_of(m)] * len(u),
                    "age": [a] * len(u),
                    "predicted": pred,
                    "actual": actual,
                },
                schema_overrides={ID_COL: pl.String, "age": pl.Int64},
            )
        )
    return pl.concat(frames).filter(pl.col("actual") > 0)


# --------------------------------------------------------------------------- completion


def complete(
    panel: pl.DataFrame,
    triangle: pl.DataFrame | None,
    meta: PanelMeta,
    *,
    max_age: int = MAX_AGE,
    backtest: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame | None, CompletionReport]:
    """Complete the recent care months of a care-basis bottom panel.

    Every bottom value of care month ``ds`` at age ``a`` (the triangle's last processing month
    minus ``ds``) below ``A - 1`` is divided by the series' expected paid share at that age;
    care months before the triangle's first processing month (left-truncated: their early
    payments are in files not read) are dropped. Flux basis or no triangle: the panel is
    returned unchanged with no completion frame (the report says why).

    Returns:
        (completed panel, completion frame or None, report).
    """
    if meta.basis != "care":
        return panel, None, CompletionReport(applied=False, reason="flux basis: nothing to do")
    if triangle is None or triangle.is_empty():
        warnings.warn(
            "care-basis panel without a processing x care triangle: recent care months are "
            "incomplete and are not completed (re-ingest the Open DAMIR files with --basis care)",
            stacklevel=2,
        )
        return panel, None, CompletionReport(applied=False, reason="no triangle")
    frame, report = estimate(triangle, meta, max_age=max_age, backtest=backtest)
    levels = list(meta.hierarchy)
    first = int(triangle.select(month_index_expr(pl.col(PROCESSING_COL)).min()).item())
    last = int(triangle.select(month_index_expr(pl.col(PROCESSING_COL)).max()).item())
    uid = pl.concat_str([pl.lit(ROOT_ID), *[pl.col(c) for c in levels]], separator=SEP)
    df = panel.with_columns(uid.alias("_uid"), month_index_expr(pl.col(TIME_COL)).alias("_m"))
    truncated = df.filter(pl.col("_m") < first)
    df = df.filter(pl.col("_m") >= first).with_columns((last - pl.col("_m")).alias("_age"))
    shares = frame.select(
        pl.col(ID_COL).alias("_uid"),
        pl.col("age").alias("_age"),
        pl.col("paid_share").alias("_share"),
    )
    df = df.join(shares, on=["_uid", "_age"], how="left").with_columns(
        pl.when(pl.col("_share").is_not_null() & (pl.col("_share") >= MIN_SHARE))
        .then(pl.col("_share"))
        .otherwise(1.0)
        .alias("_share")
    )
    done = df.filter(pl.col("_share") < 1.0)
    completed = df.with_columns((pl.col(TARGET_COL) / pl.col("_share")).alias(TARGET_COL)).select(
        panel.columns
    )
    report.applied = True
    report.months_completed = done[TIME_COL].n_unique()
    report.rows_completed = done.height
    report.dropped_truncated = truncated.height
    return completed, frame, report
