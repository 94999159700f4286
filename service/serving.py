"""The model in memory: precomputed per-series lookups and an atomic holder for reloads.

A :class:`ServedModel` is built once per load (``index_bundle``: a dict of id -> numpy
arrays) so that a forecast request costs O(horizon). :class:`ModelHolder` swaps models by
rebinding one attribute: a request takes the current model once, at its start, and finishes
on it even if a reload swaps in another meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from forecasting.bundle import Bundle
from forecasting.monitoring.judge import SeriesForecast, children_map, index_bundle

__all__ = [
    "LoadedModelLike",
    "Loader",
    "ServedModel",
    "ModelHolder",
    "default_loader",
    "clean",
]

_CACHE_MAX = 50_000


def clean(values: Any) -> list[float | None]:
    """Floats for JSON: NaN and infinities become ``null``."""
    arr = np.asarray(values, dtype=np.float64)
    if np.isfinite(arr).all():
        return arr.tolist()  # type: ignore[no-any-return]
    return [v if math.isfinite(v) else None for v in arr.tolist()]


class LoadedModelLike(Protocol):
    """What ``forecasting.tracking.load_model`` returns (``LoadedModel``)."""

    bundle: Bundle
    uri: str
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    from_cache: bool
    reason: str | None


Loader = Callable[[str, Path | None], LoadedModelLike]


def default_loader(uri: str, cache_dir: Path | None) -> LoadedModelLike:
    """Load with ``forecasting.tracking.load_model`` (imported lazily: it pulls mlflow)."""
    from forecasting.tracking import load_model

    return load_model(uri, cache_dir=cache_dir)


@dataclass
class ServedModel:
    """A loaded model and its lookups."""

    loaded: LoadedModelLike
    lookup: dict[str, SeriesForecast]
    loaded_at: dt.datetime
    load_seconds: float
    series_rows: list[dict[str, Any]] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)
    _payloads: dict[tuple[str, int, tuple[int, ...]], bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, loaded: LoadedModelLike, load_seconds: float = 0.0) -> ServedModel:
        """Index a loaded bundle."""
        bundle = loaded.bundle
        lookup = index_bundle(bundle)
        served = cls(
            loaded=loaded,
            lookup=lookup,
            loaded_at=dt.datetime.now(dt.UTC),
            load_seconds=load_seconds,
            series_rows=bundle.series.to_dicts(),
            children=children_map(lookup),
        )
        threading.Thread(target=served.warm_up, name="spendcast-warm-up", daemon=True).start()
        return served

    def warm_up(self) -> int:
        """Fit every series' conditioning model, top of the hierarchy first (background).

        One-step-ahead judging refits each series' chosen model once (AutoETS ~70 ms,
        AutoARIMA with working days ~0.8 s per series); doing it after load keeps that cost
        out of the first monitoring requests. Returns how many series can be conditioned.
        """
        order = sorted(self.lookup.values(), key=lambda s: s.unique_id.count("/"))
        return sum(s.prepare() for s in order)

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
        s = self.lookup[unique_id]
        body = {
            "unique_id": unique_id,
            "model_version": self.version_label,
            "ds": [d.isoformat() for d in s.ds[:horizon]],
            "mean": clean(s.mean[:horizon]),
            "intervals": [
                {
                    "level": lv,
                    "lo": clean(s.bounds[lv][0][:horizon]),
                    "hi": clean(s.bounds[lv][1][:horizon]),
                }
                for lv in levels
            ],
        }
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        if len(self._payloads) >= _CACHE_MAX:
            self._payloads.clear()
        self._payloads[key] = data
        return data


class ModelHolder:
    """Holds the current :class:`ServedModel`; reloads are serialized and swap atomically."""

    def __init__(self, loader: Loader, uri: str, cache_dir: Path | None) -> None:
        self.loader = loader
        self.uri = uri
        self.cache_dir = cache_dir
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def load(self) -> ServedModel:
        """Load the model named by ``uri`` and swap it in; raises if loading fails."""
        with self._lock:
            t0 = time.perf_counter()
            try:
                loaded = self.loader(self.uri, self.cache_dir)
                served = ServedModel.build(loaded, time.perf_counter() - t0)
            except Exception as exc:
                self.last_error = str(exc)
                raise
            self.current = served  # the swap: one rebinding
            self.last_error = None
            return served
