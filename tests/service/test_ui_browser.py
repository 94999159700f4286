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
# The test run saves its screenshots as artifacts in test-artifacts/ (git-ignored):
# screenshot-<model>-<view>-<lang>.png; `SPENDCAST_UPDATE_SCREENSHOT=1 make test` also
# refreshes the README's docs/screenshot-<view>-<lang>.png from the Open DAMIR model.
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"


@pytest.fixture(scope="module", params=["damir", "pbs"])
def base_url(request, tmp_path_factory) -> Iterator[str]:
    """The real service on a registered champion, on a free loopback port: the model trained
    on generated Open DAMIR files (French labels, French calendar), then one trained on real
    data (PBS, a tidy file: its own values are its labels)."""
    model = request.getfixturevalue(f"{request.param}_model")
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


def _series(base: str) -> list[dict[str, Any]]:
    return list(httpx.get(base + "/v1/series", timeout=10).json()["series"])


def _family(base: str) -> tuple[str, list[str]]:
    """A series with children (a family under the total) and its children, from the API."""
    kids: dict[str, list[str]] = {}
    for s in _series(base):
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


def _ready(page: Any, uid: str) -> None:
    _wait(page, "(uid) => window.__spendcast.ready && window.__spendcast.uid === uid", uid)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def _open(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    """A new page at ``url``, with the requests it makes and the errors it raises."""
    page = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    _wait(page, "() => !!(window.__spendcast && window.__spendcast.loaded === true)")
    return page, requests, errors


def _path(page: Any) -> str:
    return str(page.evaluate("window.location.pathname + window.location.search"))


@pytest.mark.slow
def test_page_in_a_real_browser(base_url, browser, request):
    base = base_url
    which = request.node.callspec.params["base_url"]
    family, children = _family(base)
    # a stored observation for the first projected month, far above: flagged and stored
    first = httpx.get(base + "/v1/forecast", params={"unique_id": family}).json()
    obs = {"unique_id": family, "ds": first["ds"][0], "y": 1.4 * first["mean"][0]}
    r = httpx.post(base + "/v1/anomalies/detect", json={"observations": [obs]}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "ANOMALY"
    page, requests, errors = _open(browser, base + "/")
    assert page.locator("#run-id").inner_text() == httpx.get(base + "/v1/model").json()["run_id"]
    assert page.locator("html").get_attribute("lang") == "fr"

    # it opens on the total, chart drawn, and says so in the URL
    _ready(page, "total")
    assert _path(page) == "/?series=total"
    assert page.evaluate("window.__spendcast.chart.unique_id") == "total"
    assert page.locator("#chart canvas").count() >= 1
    assert page.locator("#series-title").inner_text() == "Total"

    # the picker shows each series' label (French labels of the codes; a tidy file's values)
    labels = {s["unique_id"]: s["label"] for s in _series(base)}
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('#picker li'))"
        ".map((li) => [li.dataset.uid, li.textContent])"
    )
    assert dict(shown) == labels
    if which == "damir":
        assert sum(lab != uid.rsplit("/", 1)[-1] for uid, lab in labels.items()) == len(labels)
        assert any(any(c in lab for c in "éèàô") for lab in labels.values())
    else:
        assert all(lab == uid.rsplit("/", 1)[-1] for uid, lab in labels.items() if uid != "total")

    # pick the family BY KEYBOARD: Tab into the search box, type, arrows, Enter
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "search":
            break
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type(family.split("/")[-1])
    page.keyboard.press("ArrowDown")  # a child (children are in label order)
    assert page.locator("#picker li.active").get_attribute("data-uid") in children
    page.keyboard.press("ArrowUp")  # back to the family
    assert page.locator("#picker li.active").get_attribute("data-uid") == family
    page.keyboard.press("Enter")
    _ready(page, family)
    assert page.locator('#picker li[aria-selected="true"]').get_attribute("data-uid") == family
    assert page.locator("#picker").get_attribute("role") == "tree"
    assert _path(page) == f"/?series={family}"  # shareable: the id, slashes kept
    assert page.locator("#series-title").inner_text() == labels[family]

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
    assert labels[family] in (page.locator("#chart").get_attribute("aria-label") or "")

    # the table: last 12 observed months with expected, bounds, status
    rows = page.locator("#months tbody tr")
    assert rows.count() == min(12, n_obs + 1)
    assert rows.last.get_attribute("data-status") == "ANOMALY"
    stored = httpx.get(base + "/v1/anomalies", params={"unique_id": family}).json()["results"]
    table = page.evaluate("window.__spendcast.table")
    for got, want in zip(table, [*hist["results"], *stored][-12:], strict=True):
        assert got["month"] == want["ds"][:7] and got["status"] == want["status"]
        assert _close(got["expected"], want["expected"]) and _close(got["lo"], want["lo"])

    # budget -> probability of exceeding it, equal to the API's; the interval is a table
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
    shown_prob = float(page.locator("#prob").get_attribute("data-prob") or "nan")
    assert shown_prob == pytest.approx(api["prob_over_budget"], abs=1e-12)
    text = page.locator("#prob").inner_text()
    want = page.evaluate(
        "(p) => new Intl.NumberFormat('fr-FR', {style: 'percent', minimumFractionDigits: 1,"
        " maximumFractionDigits: 1}).format(p)",
        api["prob_over_budget"],
    )
    assert text == want
    total_text = page.locator("#annual-total").inner_text()
    assert "€" in total_text and "\u202f" in total_text  # French thousands separator
    cells = page.evaluate(
        "Array.from(document.querySelectorAll('#annual-intervals tbody tr'))"
        ".map((tr) => Array.from(tr.cells).map((td) => td.textContent))"
    )
    assert [c[0] for c in cells] == [f"{iv['level']} %" for iv in api["intervals"]]
    eur = "(v) => new Intl.NumberFormat('fr-FR', {style: 'currency', currency: 'EUR'}).format(v)"
    assert [c[1:] for c in cells] == [
        [page.evaluate(eur, iv["lo"]), page.evaluate(eur, iv["hi"])] for iv in api["intervals"]
    ]

    # contributions: one bar per child, labelled; the points sum to the parent's growth
    contrib = page.evaluate("window.__spendcast.contributions")
    assert sorted(c["unique_id"] for c in contrib) == children
    assert [c["label"] for c in contrib] == [labels[c["unique_id"]] for c in contrib]
    ys = [r["y"] for r in hist["results"]]
    if len(ys) >= 24 and sum(ys[-24:-12]):
        growth = 100 * (sum(ys[-12:]) - sum(ys[-24:-12])) / sum(ys[-24:-12])
        assert sum(c["points"] for c in contrib) == pytest.approx(growth, rel=1e-6, abs=1e-6)
    assert page.locator("#contrib .row").count() == len(children)
    first_cells = page.locator("#contrib-table tbody tr").first.locator("td").first.inner_text()
    assert first_cells == contrib[0]["label"]

    # CSV download equals the API's CSV (with the label beside the id)
    with page.expect_download() as info:
        page.locator("#csv-link").click()
    downloaded = Path(info.value.path()).read_bytes()
    api_csv = httpx.get(base + "/v1/forecast", params=[*params, ("format", "csv")]).content
    assert downloaded == api_csv
    assert f"{family};{labels[family]};".encode() in downloaded

    # English toggle
    page.locator("#lang-toggle").press("Enter")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#months th").first.inner_text() == "Month"
    page.locator("#lang-toggle").press("Enter")

    # a bottom-level series chosen from the tree itself (End, Enter): no children to show
    page.locator("#search").fill("")
    page.locator("#picker").focus()
    page.keyboard.press("End")
    leaf = page.locator("#picker li.active").get_attribute("data-uid")
    assert leaf and leaf.count("/") == len(model["hierarchy"])
    page.keyboard.press("Enter")
    _ready(page, leaf)
    assert page.evaluate("window.__spendcast.contributions") == []
    assert page.locator("#contrib").inner_text() == "Pas de sous-série."
    assert page.evaluate("window.__spendcast.chart.unique_id") == leaf

    assert not errors, errors
    outside = [u for u in requests if not u.startswith(base + "/")]
    assert not outside, f"requests left localhost: {outside}"
    assert any("/static/vendor/uPlot.iife.min.js" in u for u in requests)
    page.close()


