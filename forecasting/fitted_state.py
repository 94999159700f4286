"""Fitted conditioning models as plain data: statsforecast ``model_`` dicts <-> JSON + npz.

One-step conditioning (:mod:`forecasting.monitoring.conditioning`) needs each series' chosen
model fitted on its training history. Training fits them once and writes their fitted state
into the bundle, so that neither the service nor ``spendcast detect`` refits at load. A fitted
statsforecast model is a ``model_`` dict of numpy arrays, numbers, strings, tuples and
``statsforecast.utils.results`` records; :func:`encode` turns such trees into a JSON document
whose arrays (and numpy scalars, to keep their dtype) sit in a ``.npz`` file, and
:func:`decode` rebuilds them.

Trust boundary: nothing here executes code on load. JSON is data, the ``.npz`` is read with
``allow_pickle=False``, and the only class a document can name is looked up in
:data:`RECORDS` (an allowlist of plain named tuples); any other tag is a
:class:`FittedStateError`. Reading a bundle does not decode (nor import statsforecast):
:class:`FittedStates` decodes one series when its conditioning is first needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from forecasting.errors import SpendcastError

__all__ = ["RECORDS", "FittedStateError", "FittedStates", "encode", "decode"]

JSON_FILE = "conditioning.json"
NPZ_FILE = "conditioning.npz"


class FittedStateError(SpendcastError):
    """A fitted-state document that does not follow this module's format."""


RECORDS = ("statsforecast.utils.results",)
"""Named tuples a document may rebuild (nothing else is ever constructed from a name)."""


def _records() -> dict[str, Callable[..., Any]]:
    from statsforecast.utils import results

    found = {f"{results.__module__}.{results.__qualname__}": results}
    return {name: found[name] for name in RECORDS}


def encode(tree: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``(document, arrays)``: a JSON-able document and the arrays it refers to by key."""
    arrays: dict[str, np.ndarray] = {}

    def enc(o: Any) -> Any:
        if o is None or isinstance(o, bool | str):
            return o
        if isinstance(o, np.ndarray | np.generic):
            if np.asarray(o).dtype.hasobject:
                raise FittedStateError("an object array cannot be stored without pickle")
            key = f"a{len(arrays)}"
            arrays[key] = np.asarray(o)
            return {"array": key, "scalar": isinstance(o, np.generic)}
        if isinstance(o, int):
            return {"int": o}
        if isinstance(o, float):
            return {"float": repr(o)}
        if isinstance(o, dict):
            if not all(isinstance(k, str) for k in o):
                raise FittedStateError("a fitted state's dict keys must be strings")
            return {"dict": {k: enc(v) for k, v in o.items()}}
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            name = f"{type(o).__module__}.{type(o).__qualname__}"
            if name not in RECORDS:
                raise FittedStateError(f"{name} is not an allowed record ({', '.join(RECORDS)})")
            return {"record": name, "items": [enc(v) for v in o]}
        if isinstance(o, tuple | list):
            return {"tuple" if isinstance(o, tuple) else "list": [enc(v) for v in o]}
        raise FittedStateError(f"cannot store a {type(o).__name__} in a fitted state")

    return enc(tree), arrays


def decode(doc: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The tree :func:`encode` was given (arrays are copies of those in ``arrays``)."""
    records = _records()

    def dec(o: Any) -> Any:
        if o is None or isinstance(o, bool | str):
            return o
        if not isinstance(o, dict) or len(o) not in (1, 2):
            raise FittedStateError(f"unexpected node {str(o)[:80]!r}")
        if "array" in o:
            if o["array"] not in arrays:
                raise FittedStateError(f"array {o['array']!r} missing from the npz")
            a = np.array(arrays[o["array"]])
            return a[()] if o.get("scalar") else a
        if "int" in o:
            return int(o["int"])
        if "float" in o:
            return float(o["float"])
        if "dict" in o:
            return {str(k): dec(v) for k, v in o["dict"].items()}
        if "record" in o:
            if o["record"] not in records:
                raise FittedStateError(f"{o['record']!r} is not an allowed record")
            return records[o["record"]](*(dec(v) for v in o["items"]))
        if "tuple" in o:
            return tuple(dec(v) for v in o["tuple"])
        if "list" in o:
            return [dec(v) for v in o["list"]]
        raise FittedStateError(f"unexpected node {str(o)[:80]!r}")

    return dec(doc)


def _rename(node: Any, keys: dict[str, str]) -> Any:
    """``node`` with its array references renamed by ``keys``."""
    if isinstance(node, dict):
        if "array" in node and isinstance(node["array"], str):
            return {**node, "array": keys[node["array"]]}
        return {k: _rename(v, keys) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, keys) for v in node]
    return node


class FittedStates:
    """Each series' conditioning members and their fitted ``model_`` dicts (None: failed).

    Held encoded; :meth:`get` decodes one series on demand.
    """

    def __init__(self, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.doc = doc
        self.arrays = arrays

    @classmethod
    def of(cls, states: dict[str, tuple[tuple[str, ...], list[Any] | None]]) -> FittedStates:
        """From ``{unique_id: (members, model_ dicts or None)}``.

        A series whose state cannot be stored as data (a model holding an object array, say)
        is stored as failed: the service then judges it unconditioned, as a refit that fails.
        """
        doc: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for uid, (members, st) in states.items():
            try:
                node, own = encode({"members": list(members), "states": st})
            except FittedStateError:
                node, own = encode({"members": list(members), "states": None})
            renamed = {k: f"s{len(doc)}_{k}" for k in own}
            doc[uid] = _rename(node, renamed)
            arrays.update({renamed[k]: v for k, v in own.items()})
        return cls(doc, arrays)

    def __len__(self) -> int:
        return len(self.doc)

    def get(self, unique_id: str) -> tuple[tuple[str, ...], list[Any] | None] | None:
        """``(members, states)`` of a series; None when training stored nothing for it."""
        node = self.doc.get(unique_id)
        if node is None:
            return None
        entry = decode(node, self.arrays)
        states = entry["states"]
        return tuple(entry["members"]), (list(states) if states is not None else None)

    def save(self, directory: Path) -> None:
        """Write ``conditioning.json`` and ``conditioning.npz`` into ``directory``."""
        (directory / JSON_FILE).write_text(json.dumps({"dict": self.doc}, separators=(",", ":")))
        np.savez_compressed(directory / NPZ_FILE, **self.arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: Path) -> FittedStates | None:
        """What :meth:`save` wrote (None when the bundle has none); no pickle, no decoding."""
        if not (directory / JSON_FILE).exists():
            return None
        try:
            doc = json.loads((directory / JSON_FILE).read_text())
            with np.load(directory / NPZ_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as e:
            raise FittedStateError(f"cannot read the fitted state in {directory}: {e}") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("dict"), dict):
            raise FittedStateError(f"{directory / JSON_FILE} is not a fitted-state document")
        return cls(doc["dict"], arrays)
