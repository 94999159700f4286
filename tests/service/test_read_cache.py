"""The read cache: repeated GET reads answered from their first answer's bytes, per model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from service.read_cache import CACHED_PATHS
from service.serving import BoundedCache
from tests.service.conftest import AUTH
from tests.service.synthetic import FakeLoaded, make_bundle

READ_KEY = "a-read-key-of-thirty-two-characters-x"
FORECAST = ("/v1/forecast", {"unique_id": "total/a", "horizon": 6})


class TwoModels:
    """Serves ``make_bundle(seed=0)`` then ``seed=1`` on each reload, alternately."""

    def __init__(self) -> None:
        self.bundles = [make_bundle(seed=0), make_bundle(seed=1)]
        self.calls = 0

    def __call__(self, uri, _cache_dir, **_options):
        self.calls += 1
        return FakeLoaded(self.bundles[(self.calls - 1) % 2], uri=uri, version=str(self.calls))


def test_a_repeated_read_is_the_same_answer_from_the_cache(make_client):
    c = make_client()
    model = c.app.state.holder.current
    for path, params in [FORECAST, ("/v1/series", {}), ("/v1/series", {"level": "1"})]:
        first, second = c.get(path, params=params), c.get(path, params=params)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert first.headers["content-type"] == second.headers["content-type"]
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert {path for path, _ in model.responses.keys()} == CACHED_PATHS
    assert len(model.responses) == 3
    hits = c.get("/metrics").text
    assert 'spendcast_http_requests_total{method="GET",route="/v1/forecast",status="200"} 2.0' in (
        hits
    )


def test_the_cached_answer_is_the_apps_answer(make_client):
    """A hit gives the bytes the route gives on a model that never cached anything."""
    c = make_client()
    c.get(FORECAST[0], params=FORECAST[1])
    cached = c.get(FORECAST[0], params=FORECAST[1])
    c.app.state.holder.current.responses.clear()
    fresh = c.get(FORECAST[0], params=FORECAST[1])
    assert cached.content == fresh.content


def test_errors_and_other_methods_are_never_cached(make_client):
    c = make_client()
    model = c.app.state.holder.current
    for _ in range(2):
        assert c.get("/v1/forecast", params={"unique_id": "nope"}).status_code == 404
        assert (
            c.get("/v1/forecast", params={"unique_id": "total", "horizon": 999}).status_code == 422
        )
        assert c.post("/v1/forecast", json={"unique_ids": ["total"]}).status_code == 200
        assert c.get("/v1/model").status_code == 200  # not a cached path
        junk = {"unique_id": "total", "utm": "x"}  # a parameter the route does not declare
        assert c.get("/v1/forecast", params=junk).status_code == 200
    assert len(model.responses) == 0


def test_a_reload_is_never_answered_from_the_previous_models_cache(make_client):
    c = make_client(loader=TwoModels())
    before = c.get(FORECAST[0], params=FORECAST[1]).json()
    assert c.get(FORECAST[0], params=FORECAST[1]).json() == before  # cached
    assert c.post("/v1/admin/reload", headers=AUTH).status_code == 200
    after = c.get(FORECAST[0], params=FORECAST[1]).json()
    assert after["model_version"] != before["model_version"]
    assert c.app.state.holder.current.responses  # the new model's own cache


def test_with_read_keys_a_cached_answer_still_needs_a_key(make_client):
    c = make_client(read_keys=SecretStr(READ_KEY))
    reader = {"Authorization": f"Bearer {READ_KEY}"}
    ok = c.get(FORECAST[0], params=FORECAST[1], headers=reader)
    assert ok.status_code == 200
    assert c.get(FORECAST[0], params=FORECAST[1], headers=reader).content == ok.content
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": READ_KEY}):
        refused = c.get(FORECAST[0], params=FORECAST[1], headers=headers)
        assert refused.status_code == 401, headers
    assert c.get(FORECAST[0], params=FORECAST[1], headers=AUTH).content == ok.content


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 120)), max_size=200),
    st.integers(1, 8),
    st.integers(1, 300),
)
def test_a_bounded_cache_never_passes_its_bounds(puts, max_items, max_bytes):
    cache = BoundedCache(max_items=max_items, max_bytes=max_bytes)
    sizes: dict[int, int] = {}
    for key, size in puts:
        cache.put(key, f"v{key}-{size}", size)
        if size <= max_bytes:  # what was just put is there, and whole
            sizes[key] = size
            assert cache.get(key) == f"v{key}-{size}"
        assert len(cache) <= max_items
        assert all(cache.get(k) == f"v{k}-{sizes[k]}" for k in cache.keys())
        assert cache.nbytes == sum(sizes[k] for k in cache.keys()) <= max_bytes
