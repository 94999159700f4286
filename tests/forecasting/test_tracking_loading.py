"""Model loading against a real MLflow store: bounded registry attempts, the cache policy,
best-effort cache refresh, no downloaded folder left behind, no password in any message."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forecasting import tracking
from forecasting.errors import SpendcastError
from tests.forecasting.tracking_helpers import fast_config, make_result
from tests.mlflow_faults import hanging_postgres

pytestmark = pytest.mark.slow

PASSWORD = "S3cret-PW-i12"


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One registered champion ``m`` in a tmp store (MLFLOW_TRACKING_URI set meanwhile)."""
    root = tmp_path_factory.mktemp("loading")
    mp = pytest.MonkeyPatch()
    uri = f"sqlite:///{root}/mlflow.db"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("SPENDCAST_ARTIFACT_ROOT", str(root / "mlruns"))
    with tracking.training_run(fast_config()) as run:
        run.log_result(make_result(seed=5))
        run.register("m", promote=True)
    yield {"root": root, "uri": uri, "mp": mp}
    mp.undo()


@pytest.fixture
def hanging_registry() -> Iterator[str]:
    """A PostgreSQL tracking URI (with a password) on a port that accepts and never answers."""
    with hanging_postgres(PASSWORD) as url:
        yield url


def test_a_hanging_registry_is_bounded_and_the_cache_serves(
    registered, tmp_path, monkeypatch, hanging_registry
):
    cache = tmp_path / "cache"
    good = tracking.load_model("models:/m@champion", cache_dir=cache, registry_timeout=60)
    assert not good.from_cache
    monkeypatch.setenv("MLFLOW_TRACKING_URI", hanging_registry)
    t0 = time.monotonic()
    down = tracking.load_model("models:/m@champion", cache_dir=cache, registry_timeout=1.0)
    assert time.monotonic() - t0 < 5  # not MLflow's minutes of retries
    assert down.from_cache and down.version == good.version
    assert down.reason and "did not answer" in down.reason
    assert PASSWORD not in down.reason and "spendcast:***@127.0.0.1" in down.reason
    with pytest.raises(SpendcastError) as err:  # no cache may stand in: it says why, masked
        tracking.load_model("models:/m@champion", cache_dir=cache, use_cache=False, **_fast)
    assert PASSWORD not in str(err.value)


_fast = {"registry_timeout": 1.0}


def test_a_reload_never_falls_back_to_the_cache(registered, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    tracking.load_model("models:/m@champion", cache_dir=cache)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/empty.db")
    assert tracking.load_model("models:/m@champion", cache_dir=cache).from_cache
    with pytest.raises(SpendcastError, match="could not load"):
        tracking.load_model("models:/m@champion", cache_dir=cache, use_cache=False)


def test_a_failed_cache_refresh_does_not_fail_a_good_load(registered, tmp_path, caplog):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    loaded = tracking.load_model("models:/m@champion", cache_dir=not_a_folder)
    assert not loaded.from_cache and loaded.version == "1"
    assert any(r.getMessage() == "model cache not refreshed" for r in caplog.records)


def test_downloaded_artifacts_are_removed(registered, tmp_path, monkeypatch):
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    # a local store hands out its own files; a remote one (S3, HTTP...) downloads them into a
    # temporary folder: make the local store download like a remote one does
    monkeypatch.setattr(
        LocalArtifactRepository, "download_artifacts", ArtifactRepository.download_artifacts
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for _ in range(2):
        tracking.load_model("models:/m@champion", cache_dir=tmp_path / "cache")
    assert [p.name for p in scratch.iterdir()] == []


def test_local_paths_load_without_a_registry(registered, tmp_path):
    tracking.load_model("models:/m@champion", cache_dir=tmp_path / "cache")
    bundle_dir = next(Path(tmp_path / "cache").glob("*/bundle"))
    local = tracking.load_model(str(bundle_dir), registry_timeout=5)
    assert local.bundle.meta.horizon == 6 and not local.from_cache
