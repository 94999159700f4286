"""API keys on every write/admin route (enumerated from app.routes), body limits, CORS, errors."""

from __future__ import annotations

import json

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from tests.service.conftest import AUTH, KEY

SAFE = {"GET", "HEAD", "OPTIONS"}


def protected_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) that is not a read: non-GET routes not marked x-read-only."""
    out = []
    for ctx in iter_route_contexts(app.routes):  # flattens included routers
        route = ctx.original_route
        if not isinstance(route, APIRoute):
            continue
        read_only = (route.openapi_extra or {}).get("x-read-only", False)
        for method in sorted(set(ctx.methods or ()) - SAFE):
            if not read_only or ctx.path.startswith("/v1/admin"):
                out.append((method, ctx.path))
    assert out, "no route enumerated: the enumeration itself is broken"
    return out


def test_routes_are_enumerated(client):
    routes = protected_routes(client.app)
    assert ("POST", "/v1/anomalies/detect") in routes
    assert ("POST", "/v1/admin/reload") in routes
    assert ("POST", "/v1/forecast") not in routes  # a read with a body


@pytest.mark.parametrize(
    ("headers", "slug"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Bearer wrong"}, "unauthorized"),
        ({"Authorization": f"Bearer {KEY}x"}, "unauthorized"),
        ({"Authorization": f"Basic {KEY}"}, "unauthorized"),
        ({"Authorization": KEY}, "unauthorized"),
    ],
)
def test_every_write_route_needs_the_key(client, headers, slug):
    for method, path in protected_routes(client.app):
        r = client.request(method, path, headers=headers, json={})
        assert r.status_code == 401, (method, path, r.text)
        body = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert body["type"].endswith(slug) and body["status"] == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert KEY not in r.text


def test_right_key_passes(client):
    for method, path in protected_routes(client.app):
        r = client.request(method, path, headers=AUTH, json={"observations": []})
        assert r.status_code != 401, (method, path)


def test_no_key_configured_refuses_and_says_how(make_client):
    c = make_client(api_keys=SecretStr(""))
    for method, path in protected_routes(c.app):
        r = c.request(method, path, headers=AUTH, json={})
        assert r.status_code == 401
        body = r.json()
        assert body["type"].endswith("auth-not-configured")
        assert "SPENDCAST_API_KEYS" in body["detail"]


def test_second_key_also_works(client):
    r = client.post(
        "/v1/anomalies/detect",
        headers={"Authorization": "Bearer other-key"},
        json={"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1}]},
    )
    assert r.status_code == 200


def test_key_is_never_logged(make_client, caplog):
    c = make_client(log_level="INFO")
    import logging

    with caplog.at_level(logging.INFO, logger="spendcast"):
        logging.getLogger("spendcast").propagate = True
        c.post("/v1/admin/reload", headers=AUTH)
        c.post("/v1/admin/reload", headers={"Authorization": "Bearer leaked-guess"})
    logging.getLogger("spendcast").propagate = False
    text = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    access = [r for r in caplog.records if r.name == "spendcast.access"]
    assert access and all(len(r.request_id) == 32 for r in access)
    assert "/v1/admin/reload" in {r.route for r in access}
    from service.telemetry import JsonFormatter

    reload = next(r for r in access if r.route == "/v1/admin/reload")
    line = json.loads(JsonFormatter().format(reload))
    assert line["request_id"] == reload.request_id and line["status"] == 200
    assert KEY not in text and "leaked-guess" not in text


def test_body_over_limit_by_content_length(make_client):
    c = make_client(max_body_bytes=1000)
    obs = [{"unique_id": "total", "ds": "2024-01-01", "y": i} for i in range(100)]
    r = c.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413


def test_body_over_limit_when_streamed_without_length(make_client):
    c = make_client(max_body_bytes=1000)
    payload = json.dumps(
        {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": i} for i in range(100)]}
    ).encode()

    def chunks():
        for i in range(0, len(payload), 200):
            yield payload[i : i + 200]

    r = c.post(
        "/v1/anomalies/detect",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["type"].endswith("payload-too-large")


def test_too_many_observations_names_the_field(client):
    obs = [{"unique_id": "total", "ds": "2024-01-01", "y": i} for i in range(10_001)]
    r = client.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["field"] == "observations"


def test_cors_off_by_default_and_on_when_configured(make_client, client):
    pre = {"Origin": "https://budget.example", "Access-Control-Request-Method": "GET"}
    r = client.options("/v1/model", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    c = make_client(cors_origins="https://budget.example")
    r = c.options("/v1/model", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://budget.example"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "slug", "field"),
    [
        ("GET", "/v1/forecast", {"params": {"unique_id": "x"}}, 404, "unknown-series", "unique_id"),
        (
            "GET",
            "/v1/forecast",
            {"params": {"unique_id": "total", "horizon": 99}},
            422,
            "invalid-parameter",
            "horizon",
        ),
        (
            "GET",
            "/v1/forecast",
            {"params": {"unique_id": "total", "level": 42}},
            422,
            "invalid-parameter",
            "level",
        ),
        (
            "POST",
            "/v1/forecast",
            {"json": {"unique_ids": ["total", "zz"]}},
            404,
            "unknown-series",
            "unique_ids",
        ),
        (
            "POST",
            "/v1/forecast",
            {"json": {"unique_ids": []}},
            422,
            "validation-error",
            "unique_ids",
        ),
        (
            "POST",
            "/v1/forecast",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            422,
            "validation-error",
            None,
        ),
        (
            "GET",
            "/v1/projections/annual",
            {"params": {"unique_id": "total", "year": 1990}},
            422,
            "invalid-input",
            "year",
        ),
        (
            "GET",
            "/v1/projections/annual",
            {"params": {"unique_id": "total", "year": "soon"}},
            422,
            "validation-error",
            "year",
        ),
        (
            "POST",
            "/v1/anomalies/detect",
            {
                "json": {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": "NaN"}]},
                "headers": AUTH,
            },
            422,
            "validation-error",
            "observations.0.y",
        ),
        (
            "POST",
            "/v1/anomalies/detect",
            {
                "json": {"observations": [{"unique_id": "total", "ds": "2024-13-01", "y": 1}]},
                "headers": AUTH,
            },
            422,
            "validation-error",
            "observations.0.ds",
        ),
        (
            "POST",
            "/v1/anomalies/detect",
            {
                "json": {
                    "observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1}],
                    "level": 100,
                },
                "headers": AUTH,
            },
            422,
            "validation-error",
            "level",
        ),
        (
            "GET",
            "/v1/anomalies/historical",
            {"params": {"unique_id": "zz"}},
            404,
            "unknown-series",
            "unique_id",
        ),
        ("GET", "/v1/nowhere", {}, 404, "not-found", None),
        ("DELETE", "/v1/model", {}, 405, "method-not-allowed", None),
    ],
)
def test_domain_errors_are_problems(client, method, path, kwargs, status, slug, field):
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["type"].endswith(slug)
    assert body["title"] and body["detail"]
    if field:
        assert body["field"] == field


def test_not_ready_is_503_problem(make_client):
    def failing(uri, cache_dir, **_options):
        raise RuntimeError("registry down and no cache")

    c = make_client(loader=failing, ready=False)
    for path in ("/readyz", "/v1/model", "/v1/forecast?unique_id=total"):
        r = c.get(path)
        assert r.status_code == 503, path
        assert r.json()["type"].endswith("not-ready")
    assert c.get("/healthz").status_code == 200
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 503 and r.json()["type"].endswith("reload-failed")
    assert "registry down" not in r.text and r.headers["x-request-id"] in r.json()["detail"]
    assert r.headers["retry-after"] == "5"
