"""Loading a model's bundle from MLflow, with a local copy served when the store is down."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from forecasting.bundle import Bundle, BundleError
from forecasting.errors import InputError, SpendcastError
from forecasting.tracking.client import connect, tracking_uri
from forecasting.tracking.pyfunc import BUNDLE_KEY

__all__ = ["LoadedModel", "load_model"]

_INFO_KEYS = ("name", "version", "alias", "run_id")


@dataclass
class LoadedModel:
    """A bundle loaded from MLflow (or the local cache when the store is unreachable)."""

    bundle: Bundle
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    from_cache: bool = False
    reason: str | None = None


_URI_FORMS = (
    "models:/NAME/latest, models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/model "
    "or a local directory"
)


def _parse_models_uri(uri: str) -> tuple[str | None, str | None, str | None]:
    """(name, version, alias) of a ``models:/`` URI; ``version`` may be ``latest``.

    Raises:
        InputError: a ``models:/`` URI in none of the MLflow forms (names the forms).
    """
    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri.removeprefix("models:/")
    name, alias, version = rest, None, None
    if "@" in rest:
        name, alias = rest.split("@", 1)
    else:
        name, _, version = rest.partition("/")
        if version.lower() == "latest":
            version = "latest"
        elif not version.isdigit():
            version = None
    if not name or "/" in name or (alias is None and version is None) or alias == "":
        raise InputError(
            f"cannot read the model URI {uri!r}", column="model", hint=f"use {_URI_FORMS}"
        )
    return name, version, alias


def _cache_key(uri: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uri)


def _resolve(uri: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(name, version, alias, run_id) of a model URI, asking the registry where needed.

    ``models:/NAME/latest`` resolves to the highest registered version of NAME.
    """
    name, version, alias = _parse_models_uri(uri)
    run_id = None
    if name is not None:
        mlflow_client = connect()
        if alias:
            mv = mlflow_client.get_model_version_by_alias(name, alias)
        elif version == "latest":
            versions = mlflow_client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise SpendcastError(f"registered model {name!r} has no version")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = mlflow_client.get_model_version(name, version or "")
        version, run_id = str(mv.version), mv.run_id
    elif uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
    return name, version, alias, run_id


def _artifact_uri(uri: str, name: str | None, version: str | None) -> str:
    """What to download: a registered model by its resolved version, anything else as given."""
    return f"models:/{name}/{version}" if name is not None and version is not None else uri


def load_model(uri: str, cache_dir: str | Path | None = None) -> LoadedModel:
    """Load a spendcast pyfunc model's bundle; fall back to the cache if the store is down.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME/latest``
            (the highest version), ``runs:/ID/model`` or a local directory.
        cache_dir: where a copy of the last good load is kept.

    Raises:
        SpendcastError: the model cannot be loaded and no cached copy exists.
    """
    cache = Path(cache_dir) / _cache_key(uri) if cache_dir is not None else None
    try:
        loaded, bundle_dir = _load(uri)
    except Exception as exc:  # store down, missing alias, broken artifacts...
        reason = f"could not load {uri} from {tracking_uri()}: {type(exc).__name__}: {exc}"
        if cache is not None and (cache / "bundle").exists():
            return _from_cache(cache, uri, reason + "; serving the cached copy")
        if isinstance(exc, (BundleError, InputError)):  # a broken bundle or a bad URI
            raise
        raise SpendcastError(
            reason
            + ("; no cached copy" if cache is not None else "")
            + " (train one with `spendcast train ... --register NAME --promote`)"
        ) from exc
    if cache is not None:
        _refresh_cache(cache, bundle_dir, loaded)
    return loaded


def _load(uri: str) -> tuple[LoadedModel, Path]:
    """The model at ``uri`` (a local directory, or downloaded) and its bundle directory."""
    if Path(uri).exists():
        name = version = alias = run_id = None
        local = Path(uri)
    else:
        connect()
        name, version, alias, run_id = _resolve(uri)
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=_artifact_uri(uri, name, version))
        )
    bundle_dir = local / "artifacts" / BUNDLE_KEY
    if not bundle_dir.exists():
        bundle_dir = local
    bundle = Bundle.load(bundle_dir)
    loaded = LoadedModel(
        bundle=bundle,
        uri=uri,
        name=name,
        version=version,
        alias=alias,
        run_id=run_id or bundle.meta.run_id,
    )
    return loaded, bundle_dir


def _from_cache(cache: Path, uri: str, reason: str) -> LoadedModel:
    """The copy kept by the last good load."""
    info = json.loads((cache / "info.json").read_text())
    return LoadedModel(
        bundle=Bundle.load(cache / "bundle"),
        uri=uri,
        **{k: info.get(k) for k in _INFO_KEYS},
        from_cache=True,
        reason=reason,
    )


def _refresh_cache(cache: Path, bundle_dir: Path, loaded: LoadedModel) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    try:
        shutil.copytree(bundle_dir, tmp / "bundle")
        info = {k: getattr(loaded, k) for k in (*_INFO_KEYS, "uri")}
        (tmp / "info.json").write_text(json.dumps(info))
        old = cache.with_name(cache.name + ".old")
        if cache.exists():
            cache.rename(old)
        tmp.rename(cache)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
