"""Training results for the tracking tests: a real ``fit`` when T1's module is present,
otherwise a result assembled around the hand-built synthetic bundle (same contract)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import polars as pl

from forecasting.training.config import TrainConfig
from tests.service.synthetic import make_bundle

__all__ = ["make_result", "FAST"]

FAST = {"models": ["SeasonalNaive", "AutoETS"], "windows": 3, "n_paths": 100, "horizon": 6}


def make_result(seed: int = 0, *, mase: float = 0.9, fingerprint: str = "fp-a") -> Any:
    """A TrainResult-shaped object whose primary metric is ``mase``."""
    bundle = make_bundle(seed=seed, horizon=6, n_paths=100)
    metrics = {"mase": mase, "smape": 0.1 + seed / 100, "rmsse": mase * 1.1, "coverage_80": 0.8}
    bundle.meta = dataclasses.replace(bundle.meta, data_fingerprint=fingerprint, metrics=metrics)
    ids = bundle.ids
    model_metrics = pl.DataFrame(
        {
            "model": ["SeasonalNaive", "AutoETS"],
            "mase": [mase * 1.2, mase],
            "smape": [0.2, 0.1],
            "rmsse": [1.0, 0.9],
            "bias": [0.0, 0.01],
            "fit_seconds": [0.1, 0.5],
        }
    )
    sel = pl.DataFrame(
        {"unique_id": ids, "hierarchy_level": ["x"] * len(ids), "model": ["AutoETS"] * len(ids)}
    )
    return SimpleNamespace(
        bundle=bundle,
        cv=bundle.backtest,
        scores=sel.with_columns(pl.lit(mase).alias("mase")),
        selection=sel.with_columns(pl.lit(None, dtype=pl.String).alias("fallback_reason")),
        metrics=metrics,
        model_metrics=model_metrics,
        coverage=pl.DataFrame({"hierarchy_level": ["overall"], "level": [80], "coverage": [0.8]}),
        fallbacks=pl.DataFrame(
            schema={"unique_id": pl.String, "model": pl.String, "reason": pl.String}
        ),
        n_series={"total": 1, "a": 2, "b": 3},
        timings={"fit": 1.0},
        completion=None,
        adjustments=None,
        budgets=None,
    )


def fast_config(**kw: Any) -> TrainConfig:
    return TrainConfig(**{**FAST, "experiment": "t", **kw})
