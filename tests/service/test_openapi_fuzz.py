"""Schemathesis against the app's own OpenAPI: no generated request gets a 5xx, with reads
open, with read keys set, and with the database down (then 503 is the only 5xx allowed)."""

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
from tests.service.server import free_port
from tests.service.synthetic import fake_loader, make_bundle

READ_KEY = "fuzz-read-key"
VARIANTS = {  # name -> (settings, headers sent)
    "open": ({}, AUTH),
    "read-keys": ({"read_keys": SecretStr(READ_KEY)}, {"Authorization": f"Bearer {READ_KEY}"}),
    "db-down": ({"db_connect_timeout": 1}, AUTH),
}


def only_503(ctx, response, case) -> None:  # noqa: ARG001 - schemathesis' check signature
    """The database is down: a 5xx must be the 503 of an unavailable store."""
    assert response.status_code < 500 or response.status_code == 503, (
        f"{case.operation.label} answered {response.status_code}"
    )


@pytest.fixture(scope="module", params=list(VARIANTS))
def api(request, tmp_path_factory):
    overrides, headers = VARIANTS[request.param]
    tmp = tmp_path_factory.mktemp("fuzz")
    url = (
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/down"
        if request.param == "db-down"
        else sqlite_store(tmp / "fuzz.db")
    )
    cfg = Settings(
        database_url=url,
        api_keys=SecretStr(KEY),
        cache_dir=tmp / "cache",
        log_level="CRITICAL",
        **overrides,
    )
    app = create_app(cfg, loader=fake_loader(make_bundle(seed=3)), retry_seconds=0.1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    deadline = time.monotonic() + 10
    while app.state.holder.current is None and time.monotonic() < deadline:
        time.sleep(0.02)
    check = only_503 if request.param == "db-down" else not_a_server_error
    examples = 25 if request.param == "open" else 10
    return schema, headers, check, examples


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
def test_no_server_error(api, label):
    schema, headers, check, examples = api
    method, path = label.split(" ", 1)
    operation = (
        schema[path][method].ok() if hasattr(schema[path][method], "ok") else schema[path][method]
    )

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=[check])

    run()
