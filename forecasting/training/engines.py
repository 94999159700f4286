"""Execution engines: where statsforecast fits a group of candidates over a frame of series.

The models and their data do not depend on the engine (as statsforecast keeps its
``ParallelBackend`` apart from the models): an :class:`Engine` runs a group of candidates'
rolling-origin ``cross_validation`` and their final forecast (with in-sample fitted values)
over a frame of series, in one statsforecast call per group (see
:func:`~forecasting.training.models.candidate_groups`), and closes what it owns.
:class:`LocalEngine` runs in this process (statsforecast's process pool on larger panels);
:class:`DaskEngine` splits the series into chunks fitted on a Dask cluster. Both give the same
numbers.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TIME_COL
from forecasting.errors import SpendcastError
from forecasting.training.models import EXOGENOUS, fallback_model, make_model, model_frame

__all__ = [
    "ENGINES",
    "Engine",
    "LocalEngine",
    "DaskEngine",
    "check_engine",
    "open_engine",
    "make_sf",
    "local_jobs",
    "run_cv",
    "run_forecast",
    "Forecasts",
]

ENGINES = ("local", "dask")

T = TypeVar("T")

#: Below this many series one process is faster than statsforecast's process pool.
PARALLEL_MIN_SERIES = 24


def local_jobs(df: pl.DataFrame) -> int:
    """statsforecast ``n_jobs`` for a local fit: every core once the panel is large enough.

    Measured on the demo panel (49 series, AutoARIMA with calendar, one backtest window,
    2 cores): 86.6 s with one process, 39.8 s with two.
    """
    return -1 if df[ID_COL].n_unique() >= PARALLEL_MIN_SERIES else 1


def make_sf(models: list[Any], n_jobs: int = 1) -> Any:
    """A StatsForecast object for monthly data with the SeasonalNaive fallback."""
    from statsforecast import StatsForecast

    return StatsForecast(models=models, freq="1mo", fallback_model=fallback_model(), n_jobs=n_jobs)


def run_cv(
    df: pl.DataFrame,
    aliases: Sequence[str],
    *,
    horizon: int,
    windows: int,
    step: int,
    levels: list[int] | None,
    refit: bool = True,
    n_jobs: int = 1,
) -> tuple[pl.DataFrame, float]:
    """Backtest a group of candidates on every series, in one statsforecast call.

    Args:
        df: ``unique_id, ds, y`` (plus exogenous columns, used by :data:`EXOGENOUS` models).
        aliases: candidate aliases (one group of
            :func:`~forecasting.training.models.candidate_groups`).
        horizon: months per window.
        windows: number of cutoffs.
        step: months between cutoffs.
        levels: model interval levels; ``None`` or empty: point forecasts only (much faster:
            AutoCES simulates its intervals).
        refit: refit at every cutoff; ``False`` fits at the first cutoff and updates the
            model's state on the later months (``forward``), parameters fixed.
        n_jobs: statsforecast processes (see :func:`local_jobs`).

    Returns:
        ``unique_id, ds, cutoff, y`` and ``<alias>[, <alias>-lo-L, <alias>-hi-L]`` of each
        candidate, and the seconds taken.
    """
    t0 = time.perf_counter()
    sf = make_sf([make_model(a) for a in aliases], n_jobs)
    cv = sf.cross_validation(
        h=horizon,
        df=model_frame(df, aliases),
        n_windows=windows,
        step_size=step,
        level=levels or None,
        refit=refit,
    )
    return pl.DataFrame(cv), time.perf_counter() - t0


@dataclass(frozen=True)
class Forecasts:
    """A group of candidates' final fits over a frame of series.

    Attributes:
        forecasts: ``unique_id, ds`` and ``<alias>, <alias>-lo-L, <alias>-hi-L`` per candidate.
        fitted: in-sample fitted values, ``unique_id, ds`` and one column per candidate.
        states: candidate -> series -> its fitted ``model_`` (None where statsforecast's
            fallback model stood in).
        seconds: candidate -> seconds its fits took, summed over the series (measured inside
            the worker processes, so each candidate's own cost, whatever the load balance).
    """

    forecasts: pl.DataFrame
    fitted: pl.DataFrame
    states: dict[str, dict[str, Any]]
    seconds: dict[str, float]


class _TimedFit:
    """Mixin: a fitted copy carries the seconds its ``fit`` took (``fit_seconds_``)."""

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> Any:  # noqa: N803
        t0 = time.perf_counter()
        fitted = super().fit(y=y, X=X)  # type: ignore[misc]
        fitted.fit_seconds_ = time.perf_counter() - t0
        return fitted


_TIMED = "_Timed"


def _timed_class(cls: type) -> Any:
    """The timed subclass of a statsforecast model class, made once, at module level (so
    worker processes unpickle it by name: :func:`__getattr__`)."""
    name = f"{_TIMED}{cls.__name__}"
    timed: Any = globals().get(name)
    if timed is None:
        timed = type(name, (_TimedFit, cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = timed
    return timed


def __getattr__(name: str) -> Any:
    """A timed subclass asked for by name before this process made it (a spawned worker
    unpickling a model)."""
    if name.startswith(_TIMED):
        from statsforecast import models

        base = getattr(models, name.removeprefix(_TIMED), None)
        if isinstance(base, type):
            return _timed_class(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _timed(model: Any) -> Any:
    """``model`` as an instance of its timed subclass (same parameters, same numbers)."""
    timed = _timed_class(type(model))
    out = timed.__new__(timed)
    out.__dict__.update(model.__dict__)
    return out


def run_forecast(
    df: pl.DataFrame,
    aliases: Sequence[str],
    *,
    horizon: int,
    levels: list[int] | None,
    x_future: pl.DataFrame | None = None,
    n_jobs: int = 1,
) -> Forecasts:
    """Fit a group of candidates on every series and forecast ``horizon`` months.

    statsforecast's ``fit`` then ``predict`` (the same numbers as its ``forecast``), so the
    fitted models are kept: their state is what one-step monitoring conditions on
    (:mod:`forecasting.monitoring.conditioning`), stored without fitting again.

    Args:
        df: ``unique_id, ds, y`` (plus exogenous columns, used by :data:`EXOGENOUS` models).
        aliases: candidate aliases (one group of
            :func:`~forecasting.training.models.candidate_groups`).
        horizon: months ahead.
        levels: model interval levels (``None`` or empty: point forecasts only).
        x_future: the exogenous columns over the forecast months (``unique_id, ds, ...``, at
            least the series of ``df``); given to :data:`EXOGENOUS` models only.
        n_jobs: statsforecast processes (see :func:`local_jobs`).
    """
    sf = make_sf([_timed(make_model(a)) for a in aliases], n_jobs)
    x_df = None
    if x_future is not None and any(a in EXOGENOUS for a in aliases):
        x_df = x_future.filter(pl.col(ID_COL).is_in(df[ID_COL].unique().implode()))
    sf.fit(df=model_frame(df, aliases))
    sf.n_jobs = 1  # the fitted models are here now: predicting them takes less than a pool
    fc = sf.predict(h=horizon, X_df=x_df, level=levels or None)
    keys = df.select(ID_COL, TIME_COL).sort(ID_COL, TIME_COL)
    order = keys[ID_COL].unique(maintain_order=True).to_list()
    uids = list(map(str, sf.uids))
    fitted, states, seconds = keys, {}, {}
    for i, alias in enumerate(aliases):
        models = dict(zip(uids, sf.fitted_[:, i], strict=True))
        insample = np.concatenate([models[u].predict_in_sample()["fitted"] for u in order])
        fitted = fitted.with_columns(pl.Series(alias, insample, dtype=pl.Float64))
        kind = type(sf.models[i])  # else statsforecast's fallback model stood in
        states[alias] = {u: m.model_ if type(m) is kind else None for u, m in models.items()}
        seconds[alias] = sum(getattr(m, "fit_seconds_", 0.0) for m in models.values())
    return Forecasts(pl.DataFrame(fc), fitted, states, seconds)


class Engine(ABC):
    """Runs a group of candidates over a frame of series; a context manager closing what it
    owns.

    A subclass says how the work is spread (:meth:`map`) and what it releases (:meth:`close`);
    the statsforecast calls are the same for every engine.
    """

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release what the engine started."""

    @abstractmethod
    def map(self, fn: Callable[..., T], df: pl.DataFrame) -> list[T]:
        """``fn(frame[, n_jobs=...])`` over frames of whole series of ``df``, results in order."""

    def cross_validation(
        self,
        df: pl.DataFrame,
        aliases: Sequence[str],
        *,
        horizon: int,
        windows: int,
        step: int,
        levels: list[int] | None,
        refit: bool = True,
    ) -> pl.DataFrame:
        """:func:`run_cv`'s backtest frame of a group of candidates over every series of ``df``."""
        fn = partial(
            run_cv,
            aliases=tuple(aliases),
            horizon=horizon,
            windows=windows,
            step=step,
            levels=levels,
            refit=refit,
        )
        return pl.concat([part[0] for part in self.map(fn, df)])

    def forecast(
        self,
        df: pl.DataFrame,
        aliases: Sequence[str],
        *,
        horizon: int,
        levels: list[int] | None,
        x_future: pl.DataFrame | None = None,
    ) -> Forecasts:
        """:func:`run_forecast` over every series of ``df`` (the parts put together)."""
        fn = partial(
            run_forecast, aliases=tuple(aliases), horizon=horizon, levels=levels, x_future=x_future
        )
        parts = self.map(fn, df)
        return Forecasts(
            pl.concat([p.forecasts for p in parts]),
            pl.concat([p.fitted for p in parts]),
            {a: {u: st for p in parts for u, st in p.states[a].items()} for a in aliases},
            {a: sum(p.seconds[a] for p in parts) for a in aliases},
        )


class LocalEngine(Engine):
    """statsforecast in this process (its process pool from :data:`PARALLEL_MIN_SERIES`)."""

    def close(self) -> None:
        """Nothing to release: statsforecast's pool ends with each call."""

    def map(self, fn: Callable[..., T], df: pl.DataFrame) -> list[T]:
        """``fn`` once over the whole frame, with :func:`local_jobs` processes."""
        return [fn(df, n_jobs=local_jobs(df))]


def _chunks(df: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    """``df`` cut into at most ``n`` frames of whole series, in order."""
    ids = df[ID_COL].unique(maintain_order=True).to_list()
    size = max(1, -(-len(ids) // n))
    return [df.filter(pl.col(ID_COL).is_in(ids[i : i + size])) for i in range(0, len(ids), size)]


class DaskEngine(Engine):
    """Chunks of series fitted on a Dask cluster, one process per chunk.

    Args:
        address: scheduler address; ``None`` starts (and owns) a ``LocalCluster`` with two
            single-threaded worker processes.
    """

    def __init__(self, address: str | None = None) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        if not address:
            self._cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            )
        self._client: Any = Client(address or self._cluster)

    def close(self) -> None:
        """Close the client, and the cluster when this engine started it."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def map(self, fn: Callable[..., T], df: pl.DataFrame) -> list[T]:
        """``fn`` over two chunks of series per worker (at least two), one process each."""
        n = max(2, len(self._client.scheduler_info().get("workers", {})) * 2)
        futures = [self._client.submit(fn, chunk, pure=False) for chunk in _chunks(df, n)]
        return list(self._client.gather(futures))


def check_engine(name: str) -> None:
    """Refuse a name that is not one of :data:`ENGINES`.

    Raises:
        SpendcastError: unknown engine.
    """
    if name not in ENGINES:
        raise SpendcastError(f"unknown engine '{name}'; choose from {', '.join(ENGINES)}")


def open_engine(name: str, address: str | None = None) -> Engine:
    """The engine called ``name``; ``address`` is the Dask scheduler's (see :class:`DaskEngine`).

    Raises:
        SpendcastError: unknown engine.
    """
    check_engine(name)
    return DaskEngine(address) if name == "dask" else LocalEngine()
