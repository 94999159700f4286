"""The web page in a real browser: Debian's Chromium driven by Playwright, real service.

The service runs under uvicorn on a free loopback port, on a model really trained
(``tests.panels.make_panel`` -> ``training.fit``) and registered as champion in a tmp MLflow
store (the ``real_model`` session fixture). Chromium must be installed (``.ci/run`` installs
it with apt): when it is absent these tests fail, they do not skip.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.main import create_app
from service.serving import default_loader
from tests.service.conftest import AUTH, KEY, sqlite_store
from tests.service.server import running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The test run saves its screenshot as an artifact in test-artifacts/ (git-ignored);
# `SPENDCAST_UPDATE_SCREENSHOT=1 make test` also refreshes the README's docs/screenshot.png.
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "test-artifacts" / "screenshot.png"  # -generated / -pbs
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"


@pytest.fixture(scope="module", params=["generated", "pbs"])
def base_url(request, tmp_path_factory) -> Iterator[str]:
    """The real service on a registered champion, on a free loopback port: the model trained
    on the generated panel, then one trained on real data (PBS)."""
    model = request.getfixturevalue("real_model" if request.param == "generated" else "pbs_model")
    tmp = tmp_path_factory.mktemp("ui")
    settings = Settings(
        database_url=sqlite_store(tmp / "store.db"),
        cache_dir=tmp / "cache",
        model_uri=model["uri"],
        log_level="WARNING",
        api_keys=SecretStr(KEY),
    )
    app = create_app(settings, loader=default_loader, retry_seconds=0.2)
    with running(app, ready_timeout=60) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    """Headless system Chromium with a fresh profile; fails (not skips) when absent."""
    if not (os.path.exists(CHROMIUM) and shutil.which("chromium")):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it with "
            "`apt-get update && apt-get install -y chromium` (.ci/run does this)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` package is missing: pip install -e '.[dev]'")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        b = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 1100},
            locale="fr-FR",
        )
        try:
            yield b
        finally:
            b.close()


def _family(base: str) -> tuple[str, list[str]]:
    """A series with children (a family under the total) and its children, from the API."""
    series = httpx.get(base + "/v1/series", timeout=10).json()["series"]
    kids: dict[str, list[str]] = {}
    for s in series:
        if s.get("parent"):
            kids.setdefault(s["parent"], []).append(s["unique_id"])
    fams = sorted(p for p in kids if p != "total" and len(kids[p]) >= 2)
    assert fams, "the test panel must have a family with at least two children"
    return fams[0], sorted(kids[fams[0]])


def _wait(page: Any, predicate: str, arg: Any = None, timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a JS function) until true. ``page.wait_for_function`` compiles its
    predicate with ``eval`` inside the page, which the page's CSP (script-src 'self') rightly
    forbids when the first check fails; ``page.evaluate`` runs through the debugger protocol."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.05)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.slow
def test_page_in_a_real_browser(base_url, browser, tmp_path, request):
    base = base_url
    which = request.node.callspec.params["base_url"]
    family, children = _family(base)
    requests: list[str] = []
    # a stored observation for the first projected month, far above: flagged and stored
    first = httpx.get(base + "/v1/forecast", params={"unique_id": family}).json()
    obs = {"unique_id": family, "ds": first["ds"][0], "y": 1.4 * first["mean"][0]}
    r = httpx.post(base + "/v1/anomalies/detect", json={"observations": [obs]}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "ANOMALY"
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    _wait(page, "() => !!(window.__spendcast && window.__spendcast.loaded === true)")
    assert page.locator("#run-id").inner_text() == httpx.get(base + "/v1/model").json()["run_id"]
    assert page.locator("html").get_attribute("lang") == "fr"

    # pick the family BY KEYBOARD: Tab into the search box, type, arrows, Enter
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "search":
            break
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type(family.split("/")[-1])
    page.keyboard.press("ArrowDown")  # the first child
    active = page.locator("#picker li.active")
    assert active.get_attribute("data-uid") == children[0]
    page.keyboard.press("ArrowUp")  # back to the family
    assert page.locator("#picker li.active").get_attribute("data-uid") == family
    page.keyboard.press("Enter")
    _wait(page, "(uid) => window.__spendcast.ready && window.__spendcast.uid === uid", family)
    assert page.locator('#picker li[aria-selected="true"]').get_attribute("data-uid") == family
    assert page.locator("#picker").get_attribute("role") == "tree"

    # the chart's bands and points equal the API's numbers
    model = httpx.get(base + "/v1/model").json()
    levels = [lv for lv in model["levels"] if lv in (50, 80, 95)] or model["levels"]
    params: list[tuple[str, str | int | float | bool | None]] = [("unique_id", family)] + [
        ("level", v) for v in levels
    ]
    fc = httpx.get(base + "/v1/forecast", params=params).json()
    chart = page.evaluate("window.__spendcast.chart")
    assert chart["forecast_ds"] == [d[:7] for d in fc["ds"]]
    assert all(_close(a, b) for a, b in zip(chart["mean"], fc["mean"], strict=True))
    assert sorted(int(k) for k in chart["bands"]) == sorted(levels)
    for iv in fc["intervals"]:
        band = chart["bands"][str(iv["level"])]
        assert all(_close(a, b) for a, b in zip(band["lo"], iv["lo"], strict=True))
        assert all(_close(a, b) for a, b in zip(band["hi"], iv["hi"], strict=True))
        assert all(lo <= m <= hi for lo, m, hi in zip(iv["lo"], fc["mean"], iv["hi"], strict=True))
    hist = httpx.get(base + "/v1/anomalies/historical", params={"unique_id": family}).json()
    assert all(_close(a, r["y"]) for a, r in zip(chart["observed"], hist["results"], strict=True))
    flagged = sorted(r["ds"][:7] for r in hist["results"] if r["is_anomaly"])
    assert chart["anomaly_months"] == [*flagged, obs["ds"][:7]]
    # what uPlot really plots: x, observed, mean, then (hi, lo) per level, then anomalies
    plotted = chart["plotted"]
    assert len(plotted) == 3 + 2 * len(levels) + 1
    n_obs = len(hist["results"])
    assert plotted[2][n_obs : n_obs + len(fc["mean"])] == pytest.approx(fc["mean"])
    assert page.locator("#chart canvas").count() >= 1
    assert family in (page.locator("#chart").get_attribute("aria-label") or "")

    # the table: last 12 observed months with expected, bounds, status
    rows = page.locator("#months tbody tr")
    assert rows.count() == min(12, n_obs + 1)
    assert rows.last.get_attribute("data-status") == "ANOMALY"
    stored = httpx.get(base + "/v1/anomalies", params={"unique_id": family}).json()["results"]
    table = page.evaluate("window.__spendcast.table")
    for got, want in zip(table, [*hist["results"], *stored][-12:], strict=True):
        assert got["month"] == want["ds"][:7] and got["status"] == want["status"]
        assert _close(got["expected"], want["expected"]) and _close(got["lo"], want["lo"])

    # budget -> probability of exceeding it, equal to the API's
    year = page.locator("#year").input_value()
    plain = httpx.get(
        base + "/v1/projections/annual", params={"unique_id": family, "year": year}
    ).json()
    budget = round(plain["total"] * 1.01)
    page.locator("#budget").focus()
    page.keyboard.type(str(budget))
    _wait(
        page,
        "(b) => document.getElementById('annual').dataset.budget === String(b)"
        " && document.getElementById('prob').dataset.prob !== undefined",
        budget,
    )
    api = httpx.get(
        base + "/v1/projections/annual",
        params={"unique_id": family, "year": year, "budget": budget},
    ).json()
    shown = float(page.locator("#prob").get_attribute("data-prob") or "nan")
    assert shown == pytest.approx(api["prob_over_budget"], abs=1e-12)
    text = page.locator("#prob").inner_text()
    want = page.evaluate(
        "(p) => new Intl.NumberFormat('fr-FR', {style: 'percent', minimumFractionDigits: 1,"
        " maximumFractionDigits: 1}).format(p)",
        api["prob_over_budget"],
    )
    assert text == want
    total_text = page.locator("#annual-total").inner_text()
    assert "€" in total_text and "\u202f" in total_text  # French thousands separator

    # contributions: one bar per child, the points sum to the parent's growth
    contrib = page.evaluate("window.__spendcast.contributions")
    assert [c["unique_id"] for c in contrib] == children
    ys = [r["y"] for r in hist["results"]]
    if len(ys) >= 24 and sum(ys[-24:-12]):
        growth = 100 * (sum(ys[-12:]) - sum(ys[-24:-12])) / sum(ys[-24:-12])
        assert sum(c["points"] for c in contrib) == pytest.approx(growth, rel=1e-6, abs=1e-6)
    assert page.locator("#contrib .row").count() == len(children)

    # CSV download equals the API's CSV
    with page.expect_download() as info:
        page.locator("#csv-link").click()
    downloaded = Path(info.value.path()).read_bytes()
    api_csv = httpx.get(base + "/v1/forecast", params=[*params, ("format", "csv")]).content
    assert downloaded == api_csv

    # English toggle
    page.locator("#lang-toggle").press("Enter")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#months th").first.inner_text() == "Month"
    page.locator("#lang-toggle").press("Enter")

    shot = SCREENSHOT.with_name(f"screenshot-{which}.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if which == "generated" and os.environ.get("SPENDCAST_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    # a bottom-level series chosen from the tree itself (End, Enter): no children to show
    page.locator("#search").fill("")
    page.locator("#picker").focus()
    page.keyboard.press("End")
    leaf = page.locator("#picker li.active").get_attribute("data-uid")
    assert leaf and leaf.count("/") == len(model["hierarchy"])
    page.keyboard.press("Enter")
    _wait(page, "(uid) => window.__spendcast.ready && window.__spendcast.uid === uid", leaf)
    assert page.evaluate("window.__spendcast.contributions") == []
    assert page.locator("#contrib").inner_text() == "Pas de sous-série."
    assert page.evaluate("window.__spendcast.chart.unique_id") == leaf

    assert not errors, errors
    outside = [u for u in requests if not u.startswith(base + "/")]
    assert not outside, f"requests left localhost: {outside}"
    assert any("/static/vendor/uPlot.iife.min.js" in u for u in requests)
    page.close()


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/", 200, "text/html"),
        ("/static/app.js", 200, "text/javascript"),
        ("/static/vendor/uPlot.iife.min.js", 200, "text/javascript"),
        ("/static/app.css", 200, "text/css"),
        ("/static/../main.py", 404, None),
        ("/static/%2e%2e/main.py", 404, None),
        ("/static/vendor/LICENSE", 404, None),
        ("/static/nope.js", 404, None),
    ],
)
def test_static_files_come_only_from_the_package(client, path, status, kind):
    r = client.get(path)
    assert r.status_code == status, r.text
    if kind:
        assert r.headers["content-type"].startswith(kind)
        assert "default-src 'self'" in r.headers["content-security-policy"]