def _growth_matches_the_api(page: Any, base: str, uid: str) -> None:
    """The growth view's table and chart hold the numbers GET /v1/growth answers."""
    levels = sorted(page.evaluate("window.Spendcast.state.fanLevels"))
    api = httpx.get(
        base + "/v1/growth", params=[("unique_id", uid), *[("level", lv) for lv in levels]]
    ).json()
    shown = page.evaluate("window.__spendcast.growth")
    assert shown["unique_id"] == uid and shown["indicator"] == "yoy_pct"
    by_month = {m["ds"][:7]: m for m in api["months"]}
    adjusted = {m["ds"][:7]: m for m in api["adjusted"]["months"]}
    n_obs = sum(m["source"] == "observed" for m in api["months"])
    assert len(shown["table"]) == min(12, n_obs) + len(api["months"]) - n_obs
    for row in shown["table"]:
        m = by_month[row["month"]]
        assert row["source"] == m["source"]
        for name in ("value", "yoy_pct", "rolling_12m_growth_pct", "ytd_growth_pct"):
            assert _close(row[name], m[name]), (row["month"], name)
        assert _close(row["adjusted_mom_pct"], adjusted.get(row["month"], {}).get("mom_pct"))
        if m["source"] == "projected":
            b = next(b for b in m["intervals"]["yoy_pct"] if b["level"] == shown["level"])
            assert _close(row["lo"], b["lo"]) and _close(row["hi"], b["hi"])
    # the chart: the observed line, the projected line, and a band per level
    for k, month in enumerate(shown["months"]):
        m = by_month[month]
        line = shown["observed"] if m["source"] == "observed" else shown["projected"]
        assert _close(line[k], m["yoy_pct"])
        for lv in levels:
            band = shown["bands"][str(lv)]
            if m["source"] == "projected":
                b = next(b for b in m["intervals"]["yoy_pct"] if b["level"] == lv)
                assert _close(band["lo"][k], b["lo"]) and _close(band["hi"][k], b["hi"])
    assert page.locator("#growth-chart canvas").count() >= 1
    note = page.locator("#adjusted-note").inner_text()
    assert ("jours ouvrés français" in note) == api["adjusted"]["working_day_correction"]


