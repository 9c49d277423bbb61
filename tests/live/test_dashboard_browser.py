"""/dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), on both stores.

The page must render every chart with vega-embed (SVG), draw the heat layer and the zones,
reflect a filter in the URL and change the charts with it, load the filters back from a
shared URL, and make no request outside 127.0.0.1. Screenshots go where the other live
tests put theirs (the `shots` fixture).
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from gis.localtime import LOCAL
from tests.helpers import LiveServer
from tests.live.test_maps_browser import CHROMIUM, FLAGS  # noqa: F401  (the same browser setup)

CHARTS = ["weekly", "backlog", "time_to_fix", "satisfaction", "workload"]
RENDERED = "() => window.zcDashboard && window.zcDashboard.chartsRendered"
HEAT = """() => {
    let n = 0;
    for (const c of document.querySelectorAll('.leaflet-overlay-pane canvas')) {
        if (!c.width || !c.height) continue;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    }
    return n;
}"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1400, "height": 1000})
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def server(store_url, index):
    from api.app import create_app
    from zonechief.bulk import seed_demo

    app = create_app(index=index, database_url=store_url)
    seed_demo(app.state.services.reports, 2000, seed=5, now=datetime(2025, 9, 30, 12, tzinfo=LOCAL))
    with LiveServer(app) as srv:
        yield srv


class Page:
    """The dashboard opened with outside requests blocked and recorded, errors collected."""

    def __init__(self, browser, url: str):
        self.external: list[str] = []
        self.errors: list[str] = []
        self.page = page = browser.new_page()

        def guard(route):
            u = urlsplit(route.request.url)
            if u.scheme in ("data", "blob") or u.hostname == "127.0.0.1":
                return route.continue_()
            self.external.append(route.request.url)
            return route.abort()

        page.route("**/*", guard)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        # The staff-only coverage layer answers 401 to a public page, and Chromium logs every 401: that one is expected.
        page.on("console", lambda m: m.type == "error" and "status of 401" not in m.text
                and self.errors.append(f"console: {m.text}"))
        self.response = page.goto(url, wait_until="load")

    def rendered(self, at_least: int) -> None:
        self.page.wait_for_function(f"() => ({RENDERED})() >= {at_least}", timeout=30_000)

    def svg_marks(self) -> dict:
        return self.page.evaluate("""names => Object.fromEntries(names.map(n => [n,
            document.querySelectorAll('#chart-' + n + ' svg .mark-rect path, #chart-' + n + ' svg .mark-symbol path, '
                                      + '#chart-' + n + ' svg .mark-line path, #chart-' + n + ' svg .mark-rule line').length]))""",
                                  CHARTS)

    def words(self) -> str:
        return self.page.inner_text("#filter-words")

    def close(self, shots, name):
        self.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert self.external == [], self.external
        assert self.errors == [], self.errors
        self.page.close()


def _name(store_url, what):
    return ("postgis" if store_url.startswith("postgresql") else "sqlite") + "-dashboard-" + what


def test_dashboard_renders_filters_and_stays_on_the_origin(browser, server, shots, store_url):
    v = Page(browser, server.url + "/dashboard")
    assert v.response.status == 200
    v.rendered(1)
    for name in CHARTS:
        assert v.page.locator(f"#chart-{name} svg").count() == 1, name
    marks = v.svg_marks()
    assert marks["weekly"] > 10 and marks["backlog"] >= 17 and marks["workload"] >= 17, marks
    assert marks["time_to_fix"] >= 17 and marks["satisfaction"] >= 10, marks
    v.page.wait_for_function(f"() => ({HEAT})() > 100")  # the heat canvas is painted
    v.page.wait_for_function("() => document.querySelectorAll('.leaflet-overlay-pane svg path').length >= 29")
    before = v.words()
    assert "2,000" in before or "2000" in before, before

    # A filter in the page: the URL and the charts follow, without retyping anything.
    v.page.select_option("select[name=town]", "企石镇")
    v.rendered(2)
    q = parse_qs(urlsplit(v.page.url).query)
    assert q == {"town": ["企石镇"]}, v.page.url
    after = v.words()
    assert after != before and "企石镇" in after
    assert v.svg_marks()["backlog"] < marks["backlog"]  # only Qishi's chiefs
    v.page.select_option("select[name=status]", "closed")
    v.page.fill("input[name=since]", "2025-08-01")
    v.page.dispatch_event("input[name=since]", "change")
    v.page.wait_for_function("() => location.search.includes('since=2025-08-01') && location.search.includes('status=closed')")
    v.page.wait_for_function("() => window.zcDashboard.renderedQuery === location.search.slice(1)", timeout=30_000)
    assert "closed" in v.words() and "2025-08-01" in v.words()
    href = v.page.get_attribute("#exports li[data-table=chiefs] a.csv", "href")
    assert "since=2025-08-01" in href and "status=closed" in href
    shared = v.page.url

    # The hot-spot layer toggles on and draws significant cells (or none) without an error.
    v.page.check("input[name=layer-hotspots]")
    v.page.wait_for_function("() => (window.zcDashboard.layers.hotspots || {}).loaded >= 1", timeout=60_000)
    # The siting and patrol layers, present in this app: stations draw; coverage (staff only) says so, no error.
    v.page.check("input[name=layer-stations]")
    v.page.wait_for_function("() => (window.zcDashboard.layers.stations || {}).loaded >= 1", timeout=120_000)
    assert v.page.evaluate("() => window.zcDashboard.layers.stations.layer.getLayers().length") >= 1
    v.page.check("input[name=layer-patrols]")
    v.page.wait_for_function("() => (window.zcDashboard.layers.patrols || {}).notice", timeout=60_000)
    assert "staff" in v.page.inner_text("#status")
    v.close(shots, _name(store_url, "filtered"))

    # The shared URL opens the same view.
    w = Page(browser, shared)
    w.rendered(1)
    assert w.page.input_value("select[name=town]") == "企石镇"
    assert w.page.input_value("select[name=status]") == "closed"
    assert w.page.input_value("input[name=since]") == "2025-08-01"
    assert "企石镇" in w.words() and "closed" in w.words()
    w.close(shots, _name(store_url, "shared"))
