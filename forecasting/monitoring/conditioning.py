"""One-step-ahead conditioning: a series' monitoring model refitted, updated on known months.

A model trained up to month ``T`` judges ``T+k`` with a k-step interval. When the values of
``T+1 .. T+j`` are known, the judgement of ``T+k`` (``k > j``) is conditioned on them: the
series' monitoring model (``monitor_model`` of ``series.parquet``, by default the combination
whatever the selection gave planners, see ``TrainConfig.monitor_model``; the selected model in
bundles trained before it; the members of an ensemble, combined the same way by
:func:`forecasting.training.models.combine`) is fitted once on the training history as
training fitted it (exceptional months adjusted) — training stores the state of its own final
fits in the bundle (:func:`fitted_states`, :mod:`forecasting.fitted_state`); a bundle without
it refits lazily at its first judgement (or ahead, by :func:`warm_up`) — and its ``forward``
method (fixed parameters, state updated on the new months) gives the forecast of ``T+k``
given the known months (:meth:`Conditioner.forecast`; with none, the forecasts from the
training end). That forecast is the judged expectation: the same model's one-step backtest
errors calibrate the bounds (:mod:`~forecasting.monitoring.calibration`), so the bounds are
centred where they were measured. The stored forecast is reconciled across the hierarchy
(planners' numbers add up), and MinTrace moves a bottom series' mean by an amount that
conditioning on new months never takes back: judged around it, PBS flagged 4.0 % of its clean
held-out months at level 99 instead of 2.7 %. Results are cached per known values, so
re-judging costs O(1). AutoARIMA gets the months' working days as regressor when trained
with them.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from forecasting.bundle import BundleMeta, depth
from forecasting.calendar import month_of
from forecasting.fitted_state import FittedStateError, FittedStates
from forecasting.training.models import SEASON, combine, ensemble_kind

__all__ = [
    "Conditioner",
    "KeptStates",
    "conditioner",
    "plausible",
    "warm_up",
    "fitted_states",
]

if TYPE_CHECKING:
    from forecasting.training.engines import Engine

Stored = Callable[[], "tuple[tuple[str, ...], list[Any] | None] | None"]
"""Reads a series' fitted state from the bundle: ``(members, model_ dicts or None)``."""

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
        stored: the series' fitted state written by training (None: fit at first use).
        fitted_on: the values training fitted the models on (``history_y`` with its
            exceptional months adjusted, :mod:`forecasting.training.adjust`); None: ``history_y``.
            The models are fitted on these, and their state run over ``history_y``.
    """

    def __init__(
        self,
        members: tuple[str, ...],
        kind: str,
        calendar: bool,
        history_y: np.ndarray,
        history_start: int,
        horizon: int,
        stored: Stored | None = None,
        fitted_on: np.ndarray | None = None,
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
        self._stored = stored
        self.fitted_on = history_y if fitted_on is None else fitted_on

    def ready(self) -> bool:
        """Fit the models now if not yet done; whether conditioning is available."""
        # the service warms series up in a thread while requests judge: fit once, publish
        # `_base` before `_models` so a reader never sees a half-fitted series
        if self._models is not None:
            return self._base_finite()
        with self._lock:
            if self._models is not None:
                return self._base_finite()
            if self._failed or not self.conditionable():
                return False
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    models = self._stored_members()
                    if models is None:
                        models = self._fit_members()
                    self._base = self._forward(self.history_y, self.horizon, models)
                    self._models = models
            except Exception:  # noqa: BLE001 - a model that cannot refit: judge unconditioned
                self._models, self._base, self._failed = None, None, True
                return False
            return self._base_finite()

    def conditionable(self) -> bool:
        """Whether the series has models to condition with and two seasons to fit them on."""
        return bool(self.members) and len(self.history_y) >= 2 * SEASON

    def forecast(self, known: tuple[float, ...]) -> np.ndarray | None:
        """The model's own forecasts of months ``T+j+1..`` given the values of ``T+1..T+j``.

        ``known`` may be empty (the forecasts from the training end). ``None`` when the series
        has no refittable model, or the updated forecasts are not :func:`plausible` (judged
        unconditioned).
        """
        hit = self._cache.get(known)
        if hit is not None:
            return hit
        if not self.ready():
            return None
        assert self._base is not None
        if not known:
            return self._base
        y = np.concatenate([self.history_y, np.asarray(known)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self._forward(y, self.horizon - len(known))
        if not plausible(f, y):
            return None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[known] = f
        return f

    def _base_finite(self) -> bool:
        return bool(self._base is not None and np.isfinite(self._base).all())

    def spec(self) -> Spec:
        """The arguments that build this conditioner afresh (without a stored state)."""
        return (
            self.members,
            self.kind,
            self.calendar,
            self.history_y,
            self.history_start,
            self.horizon,
            None,
            self.fitted_on,
        )

    def states(self) -> list[Any] | None:
        """The fitted ``model_`` dicts of the members (after :meth:`ready`); None if failed."""
        if self._models is None:
            return None
        return [m.model_ for m in self._models]

    def _stored_members(self) -> list[Any] | None:
        """The members rebuilt from the stored state; None when there is none to use.

        Raises:
            RuntimeError: training stored that this series' models could not be fitted.
        """
        if self._stored is None:
            return None
        try:
            entry = self._stored()
        except FittedStateError:
            return None  # unreadable: refit
        if entry is None or entry[0] != self.members:
            return None
        if entry[1] is None:
            raise RuntimeError("training could not fit this series' conditioning models")
        from forecasting.training.models import make_model

        models = []
        for alias, state in zip(self.members, entry[1], strict=True):
            m = make_model(alias)
            m.model_ = state
            models.append(m)
        return models

    def _fit_members(self) -> list[Any]:
        from forecasting.training.models import make_model

        models = []
        for alias in self.members:
            m = make_model(alias)
            if alias == "AutoARIMA" and self.calendar:
                m.fit(self.fitted_on, self._exog(len(self.fitted_on), 0)[0])
            else:
                m.fit(self.fitted_on)
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


def plausible(f: np.ndarray, y: np.ndarray) -> bool:
    """Whether forecasts ``f`` of a series whose values so far are ``y`` are finite and within
    one range of the values beyond their range (``[min - r, max + r]``, ``r = max - min``).

    A model's state updated on a few new months (``forward``, fixed parameters) can diverge:
    AutoCES fitted on 30 months of a generated series forecast -2,370 for a series near 100
    once one month was added, and every later month of it was flagged. Within a year no
    monthly series leaves a band as wide again as all it has done (a trend over the history
    moves it less than that in one more horizon); beyond it the update is broken, and the
    month is judged unconditioned instead (the forecast from the training end, wider bounds).
    """
    if not np.isfinite(f).all():
        return False
    lo, hi = float(np.min(y)), float(np.max(y))
    r = hi - lo
    return bool(np.all(f >= lo - r) and np.all(f <= hi + r))


def conditioner(
    info: Mapping[str, object],
    history_y: np.ndarray,
    history_start: int,
    horizon: int,
    meta: BundleMeta,
    fitted: FittedStates | None = None,
    fitted_on: np.ndarray | None = None,
) -> Conditioner:
    """The (not yet fitted) conditioning model of a series from its ``series.parquet`` row
    and, when training stored them, its fitted models (``fitted``); ``fitted_on``: the
    training values with exceptional months adjusted (see :class:`Conditioner`)."""
    candidates = [m for m in meta.models if ensemble_kind(m) is None]
    model, listed = _judged_by(info)
    uid = str(info.get("unique_id"))
    return Conditioner(
        members=_members(model, listed, candidates),
        kind=ensemble_kind(model) or "mean",
        calendar=_french_calendar(meta.config) and "AutoARIMA" in candidates,
        history_y=history_y,
        history_start=history_start,
        horizon=horizon,
        stored=functools.partial(fitted.get, uid) if fitted is not None else None,
        fitted_on=fitted_on,
    )


def _judged_by(info: Mapping[str, object]) -> tuple[str, object]:
    """The model monitoring judges a series with and its listed members: ``monitor_model``
    and ``monitor_members`` of ``series.parquet`` (``TrainConfig.monitor_model``); bundles
    trained before them judge with the selected ``model`` and its ``members``."""
    judged = info.get("monitor_model")
    if judged:
        return str(judged), info.get("monitor_members")
    return str(info.get("model") or ""), info.get("members")


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
    """Ready every series' conditioning model, top of the hierarchy first.

    With the fitted state stored by training this rebuilds the models (~3 ms a series);
    without it (older bundles), it refits each series' chosen model once (AutoETS ~70 ms,
    AutoARIMA with working days ~0.8 s per series). Doing it after a model load keeps that
    cost out of the first monitoring requests. Returns how many series can be conditioned;
    stops before the next series once ``cancel`` is set (the model was replaced).
    """
    order = sorted(conditioners, key=depth)
    return sum(conditioners[uid].ready() for uid in order if not (cancel and cancel.is_set()))


KeptStates = tuple[np.ndarray, Mapping[str, Any]]
"""What training already fitted on a series: the values, and each candidate's ``model_``
(None where it failed)."""


def fitted_states(
    conditioners: Mapping[str, Conditioner],
    engine: Engine | None = None,
    kept: Mapping[str, KeptStates] | None = None,
) -> FittedStates:
    """Every series' conditioning models, fitted once at training, as their stored state.

    A series whose members training already fitted on exactly its history (``kept``: the
    final forecasts' fits, see :func:`forecasting.training.engines.run_forecast`) stores
    those states as they are: the same fit as :meth:`Conditioner.ready` would make. The
    others (an adjusted history, a member that failed) are fitted here: with an ``engine``
    (:mod:`forecasting.training.engines`) where the training's candidates are (the local
    process pool, or the Dask cluster); without one, in this process.
    """
    specs = {uid: c.spec() for uid, c in conditioners.items() if c.members}
    kept = kept or {}
    fitted: dict[str, tuple[tuple[str, ...], list[Any] | None]] = {
        uid: entry
        for uid in specs
        if (entry := _kept(conditioners[uid], kept.get(uid))) is not None
    }
    todo = {uid: spec for uid, spec in specs.items() if uid not in fitted}
    if engine is None or not todo:
        fitted.update(_fit_specs(todo))
    else:
        import polars as pl

        frame = pl.DataFrame({"unique_id": list(todo)})
        for part in engine.map(functools.partial(_fit_frame, specs=todo), frame):
            fitted.update(part)
    return FittedStates.of({uid: fitted[uid] for uid in specs})


def _kept(c: Conditioner, entry: KeptStates | None) -> tuple[tuple[str, ...], list[Any]] | None:
    """The series' kept member states when they were fitted on its history, else None."""
    if entry is None or not c.conditionable():
        return None
    y, states = entry
    members = [states.get(alias) for alias in c.members]
    if not np.array_equal(y, c.fitted_on) or any(m is None for m in members):
        return None
    return c.members, members