def _screenshots(page: Any, which: str, view: str, lang: str) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    shot = ARTIFACTS / f"screenshot-{which}-{view}-{lang}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if which == "damir" and os.environ.get("SPENDCAST_UPDATE_SCREENSHOT") == "1":
        from PIL import Image  # a palette of 256 colours: the README's images stay small

        with Image.open(shot) as img:
            small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            small.save(DOCS / f"screenshot-{view}-{lang}.png", optimize=True)


@pytest.mark.slow
def test_growth_view_url_state_and_screenshots(base_url, browser, request):
    base = base_url
    which = request.node.callspec.params["base_url"]
    family, _ = _family(base)
    labels = {s["unique_id"]: s["label"] for s in _series(base)}
    # a shared link opens the series it names
    page, requests, errors = _open(browser, f"{base}/?series={family}")
    _ready(page, family)
    assert page.locator("#series-title").inner_text() == labels[family]

    # the toggle: growth view, in the URL; its numbers are the API's
    page.locator("#view-growth").click()
    _wait(page, "() => window.__spendcast.view === 'growth' && !!window.__spendcast.growth")
    assert _path(page) == f"/?series={family}&view=growth"
    assert page.locator("#growth-view").is_visible() and not page.locator("#chart").is_visible()
    assert page.locator("#view-growth").get_attribute("aria-pressed") == "true"
    _growth_matches_the_api(page, base, family)

    # the target growth rate -> P(annual growth > target), equal to the API's
    year = page.locator("#year").input_value()
    page.locator("#target").fill("2.5")
    _wait(page, "() => document.getElementById('annual').dataset.target === '2.5'")
    api = httpx.get(
        base + "/v1/projections/annual",
        params={"unique_id": family, "year": year, "target_growth": 2.5},
    ).json()
    g = api["growth"]
    assert g is not None and g["prob_over_target"] is not None
    shown = float(page.locator("#prob-growth").get_attribute("data-prob") or "nan")
    assert shown == pytest.approx(g["prob_over_target"], abs=1e-12)
    assert float(page.locator("#annual-growth").get_attribute("data-growth") or "nan") == (
        pytest.approx(g["growth_pct"], rel=1e-12)
    )
    assert page.locator("#growth-intervals tbody tr").count() == len(g["intervals"])

    # back and forward: the view, then the series, come back
    leaf = sorted(u for u in labels if u.startswith(family + "/"))[0]
    page.locator(f'#picker li[data-uid="{leaf}"]').click()
    _ready(page, leaf)
    assert _path(page) == f"/?series={leaf}&view=growth"
    _wait(page, "(u) => window.__spendcast.growth.unique_id === u", leaf)
    page.go_back()
    _ready(page, family)
    assert page.evaluate("window.__spendcast.view") == "growth"
    page.go_back()
    _wait(page, "() => window.__spendcast.view === 'amounts'")
    assert _path(page) == f"/?series={family}" and page.locator("#chart").is_visible()
    page.go_forward()
    _wait(page, "() => window.__spendcast.view === 'growth'")
    page.go_forward()
    _ready(page, leaf)
    assert page.locator("#series-title").inner_text() == labels[leaf]
    _growth_matches_the_api(page, base, leaf)
    assert not errors, errors
    page.close()

    # an unknown id in a link: say so, open the total
    page, _, errors = _open(browser, f"{base}/?series=total/nope")
    _ready(page, "total")
    assert "total/nope" in page.locator("#error").inner_text()
    page.close()

    # screenshots of the total: amounts and growth, French and English
    page, requests, errors = _open(browser, f"{base}/?series=total")
    _ready(page, "total")
    total = httpx.get(base + "/v1/projections/annual", params={"unique_id": "total", "year": year})
    page.locator("#budget").fill(str(int(round(total.json()["total"] * 1.01, -6))))
    page.locator("#target").fill("2")
    _wait(page, "() => document.getElementById('annual').dataset.target === '2'")
    _screenshots(page, which, "amounts", "fr")
    page.locator("#view-growth").click()
    _wait(page, "() => window.__spendcast.growth && window.__spendcast.view === 'growth'")
    _screenshots(page, which, "growth", "fr")
    page.locator("#lang-toggle").click()
    assert page.locator("#growth-table th").first.inner_text() == "Month"
    _screenshots(page, which, "growth", "en")
    page.locator("#view-amounts").click()
    _screenshots(page, which, "amounts", "en")
    assert not errors, errors
    assert not [u for u in requests if not u.startswith(base + "/")]
    page.close()


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/", 200, "text/html"),
        ("/static/app.js", 200, "text/javascript"),
        ("/static/core.js", 200, "text/javascript"),
        ("/static/charts.js", 200, "text/javascript"),
        ("/static/growth.js", 200, "text/javascript"),
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
