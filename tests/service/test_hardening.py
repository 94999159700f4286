"""What an anonymous caller can see and do: no internals in any answer, 500s through the
request middleware, read keys, local API docs, nosniff, safe CSV, bounded inputs."""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from forecasting.errors import SpendcastError
from service.main import NO_KEYS_WARNING
from tests.service.conftest import AUTH, KEY
from tests.service.synthetic import fake_loader, make_bundle, rename_series

READ_KEY = "read-only-key-42"


@pytest.fixture
def logs(caplog):
    """Records of the ``spendcast`` loggers (which do not propagate to pytest's handler)."""
    root = logging.getLogger("spendcast")
    root.addHandler(caplog.handler)
    yield caplog
    root.removeHandler(caplog.handler)


def test_load_errors_stay_in_the_log_masked(make_client, logs):
    secret = "postgresql+psycopg://svc:Sup3rSecret@db.internal/mlflow"

    def failing(uri, cache_dir, **_options):
        raise RuntimeError(f"could not connect to {secret}: connection refused")

    c = make_client(loader=failing, ready=False)
    answers = [
        c.get("/readyz"),
        c.get("/v1/model"),
        c.get("/v1/forecast", params={"unique_id": "total"}),
        c.get("/v1/series"),
        c.post("/v1/admin/reload", headers=AUTH),
    ]
    assert [r.status_code for r in answers] == [503] * 5
    for r in answers:
        assert "Sup3rSecret" not in r.text and "db.internal" not in r.text, r.text
        assert r.headers["retry-after"]
    logged = "\n".join(json.dumps(rec.__dict__, default=str) for rec in logs.records)
    assert "svc:***@db.internal" in logged and "Sup3rSecret" not in logged


def test_a_cached_start_says_so_without_internals(make_client, logs):
    bundle = make_bundle(seed=2)

    def from_cache(uri, cache_dir, **_options):
        from tests.service.synthetic import FakeLoaded

        why = "could not load from postgresql://u:pw@registry.internal/db: refused"
        return FakeLoaded(bundle, uri=uri, from_cache=True, reason=why)

    c = make_client(loader=from_cache)
    body = c.get("/readyz").json()
    assert body["status"] == "degraded" and "cached copy" in body["reason"]
    assert "registry.internal" not in json.dumps(body)
    logged = "\n".join(json.dumps(rec.__dict__, default=str) for rec in logs.records)
    assert "model loaded" in logged and "u:pw@" not in logged  # the log masks it too


def _boom_app(make_client):
    c = make_client()

    def model_error() -> None:
        raise SpendcastError("bundle /srv/secret/path is broken: password=hunter2")

    def unexpected() -> None:
        raise RuntimeError("internal state: password=hunter2")

    c.app.add_api_route("/v1/boom/model", model_error)
    c.app.add_api_route("/v1/boom/unexpected", unexpected)
    return c


@pytest.mark.parametrize(
    ("path", "slug"), [("/v1/boom/model", "model-error"), ("/v1/boom/unexpected", "internal")]
)
def test_errors_are_problems_with_request_id_and_logged_once(make_client, logs, path, slug):
    c = _boom_app(make_client)
    logs.clear()
    r = c.get(path, headers={"X-Request-ID": "rid-500"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith(slug) and body["request_id"] == "rid-500"
    assert "hunter2" not in r.text and "/srv/secret" not in r.text
    assert r.headers["x-request-id"] == "rid-500"
    assert r.headers["x-content-type-options"] == "nosniff"
    mine = [rec for rec in logs.records if getattr(rec, "request_id", None) == "rid-500"]
    errors = [rec for rec in mine if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and "hunter2" not in json.dumps(errors[0].__dict__, default=str)
    from service.telemetry import JsonFormatter

    line = JsonFormatter().format(errors[0])
    assert "\n" not in line and json.loads(line)["request_id"] == "rid-500"


def test_database_parameters_are_never_logged(client):
    assert client.app.state.store.engine.hide_parameters


def test_no_api_key_warns_at_start(make_client, logs):
    make_client(api_keys=SecretStr(""))
    assert any(
        r.levelno == logging.WARNING and r.getMessage() == NO_KEYS_WARNING for r in logs.records
    )


def _routes(app) -> dict[tuple[str, str], APIRoute]:
    """Every API route by (path, method), included routers flattened."""
    out = {}
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            out |= {(ctx.path, m): ctx.original_route for m in ctx.methods or ()}
    return out


def _reads(app) -> list[tuple[str, str]]:
    """Every /v1 read: GET routes and the read-only POST /v1/forecast."""
    out = []
    for (path, method), route in _routes(app).items():
        read_only = (route.openapi_extra or {}).get("x-read-only", False)
        if path.startswith("/v1") and (method == "GET" or read_only):
            out.append((method, path))
    assert ("GET", "/v1/anomalies") in out and ("POST", "/v1/forecast") in out
    return out


_ARGS = {
    "/v1/forecast": {"params": {"unique_id": "total"}, "json": {"unique_ids": ["total"]}},
    "/v1/projections/annual": {"params": {"unique_id": "total", "year": 2024}},
    "/v1/anomalies/historical": {"params": {"unique_id": "total"}},
    "/v1/growth": {"params": {"unique_id": "total"}},
}


def test_read_keys_protect_every_read(make_client):
    c = make_client(read_keys=SecretStr(f"{READ_KEY},another"))
    for method, path in _reads(c.app):
        kw = _ARGS.get(path, {})
        kw = {k: v for k, v in kw.items() if k != "json" or method == "POST"}
        assert c.request(method, path, **kw).status_code == 401, (method, path)
        wrong = c.request(method, path, headers={"Authorization": "Bearer nope"}, **kw)
        assert wrong.status_code == 401
        for key in (READ_KEY, KEY):  # a read key, or a write key
            r = c.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)
            assert r.status_code == 200, (method, path, r.text)
    obs = {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1}]}
    read_only = {"Authorization": f"Bearer {READ_KEY}"}
    assert c.post("/v1/anomalies/detect", json=obs, headers=read_only).status_code == 401
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_reads_are_open_without_read_keys(client):
    for method, path in _reads(client.app):
        kw = _ARGS.get(path, {})
        kw = {k: v for k, v in kw.items() if k != "json" or method == "POST"}
        assert client.request(method, path, **kw).status_code == 200, (method, path)


