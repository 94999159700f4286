"""The model in memory: precomputed per-series lookups and an atomic holder for reloads.

A :class:`ServedModel` is built once per load (``index_bundle``: id -> the series' stored
forecast, as numpy arrays; ``adjust_all``: each series adjusted for working days and
seasonality; each series' display label) so that a request costs O(its answer). :class:`ModelHolder`
swaps models by rebinding one attribute: a request takes the current model once, at its
start, and finishes on it even if a reload swaps in another meanwhile.
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
from typing import TYPE_CHECKING, Any

import numpy as np

from forecasting.bundle import Bundle, withheld_series
from forecasting.data.labels import LABEL_COL, label_or_member
from forecasting.data.panel import ID_COL
from forecasting.monitoring.adjustment import Adjustment, adjust_all
from forecasting.monitoring.conditioning import warm_up
from forecasting.monitoring.forecast import ForecastIndex, index_bundle

if TYPE_CHECKING:  # forecasting.tracking imports mlflow: loaded lazily by default_loader
    from forecasting.tracking import LoadedModel

__all__ = [
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


Loader = Callable[[str, Path | None], "LoadedModel"]


def default_loader(uri: str, cache_dir: Path | None) -> LoadedModel:
    """Load with ``forecasting.tracking.load_model`` (imported lazily: it pulls mlflow)."""
    from forecasting.tracking import load_model

    return load_model(uri, cache_dir=cache_dir)


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
    adjusted: dict[str, Adjustment] = field(default_factory=dict)
    _payloads: dict[tuple[str, int, tuple[int, ...]], bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, loaded: LoadedModel, load_seconds: float = 0.0) -> ServedModel:
        """Index a loaded bundle, adjust its series and start warming its conditioning models
        up (a thread). Bundles without labels get each series' last member as its label."""
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
        """Fit every series' conditioning model (``conditioning.warm_up``); how many can."""
        return warm_up(self.lookup.conditioners)

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
