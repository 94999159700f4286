"""Experiment configuration: one TOML file = one experiment = one MLflow run."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from forecasting.errors import InputError

__all__ = [
    "TrainConfig",
    "load_config",
    "CANDIDATES",
    "EnsembleKind",
    "Metric",
    "IntervalMethod",
    "Reconciler",
]

CANDIDATES = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta", "AutoCES")
EnsembleKind = Literal["mean", "median"]
Metric = Literal["mase", "smape", "rmsse"]
"""Metrics that can rank the candidates (lower is better)."""
IntervalMethod = Literal["auto", "model", "conformal"]
Reconciler = Literal["mint_shrink", "bottom_up", "ols", "wls_struct", "none"]


class TrainConfig(BaseModel):
    """What a training run does. Every field has a default: an empty file is valid.

    Attributes:
        experiment: MLflow experiment name.
        data: optional path to the panel (relative to the TOML file); the CLI argument wins.
        models: candidate aliases (see ``CANDIDATES``).
        ensembles: combinations of the best ``ensemble_k`` candidates: ``mean``, ``median``.
        ensemble_k: how many of the best candidates (by backtest) a combination takes.
        calendar: give AutoARIMA French working days per month as exogenous regressor.
        horizon: months ahead.
        windows: rolling-origin backtest windows (at least 3).
        step: months between two backtest cutoffs (default: horizon).
        primary_metric: metric that picks each series' model and the champion.
        levels: interval levels in percent.
        intervals: ``auto`` (conformal where it calibrates better), ``model`` or ``conformal``.
        reconciliation: MinTrace ``mint_shrink`` by default.
        n_paths: sample paths stored for annual totals and budget probabilities.
        seed: random seed of the sample paths.
        nonnegative: clip forecasts at zero (true for amounts).
    """

    model_config = ConfigDict(extra="forbid")

    experiment: str = "spendcast"
    description: str = ""
    data: str | None = None
    models: list[str] = Field(default_factory=lambda: list(CANDIDATES))
    ensembles: list[EnsembleKind] = Field(default_factory=lambda: list(get_args(EnsembleKind)))
    ensemble_k: int = Field(3, ge=2)
    calendar: bool = True
    horizon: int = Field(12, ge=1, le=60)
    windows: int = Field(3, ge=3, le=24)
    step: int | None = Field(None, ge=1)
    primary_metric: Metric = "mase"
    levels: list[int] = Field(default_factory=lambda: [50, 80, 90, 95, 99])
    intervals: IntervalMethod = "auto"
    reconciliation: Reconciler = "mint_shrink"
    n_paths: int = Field(500, ge=50, le=10_000)
    seed: int = 0
    nonnegative: bool = True

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {list(CANDIDATES)}")
        if not v:
            raise ValueError("name at least one model")
        return v

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or any(not 0 < lv < 100 for lv in v):
            raise ValueError("levels are integers between 1 and 99")
        return sorted(set(v))

    @property
    def step_size(self) -> int:
        return self.step or self.horizon

    @property
    def ensemble_kinds(self) -> list[str]:
        """The ensembles a run builds: none with a single candidate."""
        return list(self.ensembles) if len(self.models) >= 2 else []

    def flat(self) -> dict[str, Any]:
        """Values as MLflow params (lists joined with commas)."""
        return {
            k: ",".join(map(str, v)) if isinstance(v, list) else v
            for k, v in self.model_dump().items()
        }


def load_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a TOML experiment file (or the defaults) and apply non-None overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise InputError("no such experiment file", file=str(p))
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"not valid TOML: {exc}", file=str(p)) from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(
            err["msg"],
            file=str(path) if path else None,
            column=field,
            hint="see experiments/README.md for the fields",
        ) from exc
