"""The model in memory: precomputed per-series lookups and an atomic holder for reloads.

A :class:`ServedModel` is built once per load (``index_bundle``: id -> the series' stored
forecast, as numpy arrays; ``adjust_all``: each series adjusted for working days and
seasonality, at first use; each series' display label) so that a request costs O(its
answer), and warms its conditioning models and adjustments up in a thread that is cancelled
when the model is replaced (it rebuilds the models training stored in the bundle, a few
milliseconds a series; only a bundle trained before the fitted state was stored makes that
thread refit, competing with requests for the GIL).
:class:`ModelHolder` swaps models by rebinding one attribute: a request takes the current
model once, at its start, and finishes on it even if a reload swaps in another meanwhile.

Cache policy: the local copy of the last good load stands in only while nothing else is
served (the first load of a process); a reload, or a retry of the registry while the
cached copy serves, loads from the registry or fails and keeps the model it has.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from forecasting.bundle import Bundle, withheld_series
from forecasting.data.labels import LABEL_COL, label_or_member
from forecasting.data.panel import ID_COL
from forecasting.monitoring.adjustment import Adjustment, Adjustments, adjust_all
from forecasting.monitoring.conditioning import warm_up
from forecasting.monitoring.forecast import ForecastIndex, SeriesForecast, index_bundle
from forecasting.redact import redact

if TYPE_CHECKING:  # forecasting.tracking imports mlflow: loaded lazily by default_loader
    from forecasting.tracking import LoadedModel

__all__ = [
    "Loader",
    "ServedModel",
    "ModelHolder",
    "default_loader",
    "clean",
    "BoundedCache",
]

CACHE_ITEMS = 50_000
CACHE_BYTES = 64 * 1024 * 1024


class BoundedCache:
    """A model's cache of answers: emptied when one more entry would pass ``CACHE_ITEMS``
    entries or ``CACHE_BYTES`` bytes (it refills from what is asked again), so no sequence of
    requests can make it grow past those bounds. Used from the event loop only: not locked."""

    def __init__(self, max_items: int = CACHE_ITEMS, max_bytes: int = CACHE_BYTES) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._data: dict[Any, tuple[Any, int]] = {}
        self.nbytes = 0

    def get(self, key: Any) -> Any:
        hit = self._data.get(key)
        return None if hit is None else hit[0]

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if len(self._data) >= self.max_items or self.nbytes + nbytes > self.max_bytes:
            self.clear()
        self._data[key] = (value, nbytes)
        self.nbytes += nbytes

    def clear(self) -> None:
        self._data = {}
        self.nbytes = 0

    def keys(self) -> list[Any]:
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data)


def clean(values: Any) -> list[float | None]:
    """Floats for JSON: NaN and infinities become ``null``."""
    arr = np.asarray(values, dtype=np.float64)
    if np.isfinite(arr).all():
        return arr.tolist()  # type: ignore[no-any-return]
    return [v if math.isfinite(v) else None for v in arr.tolist()]


class Loader(Protocol):
    """``(uri, cache_dir, use_cache=, timeout=) -> LoadedModel``: how the holder loads."""

    def __call__(
        self,
        uri: str,
        cache_dir: Path | None,
        *,
        use_cache: bool = True,
        timeout: float | None = None,
    ) -> LoadedModel: ...


def default_loader(
    uri: str, cache_dir: Path | None, *, use_cache: bool = True, timeout: float | None = None
) -> LoadedModel:
    """Load with ``forecasting.tracking.load_model`` (imported lazily: it pulls mlflow)."""
    from forecasting.tracking import load_model

    return load_model(uri, cache_dir=cache_dir, use_cache=use_cache, registry_timeout=timeout)


@dataclass
class ServedModel:
    """A loaded model and its lookups."""

    loaded: LoadedModel
    lookup: ForecastIndex
    loaded_at: dt.datetime
    load_seconds: float
    series_rows: list[dict[str, Any]] = field(default_factory=list)
    withheld: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Series never served (privacy, flat total): id -> (kind, why); see ``withheld_series``."""
    labels: dict[str, str] = field(default_factory=dict)
    adjusted: Mapping[str, Adjustment] = field(default_factory=dict)
    """Each series' CJO-CVS adjustment (:class:`Adjustments`: computed at first use or by the
    warm-up)."""
    responses: BoundedCache = field(default_factory=BoundedCache)
    """Read answers of this model by (path, query string): ``service.read_cache``."""
    _payloads: BoundedCache = field(default_factory=BoundedCache)
    _cancel: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, loaded: LoadedModel, load_seconds: float = 0.0) -> ServedModel:
        """Index a loaded bundle and start warming its conditioning models and adjustments up
        (a thread that :meth:`cancel` stops). Bundles without labels get each series' last
        member as its label."""
        bundle = loaded.bundle
        rows = bundle.series.to_dicts()
        for row in rows:
            row[LABEL_COL] = label_or_member(row[ID_COL], row.get(LABEL_COL))
        lookup = index_bundle(bundle)
        served = cls(
            loaded=loaded,
            lookup=lookup,
            loaded_at=dt.datetime.now(dt.UTC),
            load_seconds=load_seconds,
            series_rows=rows,
            withheld=withheld_series(bundle.series),
            labels={row[ID_COL]: row[LABEL_COL] for row in rows},
            adjusted=adjust_all(lookup, bundle.meta.source),
        )
        threading.Thread(target=served.warm_up, name="spendcast-warm-up", daemon=True).start()
        return served

    def warm_up(self) -> int:
        """Ready every series' conditioning model (``conditioning.warm_up``: the stored fitted
        state, else a refit), then compute the adjustments; how many series can be conditioned
        (stops early once :meth:`cancel` was called)."""
        n = warm_up(self.lookup.conditioners, cancel=self._cancel)
        if isinstance(self.adjusted, Adjustments):
            self.adjusted.fill(cancel=self._cancel)
        return n

    def cancel(self) -> None:
        """Stop the warm-up: this model is being replaced (or the service stops)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def bundle(self) -> Bundle:
        return self.loaded.bundle

    @property
    def version_label(self) -> str:
        """``name/version`` or the URI: how results remember which model judged them."""
        m = self.loaded
        if m.name and m.version:
            return f"{m.name}/{m.version}"
        return m.run_id or m.uri

    def forecast_json(self, unique_id: str, horizon: int, levels: tuple[int, ...]) -> bytes:
        """The ``ForecastSeries`` JSON of one series, serialized once and then reused."""
        key = (unique_id, horizon, levels)
        hit = self._payloads.get(key)
        if hit is not None:
            return hit
        ds, mean, bounds = _columns(self.lookup[unique_id], horizon, levels)
        body = {
            "unique_id": unique_id,
            "model_version": self.version_label,
            "ds": ds,
            "mean": mean,
            "intervals": [{"level": lv, "lo": lo, "hi": hi} for lv, (lo, hi) in bounds.items()],
        }
        data = _dumps(body)
        self._payloads.put(key, data, len(data))
        return data

    def forecast_columns_json(self, ids: list[str], horizon: int, levels: tuple[int, ...]) -> bytes:
        """The ``ForecastColumns`` JSON of several series: their stored arrays concatenated,
        serialised once (no per-element model is built)."""
        body: dict[str, Any] = {
            "model_version": self.version_label,
            "horizon": horizon,
            "levels": list(levels),
            "unique_id": [],
            "ds": [],
            "mean": [],
            "lo": {str(lv): [] for lv in levels},
            "hi": {str(lv): [] for lv in levels},
        }
        for uid in ids:
            ds, mean, bounds = _columns(self.lookup[uid], horizon, levels)
            body["unique_id"] += [uid] * len(ds)
            body["ds"] += ds
            body["mean"] += mean
            for lv, (lo, hi) in bounds.items():
                body["lo"][str(lv)] += lo
                body["hi"][str(lv)] += hi
        return _dumps(body)


_Column = list[float | None]


def _columns(
    s: SeriesForecast, horizon: int, levels: tuple[int, ...]
) -> tuple[list[str], _Column, dict[int, tuple[_Column, _Column]]]:
    """One series' first ``horizon`` months as JSON-ready columns: ISO months, means, and
    ``level -> (lo, hi)``."""
    bounds = {
        lv: (clean(s.bounds[lv][0][:horizon]), clean(s.bounds[lv][1][:horizon])) for lv in levels
    }
    return [d.isoformat() for d in s.ds[:horizon]], clean(s.mean[:horizon]), bounds


def _dumps(body: dict[str, Any]) -> bytes:
    """Compact JSON, never NaN."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


