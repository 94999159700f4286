"""Experiment configuration: one TOML file = one experiment = one MLflow run."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from forecasting.errors import InputError

__all__ = [
    "TrainConfig",
    "load_config",
    "CANDIDATES",
    "DEFAULT_MODELS",
    "EnsembleKind",
    "Metric",
    "IntervalMethod",
    "Reconciler",
    "SelectionRule",
    "Calendar",
    "MonitorModel",
]

CANDIDATES = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta", "AutoCES")
DEFAULT_MODELS = ("AutoETS", "AutoTheta", "AutoCES", "SeasonalNaive")
"""The default candidates: AutoARIMA only where it earns its cost (it is ~7x slower)."""
EnsembleKind = Literal["mean", "median"]
Metric = Literal["mase", "smape", "rmsse"]
"""Metrics that can rank the candidates (lower is better)."""
IntervalMethod = Literal["auto", "model", "conformal"]
Reconciler = Literal["mint_shrink", "wls_var", "bottom_up", "ols", "wls_struct", "none"]
_DEFAULT_ENSEMBLES: tuple[EnsembleKind, ...] = ("median",)
SelectionRule = Literal["evidence", "best"]
"""``evidence``: the combination unless a candidate clearly beats it; ``best``: the top rank."""
MonitorModel = Literal["combination", "selected"]
"""What one-step monitoring judges with: the combination, or the model selected for planners."""
Calendar = Literal["auto", "france", "none"]
"""Whose calendar the data follows: ``auto`` is France for Open DAMIR and legacy files."""


class TrainConfig(BaseModel):
    """What a training run does. Every field has a default: an empty file is valid.

    Attributes:
        experiment: MLflow experiment name.
        data: optional path to the panel (relative to the TOML file); the CLI argument wins.
        models: candidate aliases (see ``CANDIDATES``; default ``DEFAULT_MODELS``).
        ensembles: combinations of the candidates: ``median`` (default), ``mean``.
        ensemble_k: how many of the best candidates (by backtest) a combination takes;
            ``None`` (default): every candidate, a fixed combination.
        selection: ``evidence`` (default): each series gets the first ensemble (the
            combination) unless one candidate beats it on the backtest by ``selection_margin``
            on average and in at least ``selection_wins`` of the windows, on a backtest of at
            least ``selection_windows`` non-overlapping windows; ``best``: whatever ranks first
            by ``primary_metric``.
        selection_margin: relative backtest improvement a candidate needs over the combination.
        selection_wins: share of backtest windows a candidate must win against it.
        selection_windows: fewest backtest windows without a month in common a series needs
            for a single candidate to replace the combination (windows a month apart overlap:
            twelve of them a year are about one window of evidence); a backtest of a single
            window (a series of 25 to 36 months) is exempt.
        monitor_model: the model monitoring judges each month with, one step ahead:
            ``combination`` (default): the combination (the first ensemble) for every series
            with a backtest, whatever the selection gave planners; ``selected``: each
            series' selected model. The selection is made on 12-month windows and says
            nothing about one-step accuracy; a SeasonalNaive pick ignores the latest level.
        calendar: ``auto`` (France for Open DAMIR and legacy panels, none for tidy files),
            ``france`` or ``none``; a French calendar gives AutoARIMA the working days per
            month as regressor and declares the known events (lockdowns) of
            :mod:`forecasting.training.events`. ``true``/``false`` mean ``france``/``none``.
        calendar_arima: with a known calendar, add AutoARIMA with the working days as
            regressor to the candidates (:mod:`forecasting.training.panel_rules`).
        adjust_outliers: adjust exceptional months (robust STL remainder beyond 3 IQR, and
            the calendar's known events) before fitting; the data keep their values.
        horizon: months ahead.
        windows: rolling-origin backtest windows (cutoffs); fewer for short series.
        step: months between two backtest cutoffs (default 1; ``None``: the horizon).
        refit: refit the candidates at every cutoff (``false``: fit at the first cutoff and
            update the state, statsforecast's ``refit=False``).
        primary_metric: metric that picks each series' model and the champion.
        levels: interval levels in percent.
        intervals: ``conformal`` (default), ``model`` or ``auto`` (the models' own bounds
            where they calibrate better on the backtest).
        reconciliation: MinTrace ``mint_shrink`` by default; ``wls_var`` (variances of the
            one-step residuals, no covariances), ``bottom_up``, ``ols``, ``wls_struct``, ``none``.
        n_paths: sample paths stored for annual totals and budget probabilities.
        seed: random seed of the sample paths.
        nonnegative: clip forecasts at zero (true for amounts).
    """

    model_config = ConfigDict(extra="forbid")

    experiment: str = "spendcast"
    description: str = ""
    data: str | None = None
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    ensembles: list[EnsembleKind] = Field(default_factory=lambda: list(_DEFAULT_ENSEMBLES))
    ensemble_k: int | None = Field(None, ge=2)
    selection: SelectionRule = "evidence"
    selection_margin: float = Field(0.05, ge=0.0, lt=1.0)
    selection_wins: float = Field(0.6, ge=0.0, le=1.0)
    selection_windows: int = Field(2, ge=1, le=120)
    monitor_model: MonitorModel = "combination"
    calendar: Calendar = "auto"
    calendar_arima: bool = True
    adjust_outliers: bool = True
    horizon: int = Field(12, ge=1, le=60)
    windows: int = Field(25, ge=1, le=120)
    step: int | None = Field(1, ge=1)
    refit: bool = False
    primary_metric: Metric = "mase"
    levels: list[int] = Field(default_factory=lambda: [50, 80, 90, 95, 99])
    intervals: IntervalMethod = "conformal"
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
        if len(set(v)) != len(v):
            raise ValueError(f"a model is named twice in {v}")
        return v

    @field_validator("calendar", mode="before")
    @classmethod
    def _calendar(cls, v: Any) -> Any:
        if isinstance(v, bool):  # experiment files before "auto": true gave AutoARIMA French days
            return "france" if v else "none"
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

    @property
    def members(self) -> int:
        """How many of the best candidates an ensemble takes (all when ``ensemble_k`` is None)."""
        return min(self.ensemble_k or len(self.models), len(self.models))

    def country(self, source: str) -> str | None:
        """``france`` when the panel's months follow the French calendar, else None.

        ``auto``: France for a panel of Assurance Maladie files (``spendcast.source``
        ``open-damir:...`` or ``legacy:...``, :func:`forecasting.data.codes.coded_source`).
        """
        from forecasting.data.codes import coded_source

        if self.calendar == "france" or (self.calendar == "auto" and coded_source(source)):
            return "france"
        return None

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
