"""Aggregate a bottom-level panel to every hierarchy level, and reconcile forecasts.

Series are named ``total``, ``total/<l1>``, ``total/<l1>/<l2>``... (hierarchicalforecast's
``aggregate`` joins the level values with ``/``). Reconciliation applies one linear map (from
hierarchicalforecast's reconcilers) to the point forecasts and to every interval bound, then
clips the bottom level at zero when asked and sums it up, so every output is coherent.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from hierarchicalforecast.methods import BottomUp, MinTrace
from hierarchicalforecast.utils import aggregate as hf_aggregate

from forecasting.data.panel import ID_COL, ROOT_ID, SEP, TARGET_COL, TIME_COL, PanelMeta
from forecasting.training.config import Reconciler

__all__ = ["Hierarchy", "aggregate_panel", "reconcile", "reconcile_or_fall_back", "level_of"]


@dataclass
class Hierarchy:
    """The summing structure of an aggregated panel.

    Attributes:
        ids: every series, rows of ``S`` (parents before children, as ``aggregate`` orders).
        bottom: the bottom-level ids, columns of ``S``.
        S: summing matrix (len(ids), len(bottom)).
        tags: hierarchy level name -> ids at that level (``total`` first).
    """

    ids: list[str]
    bottom: list[str]
    S: np.ndarray
    tags: dict[str, list[str]]

    @property
    def level_of(self) -> dict[str, str]:
        return {uid: name for name, ids in self.tags.items() for uid in ids}

    def bottom_index(self) -> np.ndarray:
        pos = {uid: i for i, uid in enumerate(self.ids)}
        return np.array([pos[b] for b in self.bottom])

    def sum_up(self, bottom_values: np.ndarray) -> np.ndarray:
        """Rows for every series from bottom rows (``bottom_values`` is (n_bottom, ...))."""
        flat = bottom_values.reshape(bottom_values.shape[0], -1)
        return (self.S @ flat).reshape((self.S.shape[0], *bottom_values.shape[1:]))


def level_of(unique_id: str, hierarchy: tuple[str, ...] | list[str]) -> str:
    """Hierarchy level name of an id: ``total`` or one of the hierarchy columns."""
    d = unique_id.count(SEP)
    return ROOT_ID if d == 0 else hierarchy[d - 1]


def aggregate_panel(panel: pl.DataFrame, meta: PanelMeta) -> tuple[pl.DataFrame, Hierarchy]:
    """Sum the bottom panel to every level with hierarchicalforecast's ``aggregate``.

    Args:
        panel: bottom-level panel (hierarchy columns, ``ds``, ``y``).
        meta: its metadata (``hierarchy`` gives the level order, top to bottom).

    Returns:
        ``unique_id, ds, y`` for every series (sorted) and the :class:`Hierarchy`.
    """
    levels = list(meta.hierarchy)
    inner = [f"_level{i}" for i in range(len(levels))]  # any level name works (unique_id too)
    df = panel.select(
        *[pl.col(c).alias(n) for c, n in zip(levels, inner, strict=True)], TIME_COL, TARGET_COL
    ).with_columns(pl.lit(ROOT_ID).alias("_root"))
    spec = [["_root", *inner[:i]] for i in range(len(levels) + 1)]
    y_df, s_df, tags_raw = hf_aggregate(df, spec)
    y_df = pl.from_pandas(y_df) if not isinstance(y_df, pl.DataFrame) else y_df
    s_pl = pl.from_pandas(s_df) if not isinstance(s_df, pl.DataFrame) else s_df
    ids = s_pl[ID_COL].to_list()
    bottom = [c for c in s_pl.columns if c != ID_COL]
    S = s_pl.select(bottom).to_numpy().astype(np.float64)
    names = [ROOT_ID, *levels]
    tags = {names[i]: [str(x) for x in tags_raw[SEP.join(spec[i])]] for i in range(len(spec))}
    y_df = y_df.select(
        pl.col(ID_COL).cast(pl.String), pl.col(TIME_COL).cast(pl.Date), pl.col(TARGET_COL)
    ).sort(ID_COL, TIME_COL)
    return y_df, Hierarchy(ids=ids, bottom=bottom, S=S, tags=tags)


_WEIGHED_BY_RESIDUALS = ("mint_shrink", "wls_var")
"""MinTrace methods whose weights are estimated from the series' one-step residuals."""


def _reconciler(method: str) -> Any:
    if method == "bottom_up":
        return BottomUp()
    if method in (*_WEIGHED_BY_RESIDUALS, "ols", "wls_struct"):
        return MinTrace(method=method, nonnegative=False)
    raise ValueError(f"unknown reconciliation '{method}'")