def test_docs_load_nothing_from_outside(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, no favicon URL
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        url = f"/static/vendor/swagger-ui/{asset}"
        assert url in page.text
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 500
    assert client.get("/redoc").status_code == 404
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_docs_can_be_turned_off(make_client):
    c = make_client(docs=False)
    assert c.get("/docs").status_code == 404
    assert c.get("/openapi.json").status_code == 200


def test_api_answers_say_nosniff(client):
    for r in (
        client.get("/v1/model"),
        client.get("/v1/forecast", params={"unique_id": "nope"}),
        client.get("/healthz"),
        client.get("/"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers.get_list("x-content-type-options") == ["nosniff"]


@pytest.mark.parametrize("root", ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", 'a;b"c'])
def test_csv_cells_are_never_formulas(make_client, root):
    c = make_client(loader=fake_loader(rename_series(make_bundle(seed=0), "total", root)))
    ids = [root, f"{root}/a"]
    r = c.post("/v1/forecast?format=csv", json={"unique_ids": ids, "horizon": 2})
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["serie", "libelle", "mois", "prevision"] and len(rows) == 5
    assert all(len(row) == len(rows[0]) for row in rows)  # ; inside a cell is quoted
    first = {row[0] for row in rows[1:]}
    expected = {("'" + i) if i[0] in "=+-@\t\r" else i for i in ids}
    assert first == expected
    assert not any(row[1][:1] in ("=", "+", "-", "@", "\t", "\r") for row in rows[1:])


def test_cpu_bound_handlers_run_in_the_thread_pool(client):
    by_path = {key: route.endpoint for key, route in _routes(client.app).items()}
    for key in (
        ("/v1/anomalies/historical", "GET"),
        ("/v1/forecast", "POST"),
        ("/v1/anomalies/detect", "POST"),
        ("/v1/projections/annual", "GET"),
        ("/readyz", "GET"),
    ):
        assert not inspect.iscoroutinefunction(by_path[key]), key


@pytest.mark.parametrize(
    ("obs", "extra", "field"),
    [
        ({"y": 1e15}, {}, "observations.0.y"),
        ({"y": -1e15}, {}, "observations.0.y"),
        ({"ds": "1989-12-01"}, {}, "observations.0.ds"),
        ({"ds": "2101-01-01"}, {}, "observations.0.ds"),
        ({"as_of": "2023-12-01"}, {}, "observations.0.as_of"),
        ({"as_of": "2999-01-01"}, {}, "observations.0.as_of"),
        ({}, {"as_of": "2023-11-01"}, "as_of"),
        ({}, {"as_of": "2100-12-01"}, "as_of"),
    ],
)
def test_detect_bounds_name_the_field(client, obs, extra, field):
    row = {"unique_id": "total", "ds": "2024-01-01", "y": 1.0, **obs}
    r = client.post("/v1/anomalies/detect", json={"observations": [row], **extra}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert client.get("/v1/anomalies").json()["count"] == 0  # nothing partial written


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 10_001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": 100_001}, "offset"),
        ({"after": "bm90IGEgY3Vyc29y"}, "after"),
        ({"after": "x" * 2000}, "after"),
        ({"offset": 5, "after": "x"}, "offset"),
    ],
)
def test_listing_parameters_are_bounded(client, params, field):
    r = client.get("/v1/anomalies", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_listing_pages_through_everything(client):
    obs = [
        {"unique_id": u, "ds": f"2024-0{m}-01", "y": float(m)}
        for u in ("total", "total/a", "total/b")
        for m in (1, 2, 3)
    ]
    client.post("/v1/anomalies/detect", json={"observations": obs}, headers=AUTH)
    seen, after = [], None
    while True:
        page = client.get(
            "/v1/anomalies", params={"limit": 4, **({"after": after} if after else {})}
        )
        body = page.json()
        seen += [(r["ds"], r["unique_id"]) for r in body["results"]]
        after = body["next_after"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == 9
    old = client.get("/v1/anomalies", params={"limit": 4, "offset": 4}).json()
    assert [(r["ds"], r["unique_id"]) for r in old["results"]] == seen[4:8]
