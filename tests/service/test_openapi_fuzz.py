"""Schemathesis against the app's own OpenAPI: no generated request gets a 5xx."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from service.config import Settings
from service.main import create_app
from tests.service.conftest import AUTH, KEY, sqlite_store
from tests.service.synthetic import fake_loader, make_bundle


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = Settings(
        database_url=sqlite_store(tmp / "fuzz.db"),
        api_keys=SecretStr(KEY),
        cache_dir=tmp / "cache",
        log_level="WARNING",
    )
    app = create_app(cfg, loader=fake_loader(make_bundle(seed=3)), retry_seconds=0.1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    deadline = time.monotonic() + 10
    while app.state.holder.current is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return schema


def _operations() -> list[str]:
    app = create_app(Settings(log_level="WARNING"))
    return [
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path != "/v1/admin/reload"  # reloading the fake model is covered elsewhere
    ]


@pytest.mark.slow
@pytest.mark.parametrize("label", _operations())
def test_no_server_error(api_schema, label):
    method, path = label.split(" ", 1)
    operation = (
        api_schema[path][method].ok()
        if hasattr(api_schema[path][method], "ok")
        else (api_schema[path][method])
    )

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=AUTH, checks=[not_a_server_error])

    run()