def reconcile(
    hier: Hierarchy,
    columns: dict[str, np.ndarray],
    *,
    method: Reconciler = "mint_shrink",
    residuals: np.ndarray | None = None,
    nonnegative: bool = True,
    lower: list[str] | None = None,
    upper: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Reconcile point and bound columns with one linear map; clip bottom; sum up.

    Args:
        hier: the hierarchy; arrays have rows in ``hier.ids`` order, shape (n_series, h).
        columns: name -> base forecasts (``mean`` first, then bounds).
        method: ``mint_shrink``, ``wls_var``, ``bottom_up``, ``ols``, ``wls_struct`` or
            ``none``.
        residuals: (n_series, T) one-step errors for ``mint_shrink`` (their shrunk covariance)
            and ``wls_var`` (their variances alone).
        nonnegative: clip the bottom level at zero before summing up.
        lower: names of lower-bound columns (kept <= mean after reconciliation).
        upper: names of upper-bound columns (kept >= mean).

    Returns:
        name -> coherent (n_series, h) array.
    """
    lower, upper = lower or [], upper or []
    if method == "none":  # each series keeps its own forecast, only clipped (not coherent)
        return _clip({k: v.copy() for k, v in columns.items()}, nonnegative, lower, upper)
    bottoms = _clip(_bottom_rows(hier, columns, method, residuals), nonnegative, lower, upper)
    return {k: hier.S @ bottoms[k] for k in columns}


def _bottom_rows(
    hier: Hierarchy,
    columns: dict[str, np.ndarray],
    method: Reconciler,
    residuals: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The bottom rows of each column after the reconciler's linear map."""
    rec = _reconciler(method)
    kwargs: dict[str, Any] = {}
    if method in _WEIGHED_BY_RESIDUALS:
        if residuals is None:
            raise ValueError(f"{method} needs residuals")
        res = np.nan_to_num(residuals)
        kwargs = {"y_insample": res, "y_hat_insample": np.zeros_like(res)}
    bidx = hier.bottom_index()
    bottoms = {}
    for k, v in columns.items():
        r = rec.fit_predict(S=hier.S, y_hat=v, **kwargs)
        full = r["mean"] if isinstance(r, dict) else r
        bottoms[k] = np.asarray(full)[bidx]
    return bottoms


def _clip(
    cols: dict[str, np.ndarray], nonnegative: bool, lower: list[str], upper: list[str]
) -> dict[str, np.ndarray]:
    """Clipped at zero when ``nonnegative``; then lower bounds <= ``mean`` <= upper bounds."""
    if nonnegative:
        cols = {k: np.maximum(v, 0.0) for k, v in cols.items()}
    for k in lower:
        cols[k] = np.minimum(cols[k], cols["mean"])
    for k in upper:
        cols[k] = np.maximum(cols[k], cols["mean"])
    return cols


def reconcile_or_fall_back(
    hier: Hierarchy,
    columns: dict[str, np.ndarray],
    levels: list[int],
    *,
    method: Reconciler,
    residuals: np.ndarray,
    nonnegative: bool,
) -> dict[str, np.ndarray]:
    """:func:`reconcile` a ``mean`` and its ``lo_L``/``hi_L`` bounds; ``bottom_up`` if it fails.

    Rows of ``residuals`` without spread (degenerate series) get a tiny deterministic jitter,
    which keeps the error covariance invertible. The fallback is bottom-up: it cannot fail and
    keeps each bottom series' own forecast. The structural ``wls_struct`` (the fallback before)
    spreads the hierarchy's incoherence over the bottom series in absolute amounts, whatever
    their size, so a small series takes a large one's share and is clipped at zero: on PBS
    (real-data suite, 2026-12-03) its bottom-level MASE was 4.65 against 1.42 for MinTrace and
    1.38 bottom-up.
    """
    res = residuals.copy()
    flat = res.std(axis=1) == 0
    if flat.any():
        rng = np.random.default_rng(0)
        scale = np.maximum(np.abs(columns["mean"][flat]).mean(axis=1, keepdims=True), 1.0) * 1e-6
        res[flat] = rng.standard_normal((int(flat.sum()), res.shape[1])) * scale
    lower, upper = [f"lo_{lv}" for lv in levels], [f"hi_{lv}" for lv in levels]
    kwargs: dict[str, Any] = {"residuals": res, "nonnegative": nonnegative}
    try:
        return reconcile(hier, columns, method=method, lower=lower, upper=upper, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of a reconciler: bottom-up
        if method == "bottom_up":
            raise
        warnings.warn(f"{method} failed ({exc}); using bottom_up", stacklevel=2)
        return reconcile(hier, columns, method="bottom_up", lower=lower, upper=upper, **kwargs)
