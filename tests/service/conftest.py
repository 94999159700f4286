"""Fixtures: databases (SQLite and PostgreSQL), the synthetic model, ready app clients."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.config import Settings
from service.main import create_app
from service.store import upgrade
from tests.panels import shared_file
from tests.service.synthetic import fake_loader, make_bundle

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def sqlite_store(path) -> str:
    """The URL of a SQLite store at ``path``, upgraded (what `spendcast db upgrade` does)."""
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2
        ):
            return None
    except Exception as exc:  # any failure means: skip with the reason
        return f"PostgreSQL at 127.0.0.1:5432/test unreachable: {exc}"


@pytest.fixture(scope="session")
def synthetic_bundle():
    return make_bundle(seed=0)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path) -> Iterator[tuple[str, str | None]]:
    """``(url, schema)`` of an empty store; PostgreSQL uses a unique schema, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", None
        return
    why = pg_reachable()
    if why:
        pytest.skip(why)
    schema = f"spendcast_test_{uuid.uuid4().hex[:12]}"
    yield PG_URL, schema
    from service.store import Store

    store = Store(PG_URL, schema=schema)
    store.drop()
    store.dispose()


def wait_ready(client: TestClient, timeout: float = 10) -> dict[str, Any]:
    """Poll /readyz until 200."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout}s: {r.text}")
        time.sleep(0.02)


@pytest.fixture
def make_client(tmp_path, synthetic_bundle) -> Iterator[Callable[..., TestClient]]:
    """``make_client(loader=None, db=None, ready=True, upgraded=True, **settings)`` -> a started
    TestClient on a store ``spendcast db upgrade`` has prepared (unless ``upgraded=False``)."""
    stack: list[Any] = []

    def factory(
        *,
        loader: Callable[..., Any] | None = None,
        db: tuple[str, str | None] | None = None,
        ready: bool = True,
        retry_seconds: float = 0.2,
        upgraded: bool = True,
        **overrides: Any,
    ) -> TestClient:
        url, schema = db or (f"sqlite:///{tmp_path / f'store{len(stack)}.db'}", None)
        if upgraded:
            upgrade(url, schema=schema)
        values: dict[str, Any] = {
            "database_url": url,
            "database_schema": schema,
            "api_keys": SecretStr(f"other-key,{KEY}"),
            "cache_dir": tmp_path / "cache",
            "model_uri": "models:/synthetic@champion",
            "log_level": "WARNING",
        }
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(
            settings,
            loader=loader or (fake_loader(synthetic_bundle)),
            retry_seconds=retry_seconds,
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        if ready:
            wait_ready(client)
        return client

    yield factory
    for c in reversed(stack):
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@contextmanager
def started(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def real_model(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """make_panel -> fit (fast config) -> MLflow run, registered, champion; built once.

    Yields ``{"uri", "tracking_uri", "bundle"}``; MLFLOW_TRACKING_URI points at the tmp store
    for the session (restored after).
    """
    from forecasting.tracking import training_run
    from forecasting.training.config import TrainConfig
    from forecasting.training.pipeline import fit
    from tests.panels import make_panel

    tmp = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mp.setenv("SPENDCAST_ARTIFACT_ROOT", str(tmp / "mlruns"))
    panel, meta = make_panel(seed=0)
    config = TrainConfig(models=["SeasonalNaive", "AutoETS"], windows=3, n_paths=200)
    result = fit(panel, meta, config)
    with training_run(config, experiment="service-tests") as run:
        run.log_result(result)
        run.register("spendcast-svc", promote=True)
    yield {
        "uri": "models:/spendcast-svc@champion",
        "tracking_uri": tracking_uri,
        "bundle": result.bundle,
    }
    mp.undo()


PBS = shared_file("datasets/pbs/pbs.csv")


def _champion(panel_path: Path, name: str) -> dict[str, Any]:
    """Train the panel at ``panel_path`` (fast config) and register it as ``name``'s champion
    in the session's tmp MLflow store (set up by ``real_model``)."""
    from forecasting.data.panel import read_panel
    from forecasting.tracking import training_run
    from forecasting.training.config import TrainConfig
    from forecasting.training.pipeline import fit

    panel, meta = read_panel(panel_path)
    # the French calendar would add AutoARIMA (and its conditioning fits): not what these test
    config = TrainConfig(
        models=["SeasonalNaive", "AutoETS"], windows=3, n_paths=200, calendar_arima=False
    )
    result = fit(panel, meta, config)
    with training_run(config, experiment=f"service-tests-{name}") as run:
        run.log_result(result)
        run.register(name, promote=True)
    return {"uri": f"models:/{name}@champion", "bundle": result.bundle}


@pytest.fixture(scope="session")
def pbs_model(real_model, tmp_path_factory) -> dict[str, Any]:
    """A model trained on real data: PBS (Concession, Type, ATC1), registered in the same
    tmp MLflow store as ``real_model`` under ``spendcast-pbs``. Skips when PBS is absent."""
    if not PBS.exists():
        pytest.skip(f"{PBS} is not on this machine")
    import polars as pl

    from forecasting.data.ingest import ingest

    tmp = tmp_path_factory.mktemp("pbs")
    levels = ["Concession", "Type", "ATC1"]
    tidy = tmp / "pbs-atc1.csv"  # summed over ATC2: one row per (series, month)
    pl.read_csv(PBS).group_by([*levels, "Month"]).agg(pl.col("Cost").sum()).write_csv(tidy)
    out = tmp / "pbs.parquet"
    ingest([tidy], out, date_col="Month", value_col="Cost", hierarchy=",".join(levels))
    return _champion(out, "spendcast-pbs")


def registered_with_broken_next(source_uri: str, name: str, tmp) -> Callable[[], str]:
    """Register ``source_uri``'s model as ``name`` v1 (alias champion) and a copy of it with its
    bundle's ``paths.npz`` removed as v2; returns a function that moves the alias to v2."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    good = client.get_model_version_by_alias(*source_uri.removeprefix("models:/").split("@"))
    client.create_registered_model(name)
    v1 = client.create_model_version(name, source=good.source, run_id=good.run_id)
    client.set_registered_model_alias(name, "champion", v1.version)
    broken = tmp / f"{name}-broken"
    mlflow.artifacts.download_artifacts(artifact_uri=good.source, dst_path=str(broken))
    for f in broken.rglob("paths.npz"):
        f.unlink()
    v2 = client.create_model_version(name, source=str(broken), run_id=good.run_id)

    def promote_broken() -> str:
        client.set_registered_model_alias(name, "champion", v2.version)
        return str(v2.version)

    return promote_broken


@pytest.fixture(scope="session")
def damir_model(real_model, tmp_path_factory) -> dict[str, Any]:
    """A model trained on generated Open DAMIR files (synth -> ingest -> fit): real code
    labels and a French calendar; five years, the fewest that let every candidate be
    backtested (with fewer, every series falls back to SeasonalNaive); registered in
    ``real_model``'s tmp MLflow store under ``spendcast-damir``."""
    from forecasting.data import synth
    from forecasting.data.ingest import ingest

    tmp = tmp_path_factory.mktemp("damir")
    synth.generate(tmp / "raw", start="2015-01", end="2019-12", rows_per_month=1000, seed=0)
    ingest([tmp / "raw"], tmp / "panel.parquet")
    return _champion(tmp / "panel.parquet", "spendcast-damir")
