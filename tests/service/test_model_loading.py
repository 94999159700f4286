"""Loading the model in the service: registry attempts bounded, the cached copy only while
nothing else serves, the registry retried, broken champions refused, warm-ups cancelled."""

from __future__ import annotations

import time

import pytest

from service.serving import ServedModel, default_loader
from tests.mlflow_faults import hanging_postgres
from tests.service.conftest import AUTH, registered_with_broken_next, wait_ready
from tests.service.synthetic import FakeLoaded, make_bundle


class Registry:
    """A fake loader: the registry is down for the first ``down`` strict attempts."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls: list[dict] = []
        self.bundle = make_bundle(seed=0)

    def __call__(self, uri, _cache_dir, **options):
        self.calls.append(options)
        strict = [c for c in self.calls if not c["use_cache"]]
        if options["use_cache"]:
            return FakeLoaded(self.bundle, uri=uri, from_cache=True, reason="registry down")
        if len(strict) <= self.down:
            raise ConnectionError("registry down")
        return FakeLoaded(self.bundle, uri=uri, version="7")


def test_a_start_from_cache_keeps_retrying_the_registry(make_client):
    registry = Registry(down=2)
    c = make_client(loader=registry, retry_seconds=0.05)
    assert c.get("/readyz").json()["status"] in ("degraded", "ready")
    deadline = time.monotonic() + 10
    while c.get("/readyz").json()["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = c.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model_version"] == "synthetic/7"
    assert [call["use_cache"] for call in registry.calls] == [True, False, False, False]
    n = len(registry.calls)
    time.sleep(0.3)
    assert len(registry.calls) == n  # served from the registry: no more attempts
    assert all(call["timeout"] == c.app.state.settings.registry_timeout for call in registry.calls)


def test_a_reload_never_uses_the_cache_and_keeps_the_model(make_client):
    registry = Registry(down=10**6)
    c = make_client(loader=registry, retry_seconds=60)
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 503 and r.json()["type"].endswith("reload-failed")
    assert registry.calls[-1]["use_cache"] is False
    assert c.get("/v1/model").json()["from_cache"] is True  # the model it had


def test_replaced_models_stop_warming_up(make_client):
    c = make_client()
    holder = c.app.state.holder
    first = holder.current
    assert c.post("/v1/admin/reload", headers=AUTH).status_code == 200
    assert first.cancelled and not holder.current.cancelled
    fresh = ServedModel.build(FakeLoaded(make_bundle(seed=4)))
    fresh.cancel()
    assert fresh.warm_up() == 0  # cancelled: not one conditioning model fitted
    c.__exit__(None, None, None)
    assert holder.current.cancelled  # the service stopped


@pytest.mark.slow
def test_a_broken_new_champion_is_refused(make_client, real_model, tmp_path):
    promote_broken = registered_with_broken_next(real_model["uri"], "spendcast-broken", tmp_path)
    c = make_client(loader=default_loader, model_uri="models:/spendcast-broken@champion")
    assert c.get("/v1/model").json()["version"] == "1"
    promote_broken()
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 503 and r.json()["type"].endswith("reload-failed")
    assert "paths.npz" not in r.text  # the why is in the log
    served = c.get("/v1/model").json()
    assert (served["version"], served["from_cache"]) == ("1", False)
    assert c.get("/readyz").json()["status"] == "ready"


@pytest.fixture
def hanging_registry(monkeypatch):
    """MLFLOW_TRACKING_URI on a PostgreSQL port that accepts connections and never answers."""
    with hanging_postgres() as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield


@pytest.mark.slow
def test_the_cached_copy_serves_within_15_s_when_the_registry_hangs(
    make_client, real_model, tmp_path, request
):
    cache = tmp_path / "shared-cache"
    first = make_client(loader=default_loader, model_uri=real_model["uri"], cache_dir=cache)
    assert first.get("/readyz").json()["status"] == "ready"
    request.getfixturevalue("hanging_registry")
    t0 = time.monotonic()
    c = make_client(
        loader=default_loader,
        model_uri=real_model["uri"],
        cache_dir=cache,
        registry_timeout=2,
        ready=False,
    )
    body = wait_ready(c, timeout=15)
    assert time.monotonic() - t0 < 15
    assert body["status"] == "degraded" and "cached copy" in body["reason"]