Spec = tuple[tuple[str, ...], str, bool, np.ndarray, int, int, None, np.ndarray]
"""What builds a :class:`Conditioner` (:meth:`Conditioner.spec`), picklable."""


def _fit_specs(specs: Mapping[str, Spec]) -> dict[str, tuple[tuple[str, ...], list[Any] | None]]:
    out = {}
    for uid in sorted(specs, key=depth):
        c = Conditioner(*specs[uid])
        c.ready()
        out[uid] = (c.members, c.states())
    return out


def _fit_frame(
    frame: Any, specs: Mapping[str, Spec], n_jobs: int = 1
) -> dict[str, tuple[tuple[str, ...], list[Any] | None]]:
    """:func:`_fit_specs` over the series of ``frame`` (``n_jobs`` processes; -1: all)."""
    ids = frame["unique_id"].to_list()
    jobs = (os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs)
    if jobs == 1 or len(ids) < 2:
        return _fit_specs({u: specs[u] for u in ids})
    from concurrent.futures import ProcessPoolExecutor

    chunks = [ids[i::jobs] for i in range(jobs)]
    out: dict[str, tuple[tuple[str, ...], list[Any] | None]] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(_fit_specs, [{u: specs[u] for u in c} for c in chunks if c]):
            out.update(part)
    return out


def _french_calendar(config: Mapping[str, object]) -> bool:
    """Whether training gave AutoARIMA the French working days: the effective ``country``
    of the run (bundles before it recorded ``calendar`` as a bool)."""
    if "country" in config:
        return config["country"] == "france"
    return config.get("calendar") is True