class ModelHolder:
    """Holds the current :class:`ServedModel`; loads are serialized and swap atomically.

    Args:
        loader: how to load (:func:`default_loader`).
        uri: the model to serve.
        cache_dir: the local copy of the last good load.
        registry_timeout: seconds one registry attempt may take (None: unbounded).
        on_load: called with each model swapped in (metrics, log).
    """

    def __init__(
        self,
        loader: Loader,
        uri: str,
        cache_dir: Path | None,
        *,
        registry_timeout: float | None = None,
        on_load: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.loader = loader
        self.uri = uri
        self.cache_dir = cache_dir
        self.registry_timeout = registry_timeout
        self.on_load = on_load
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        """Why the last load failed (masked): for the log, never for a public answer."""
        self._lock = threading.Lock()

    @property
    def wants_registry(self) -> bool:
        """True while nothing, or only the cached copy, is served."""
        current = self.current
        return current is None or current.loaded.from_cache

    def load(self) -> ServedModel:
        """Load the model named by ``uri`` and swap it in; raises if loading fails.

        The cached copy may stand in only when nothing is served yet; otherwise a failed load
        raises and the current model keeps serving.
        """
        with self._lock:
            t0 = time.perf_counter()
            try:
                loaded = self.loader(
                    self.uri,
                    self.cache_dir,
                    use_cache=self.current is None,
                    timeout=self.registry_timeout,
                )
                served = ServedModel.build(loaded, time.perf_counter() - t0)
            except Exception as exc:
                self.last_error = redact(f"{type(exc).__name__}: {exc}")
                raise
            old, self.current = self.current, served  # the swap: one rebinding
            self.last_error = None
            if old is not None:
                old.cancel()
        if self.on_load is not None:
            self.on_load(served)
        return served

    def close(self) -> None:
        """Cancel the current model's warm-up (the service stops)."""
        if self.current is not None:
            self.current.cancel()
