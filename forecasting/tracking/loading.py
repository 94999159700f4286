"""Loading a model's bundle from MLflow, with a local copy served when the store is down.

One load attempt (resolve the registry alias, download the artifacts into a temporary
folder removed afterwards, read the bundle, refresh the local copy) can be bounded in time:
MLflow's own retries against a store that is down take minutes, so the attempt runs in a
thread and the caller stops waiting after ``registry_timeout`` seconds (the attempt goes on;
the next call for the same model waits for it rather than starting another). Messages
never carry a password (:func:`~forecasting.redact.redact`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import mlflow

from forecasting.bundle import Bundle, BundleError
from forecasting.errors import InputError, SpendcastError
from forecasting.redact import redact
from forecasting.tracking.client import connect, tracking_uri
from forecasting.tracking.pyfunc import BUNDLE_KEY

__all__ = ["LoadedModel", "RegistryTimeout", "load_model"]

_INFO_KEYS = ("name", "version", "alias", "run_id")
log = logging.getLogger("spendcast.tracking")


class RegistryTimeout(SpendcastError):
    """The registry did not give the model within the time allowed (it may still)."""


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


def load_model(
    uri: str,
    cache_dir: str | Path | None = None,
    *,
    use_cache: bool = True,
    registry_timeout: float | None = None,
) -> LoadedModel:
    """Load a spendcast pyfunc model's bundle; fall back to the cache if that fails.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME/latest``
            (the highest version), ``runs:/ID/model`` or a local directory.
        cache_dir: where a copy of the last good load is kept (refreshed by every good load;
            a failed refresh is logged and does not fail the load).
        use_cache: serve the cached copy when the registry fails; False: raise instead (a
            reload must not swap a broken new champion for an old copy).
        registry_timeout: seconds to wait for the registry (None: as long as MLflow takes).

    Raises:
        SpendcastError: the model cannot be loaded (and no cached copy may stand in).
    """
    cache = Path(cache_dir) / _cache_key(uri) if cache_dir is not None else None
    try:
        return _attempt(uri, cache, registry_timeout)
    except Exception as exc:  # store down, missing alias, broken artifacts, timeout...
        where = redact(tracking_uri())
        reason = f"could not load {uri} from {where}: {type(exc).__name__}: {redact(exc)}"
        if use_cache and cache is not None and (cache / "bundle").exists():
            return _from_cache(cache, uri, reason + "; serving the cached copy")
        if isinstance(exc, InputError):  # a bad URI: nothing a cache or a retry can fix
            raise
        if isinstance(exc, BundleError):
            raise BundleError(redact(exc)) from exc
        raise SpendcastError(
            reason
            + ("; no cached copy" if cache is not None and use_cache else "")
            + " (train one with `spendcast train ... --register NAME --promote`)"
        ) from exc


class _Attempt:
    """One load in a thread of its own, so that a caller can stop waiting for it."""

    def __init__(self, uri: str, cache: Path | None) -> None:
        self.done = threading.Event()
        self.result: LoadedModel | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(uri, cache), name="spendcast-registry", daemon=True
        )
        self._thread.start()

    def _run(self, uri: str, cache: Path | None) -> None:
        try:
            self.result = _load_and_cache(uri, cache)
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
        finally:
            self.done.set()

    def outcome(self) -> LoadedModel:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_attempts: dict[tuple[str, str], _Attempt] = {}
_attempts_lock = threading.Lock()


def _attempt(uri: str, cache: Path | None, timeout: float | None) -> LoadedModel:
    """Load (bounded by ``timeout``); a call finding an attempt in flight waits for it."""
    if timeout is None:
        return _load_and_cache(uri, cache)
    key = (uri, str(cache))
    with _attempts_lock:
        attempt = _attempts.get(key)
        if attempt is None:
            attempt = _attempts[key] = _Attempt(uri, cache)
    if not attempt.done.wait(timeout):
        raise RegistryTimeout(
            f"the registry did not answer within {timeout:g} s (still trying in the background)"
        )
    with _attempts_lock:
        if _attempts.get(key) is attempt:
            del _attempts[key]
    return attempt.outcome()


def _load_and_cache(uri: str, cache: Path | None) -> LoadedModel:
    """Load the model, refresh the local copy (best effort), remove downloaded files."""
    tmp = Path(tempfile.mkdtemp(prefix="spendcast-model-"))
    try:
        loaded, bundle_dir = _load(uri, tmp)
        if cache is not None:
            try:
                _refresh_cache(cache, bundle_dir, loaded)
            except Exception as exc:  # the model is good: a stale copy is a warning
                log.warning(
                    "model cache not refreshed",
                    extra={"cache": str(cache), "error": f"{type(exc).__name__}: {redact(exc)}"},
                )
        return loaded
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load(uri: str, tmp: Path) -> tuple[LoadedModel, Path]:
    """The model at ``uri`` (a local directory, or downloaded into ``tmp``) and its bundle
    directory."""
    if Path(uri).exists():
        name = version = alias = run_id = None
        local = Path(uri)
    else:
        connect()
        name, version, alias, run_id = _resolve(uri)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=_artifact_uri(uri, name, version), dst_path=str(tmp)
            )
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
