"""One-step-ahead conditioning: a series' chosen model refitted, updated on known months.

A model trained up to month ``T`` judges ``T+k`` with a k-step interval. When the values of
``T+1 .. T+j`` are known, the judgement of ``T+k`` (``k > j``) is conditioned on them: the
series' chosen model (the members of an ensemble, combined the same way by
:func:`forecasting.training.models.combine`) is fitted once on the training history, lazily at
its first conditioned judgement (or ahead, by :func:`warm_up`), and its ``forward`` method
(fixed parameters, state updated on the new months) gives the forecast of ``T+k`` with and
without the known months; the expectation is the stored (reconciled) forecast plus that
difference (:meth:`Conditioner.delta`). Results are cached per known values, so re-judging
costs O(1). AutoARIMA gets the months' working days as regressor when trained with them.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from forecasting.bundle import BundleMeta, depth
from forecasting.calendar import month_of
from forecasting.training.models import SEASON, combine, ensemble_kind

__all__ = ["Conditioner", "conditioner", "warm_up"]

_CACHE_MAX = 4096


class Conditioner:
    """The conditioning model of one series: fitted once (thread-safe), then cached deltas.

    Args:
        members: aliases of the models to refit (the chosen one, or an ensemble's members).
        kind: how members combine (``mean`` or ``median``).
        calendar: AutoARIMA takes working days as regressor.
        history_y: training values.
        history_start: month index (``forecasting.calendar.month_index``) of the first one.
        horizon: forecast months after the training end.
    """

    def __init__(
        self,
        members: tuple[str, ...],
        kind: str,
        calendar: bool,
        history_y: np.ndarray,
        history_start: int,
        horizon: int,
    ) -> None:
        self.members = members
        self.kind = kind
        self.calendar = calendar
        self.history_y = history_y
        self.history_start = history_start
        self.horizon = horizon
        self._models: list[Any] | None = None
        self._base: np.ndarray | None = None
        self._failed = False
        self._cache: dict[tuple[float, ...], np.ndarray] = {}
        self._lock = threading.Lock()
        self._wd: np.ndarray | None = None

    def ready(self) -> bool:
        """Fit the models now if not yet done; whether conditioning is available."""
        # the service warms series up in a thread while requests judge: fit once, publish
        # `_base` before `_models` so a reader never sees a half-fitted series
        if self._models is not None:
            return self._base_finite()
        with self._lock:
            if self._models is not None:
                return self._base_finite()
            if self._failed or not self.members or len(self.history_y) < 2 * SEASON:
                return False
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    models = self._fit_members()
                    self._base = self._forward(self.history_y, self.horizon, models)
                    self._models = models
            except Exception:  # noqa: BLE001 - a model that cannot refit: judge unconditioned
                self._models, self._base, self._failed = None, None, True
                return False
            return self._base_finite()

    def delta(self, known: tuple[float, ...]) -> np.ndarray | None:
        """Shift of the forecasts of months ``T+j+1..`` given the values of ``T+1..T+j``.

        ``None`` when the series has no refittable model (judged unconditioned).
        """
        hit = self._cache.get(known)
        if hit is not None:
            return hit
        if not known or not self.ready():
            return None
        assert self._base is not None
        j = len(known)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self._forward(np.concatenate([self.history_y, np.asarray(known)]), self.horizon - j)
        d = f - self._base[j:]
        if not np.isfinite(d).all():
            return None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[known] = d
        return d

    def _base_finite(self) -> bool:
        return bool(self._base is not None and np.isfinite(self._base).all())

    def _fit_members(self) -> list[Any]:
        from forecasting.training.models import make_model

        models = []
        for alias in self.members:
            m = make_model(alias)
            if alias == "AutoARIMA" and self.calendar:
                m.fit(self.history_y, self._exog(len(self.history_y), 0)[0])
            else:
                m.fit(self.history_y)
            models.append(m)
        return models

    def _forward(self, y: np.ndarray, h: int, models: list[Any] | None = None) -> np.ndarray:
        models = models if models is not None else self._models
        assert models is not None
        outs = []
        for alias, m in zip(self.members, models, strict=True):
            if alias == "AutoARIMA" and self.calendar:
                x, x_future = self._exog(len(y), h)
                f = m.forward(y=y, h=h, X=x, X_future=x_future)["mean"]
            else:
                f = m.forward(y=y, h=h)["mean"]
            outs.append(np.asarray(f, dtype=np.float64))
        return combine(np.vstack(outs), self.kind)

    def _exog(self, n: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Working days of the first ``n`` months of history (+ known) and the ``h`` after."""
        if self._wd is None or self._wd.shape[0] < n + h:
            from forecasting.calendar import working_days_frame

            total = max(n + h, len(self.history_y) + self.horizon)
            months = [month_of(self.history_start + i) for i in range(total)]
            self._wd = working_days_frame(months).drop("ds").to_numpy().astype(np.float64)
        return self._wd[:n], self._wd[n : n + h]


def conditioner(
    info: Mapping[str, object],
    history_y: np.ndarray,
    history_start: int,
    horizon: int,
    meta: BundleMeta,
) -> Conditioner:
    """The (not yet fitted) conditioning model of a series from its ``series.parquet`` row."""
    candidates = [m for m in meta.models if ensemble_kind(m) is None]
    model = str(info.get("model") or "")
    return Conditioner(
        members=_members(model, info.get("members"), candidates),
        kind=ensemble_kind(model) or "mean",
        calendar=_french_calendar(meta.config) and "AutoARIMA" in candidates,
        history_y=history_y,
        history_start=history_start,
        horizon=horizon,
    )


def _members(model: str, listed: object, candidates: list[str]) -> tuple[str, ...]:
    """Models to refit for conditioning: the chosen one, or an ensemble's members.

    An ensemble's members are read from a ``members`` column of ``series.parquet`` when the
    bundle has one; otherwise every candidate except AutoARIMA (the slow one) stands in.
    """
    from forecasting.training.config import CANDIDATES

    if model in CANDIDATES:
        return (model,)
    if ensemble_kind(model) is None:
        return ()
    if isinstance(listed, str) and listed:
        return tuple(m for m in listed.split(",") if m in CANDIDATES)
    if isinstance(listed, list | tuple) and listed:
        return tuple(str(m) for m in listed if m in CANDIDATES)
    cheap = [m for m in candidates if m != "AutoARIMA"]
    return tuple(cheap or candidates)


def warm_up(conditioners: Mapping[str, Conditioner], cancel: threading.Event | None = None) -> int:
    """Fit every series' conditioning model, top of the hierarchy first.

    One-step-ahead judging refits each series' chosen model once (AutoETS ~70 ms, AutoARIMA
    with working days ~0.8 s per series); doing it after a model load keeps that cost out of
    the first monitoring requests. Returns how many series can be conditioned; stops before
    the next series once ``cancel`` is set (the model was replaced).
    """
    order = sorted(conditioners, key=depth)
    return sum(conditioners[uid].ready() for uid in order if not (cancel and cancel.is_set()))


def _french_calendar(config: Mapping[str, object]) -> bool:
    """Whether training gave AutoARIMA the French working days: the effective ``country``
    of the run (bundles before it recorded ``calendar`` as a bool)."""
    if "country" in config:
        return config["country"] == "france"
    return config.get("calendar") is True
