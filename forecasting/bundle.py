"""The trained-model bundle: everything the service reads, precomputed at training time.

Training writes a :class:`Bundle` into the MLflow pyfunc model's artifacts; the service
(and ``spendcast detect``) loads it back. Nothing is fitted at serving time: forecasts,
interval bounds, sample paths, in-sample fits and backtest errors are all in here.

Files in a bundle directory:

=====================  =====================================================================
``meta.json``          :class:`BundleMeta` fields (horizon, levels, data range, metrics...)
``history.parquet``    ``unique_id, ds, y`` for every series at every level (training data)
``forecasts.parquet``  ``unique_id, ds, mean, lo_<L>, hi_<L>`` reconciled, for trained levels
``series.parquet``     ``unique_id, level, parent, last_ds, model, mase, smape, coverage_<L>``
                       , ``fallback_reason`` (null when the chosen model ran normally),
                       ``members`` (an ensemble's models, comma-separated; null otherwise),
                       ``monitor_model`` and ``monitor_members``: the model monitoring
                       judges with and its members (``TrainConfig.monitor_model``; absent
                       in bundles trained before it: ``model`` and ``members``),
                       ``label`` (display label, :mod:`forecasting.data.labels`; absent in
                       bundles trained before labels: the service then shows the last member),
                       ``min_cell`` (smallest monthly count of acts; null without counts)
                       and ``withheld`` (null, or ``<kind>: <why>`` for a series the service
                       must not serve: ``small-cell``, ``flat-total``; see
                       :func:`withheld_series`)
``paths.npz``          ``values`` float32 (n_series, n_paths, horizon), row order = ``ids``;
                       coherent across the hierarchy (parents are sums of children)
``insample.parquet``   ``unique_id, ds, y, fitted, lo_<L>, hi_<L>`` one-step in-sample fits
``backtest.parquet``   ``unique_id, ds, cutoff, h, y, yhat, yhat_monitor`` per window: ``yhat``
                       the chosen model's, ``yhat_monitor`` the monitoring model's (absent
                       in bundles trained before it)
``completion.parquet`` optional (care basis): ``unique_id, age, paid_share, paid_share_sd``
``adjustments.parquet`` optional: ``unique_id, ds, y, adjusted, reason``: exceptional months
                       replaced before fitting (the history keeps their values)
``conditioning.json``  optional, with ``conditioning.npz``: each series' conditioning models
                       fitted at training (:mod:`forecasting.fitted_state`: JSON + arrays, no
                       pickle), so that monitoring never refits at load
=====================  =====================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, ROOT_ID, SEP, TIME_COL
from forecasting.errors import SpendcastError
from forecasting.fitted_state import FittedStateError, FittedStates

__all__ = [
    "Bundle",
    "BundleMeta",
    "BundleError",
    "level_cols",
    "parent_id",
    "depth",
    "withheld_series",
]


class BundleError(SpendcastError):
    """A bundle directory that is missing files or does not match its contract."""


def level_cols(levels: list[int] | tuple[int, ...]) -> list[str]:
    """Interval column names for the given levels, ``lo_L`` then ``hi_L`` per level."""
    return [f"{side}_{lvl}" for lvl in levels for side in ("lo", "hi")]


def parent_id(unique_id: str) -> str | None:
    """``total/a/b`` -> ``total/a``; the root has no parent."""
    return None if unique_id == ROOT_ID else unique_id.rsplit(SEP, 1)[0]


def depth(unique_id: str) -> int:
    """0 for ``total``, 1 for its children, and so on."""
    return unique_id.count(SEP)


def withheld_series(series: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """Series id -> (kind, why) of the series not to serve (``withheld`` is not null).

    Bundles trained before the column existed withhold nothing.
    """
    if "withheld" not in series.columns:
        return {}
    rows = series.filter(pl.col("withheld").is_not_null()).select(ID_COL, "withheld").rows()
    out: dict[str, tuple[str, str]] = {}
    for uid, text in rows:
        kind, _, why = str(text).partition(": ")
        out[str(uid)] = (kind, why or kind)
    return out


@dataclass
class BundleMeta:
    """Facts about a trained model that the service reports as they are."""

    horizon: int
    levels: list[int]
    hierarchy: list[str]
    measure: str
    basis: str
    source: str
    first_ds: str
    last_ds: str
    trained_at: str
    data_fingerprint: str
    primary_metric: str = "mase"
    reconciliation: str = "mint_shrink"
    models: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    experiment: str | None = None


@dataclass
class Bundle:
    """A trained model's precomputed outputs (see the module docstring for the files)."""

    meta: BundleMeta
    history: pl.DataFrame
    forecasts: pl.DataFrame
    series: pl.DataFrame
    path_ids: list[str]
    paths: np.ndarray
    insample: pl.DataFrame
    backtest: pl.DataFrame
    completion: pl.DataFrame | None = None
    adjustments: pl.DataFrame | None = None
    conditioning: FittedStates | None = None

    FILES = (
        "meta.json",
        "history.parquet",
        "forecasts.parquet",
        "series.parquet",
        "paths.npz",
        "insample.parquet",
        "backtest.parquet",
    )

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the bundle to ``directory`` (created; replaced atomically if it exists)."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            (tmp / "meta.json").write_text(json.dumps(asdict(self.meta), indent=2, default=str))
            self.history.write_parquet(tmp / "history.parquet")
            self.forecasts.write_parquet(tmp / "forecasts.parquet")
            self.series.write_parquet(tmp / "series.parquet")
            self.insample.write_parquet(tmp / "insample.parquet")
            self.backtest.write_parquet(tmp / "backtest.parquet")
            if self.completion is not None:
                self.completion.write_parquet(tmp / "completion.parquet")
            if self.adjustments is not None:
                self.adjustments.write_parquet(tmp / "adjustments.parquet")
            if self.conditioning is not None:
                self.conditioning.save(tmp)
            np.savez_compressed(
                tmp / "paths.npz",
                ids=np.asarray(self.path_ids, dtype=str),
                values=self.paths.astype(np.float32),
            )
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Bundle:
        """Read a bundle written by :meth:`save`."""
        src = Path(directory)
        missing = [f for f in cls.FILES if not (src / f).exists()]
        if missing:
            raise BundleError(f"bundle {src} is missing {', '.join(missing)}")
        meta = BundleMeta(**json.loads((src / "meta.json").read_text()))
        with np.load(src / "paths.npz") as npz:
            ids = [str(i) for i in npz["ids"]]
            values = npz["values"]
        try:
            conditioning = FittedStates.load(src)
        except FittedStateError as e:
            raise BundleError(str(e)) from e
        return cls(
            meta=meta,
            history=pl.read_parquet(src / "history.parquet"),
            forecasts=pl.read_parquet(src / "forecasts.parquet"),
            series=pl.read_parquet(src / "series.parquet"),
            path_ids=ids,
            paths=values,
            insample=pl.read_parquet(src / "insample.parquet"),
            backtest=pl.read_parquet(src / "backtest.parquet"),
            completion=_optional(src / "completion.parquet"),
            adjustments=_optional(src / "adjustments.parquet"),
            conditioning=conditioning,
        )

    @property
    def ids(self) -> list[str]:
        return self.series[ID_COL].to_list()

    def forecast(
        self,
        ids: list[str] | None = None,
        horizon: int | None = None,
        levels: list[int] | None = None,
    ) -> pl.DataFrame:
        """The pyfunc contract's output: ``unique_id, ds, mean, lo_L, hi_L``, long."""
        h = self.meta.horizon if horizon is None else horizon
        lv = self.meta.levels if levels is None else levels
        df = self.forecasts
        if ids is not None:
            df = df.filter(pl.col(ID_COL).is_in(ids))
        df = df.sort(ID_COL, TIME_COL).with_columns(
            pl.int_range(1, pl.len() + 1).over(ID_COL).alias("_h")
        )
        return df.filter(pl.col("_h") <= h).select([ID_COL, TIME_COL, "mean", *level_cols(lv)])


def _optional(path: Path) -> pl.DataFrame | None:
    """An optional table of a bundle directory (None when the file is absent)."""
    return pl.read_parquet(path) if path.exists() else None
