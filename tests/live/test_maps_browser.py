"""The map pages in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Every request to a host other than 127.0.0.1 is blocked and recorded; the pages
must make none (base map "none"). Each page is checked in the DOM: zone polygons
are SVG paths in the overlay pane, the heat layer is a canvas with painted
pixels. Screenshots go to the test's tmp dir (or $ZONECHIEF_SCREENSHOTS).
The standalone export is opened from disk with the browser offline.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import LiveServer

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
ZONECHIEF = Path(sys.executable).parent / "zonechief"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
N_ZONES = 29

PAINTED = """() => {
    let n = 0;
    for (const c of document.querySelectorAll('.leaflet-overlay-pane canvas')) {
        if (!c.width || !c.height) continue;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    }
    return n;
}"""
PATHS = "() => document.querySelectorAll('.leaflet-overlay-pane svg path').length"
THE_MAP = "Object.values(window).find(v => v instanceof L.Map)"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/test.sh installs it)"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        # --user-data-dir is how Playwright takes a profile: a persistent context; it never downloads a browser here.
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


class Visit:
    """One page load with external requests blocked and recorded, and errors collected."""

    def __init__(self, browser, url: str, is_map: bool = True):
        self.external: list[str] = []
        self.errors: list[str] = []
        self.page = page = browser.new_page()

        def guard(route):
            u = urlsplit(route.request.url)
            if u.scheme in ("file", "data", "blob") or u.hostname == "127.0.0.1":
                return route.continue_()
            self.external.append(route.request.url)
            return route.abort()

        page.route("**/*", guard)
        page.on("request", lambda r: urlsplit(r.url).scheme not in ("file", "data", "blob")
                and urlsplit(r.url).hostname != "127.0.0.1" and self.external.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.response = page.goto(url, wait_until="load")
        if is_map:
            page.wait_for_function(f"() => window.L !== undefined && {THE_MAP} !== undefined")

    def paths_at_least(self, n: int) -> int:
        self.page.wait_for_function(f"() => ({PATHS})() >= {n}")
        return self.page.evaluate(PATHS)

    def painted(self, at_least: int = 1) -> int:
        if at_least:
            self.page.wait_for_function(f"() => ({PAINTED})() >= {at_least}")
        return self.page.evaluate(PAINTED)

    def legend(self) -> str:
        return self.page.inner_text(".zc-legend")

    def finish(self, shots: Path, name: str):
        self.page.wait_for_timeout(300)  # let the last frame paint before the picture (not an assertion)
        self.page.screenshot(path=str(shots / f"{name}.png"))
        assert self.external == [], self.external
        assert self.errors == [], self.errors
        self.page.close()


@pytest.fixture(scope="module")
def server(store_url):
    from api.app import create_app

    app = create_app(database_url=store_url)
    with LiveServer(app) as srv:
        yield srv, app.state.services


def _name(store_url, page):
    return ("postgis" if store_url.startswith("postgresql") else "sqlite") + "-" + page


# ------------------------------------------------------------------ empty store
def test_pages_with_an_empty_store(browser, server, shots, store_url):
    srv, _ = server
    v = Visit(browser, srv.url + "/", is_map=False)
    assert v.page.locator("a[href='maps/zones']").count() == 1
    v.finish(shots, _name(store_url, "index"))

    v = Visit(browser, srv.url + "/maps/zones")
    assert v.response.status == 200
    assert v.paths_at_least(N_ZONES) >= N_ZONES + 20  # zones and the 20 facilities
    assert "片长" in v.legend() and "illustrative" in v.legend()
    v.finish(shots, _name(store_url, "empty-zones"))

    for path, name in (("/maps/heatmap", "empty-heatmap"), ("/maps/heatmap?by=week", "empty-heatmap-week")):
        v = Visit(browser, srv.url + path)
        assert v.paths_at_least(N_ZONES) >= N_ZONES
        assert "0 条报告" in v.legend()
        assert v.painted(at_least=0) == 0
        v.finish(shots, _name(store_url, name))

    v = Visit(browser, srv.url + "/maps/hotspots")
    assert v.paths_at_least(N_ZONES) >= N_ZONES
    assert "Not significant" in v.legend()
    v.finish(shots, _name(store_url, "empty-hotspots"))


# ------------------------------------------------------------------ seeded store
@pytest.fixture(scope="module")
def seeded(server):
    from zonechief.bulk import seed_demo
    from zonechief.reports import Location, ReportIn

    srv, svc = server
    seed_demo(svc.reports, 3000, seed=2, now=datetime.fromisoformat("2025-09-30T12:00:00+08:00"))
    r, _ = svc.reports.create(ReportIn(source="gps", category="06010", description=XSS,
                                       location=Location(lon=114.1225, lat=22.9615)))
    # The first hot-spot map with reports in a process compiles esda's numba kernels (about 30 s here). Done
    # now, so that the browser's 30 s navigation timeout times the page and not the compiler: this module no
    # longer runs after tests/test_hotspots.py, which used to warm them up.
    import httpx

    httpx.get(srv.url + "/maps/hotspots", timeout=300).raise_for_status()
    return srv, svc, r.id


def test_pages_with_reports(browser, seeded, shots, store_url):
    srv, svc, xss_id = seeded
    v = Visit(browser, srv.url + "/maps/zones")
    v.paths_at_least(N_ZONES)
    text = v.page.evaluate(f"""() => {{
        const map = {THE_MAP};
        let target;
        map.eachLayer(l => {{ if (l.feature && l.feature.properties.zone_id === 'QS-15') target = l; }});
        target.openPopup();
        return document.querySelector('.leaflet-popup-content').innerText;
    }}""")
    for words in ("QS-15", "片长", "Zone chief", "巡查员", "Patrol inspectors", "企石村", "illustrative"):
        assert words in text, words
    v.finish(shots, _name(store_url, "zones-popup"))

    v = Visit(browser, srv.url + "/maps/heatmap")
    v.paths_at_least(N_ZONES)
    assert v.painted(at_least=2000) >= 2000
    assert "3,001 条报告" in v.legend()
    # The latest-reports layer: the hostile description is shown as text and runs nothing.
    v.page.get_by_text("最新报告").click()
    got = v.page.evaluate(f"""(id) => {{
        const map = {THE_MAP};
        let target;
        map.eachLayer(l => {{ if (l.feature && l.feature.properties.popup && l.feature.properties.popup.includes('#' + id + '<')) target = l; }});
        target.openPopup();
        const el = document.querySelector('.leaflet-popup-content');
        return {{text: el.innerText, tags: el.querySelectorAll('img, script').length, pwned: window.__pwned === undefined ? null : window.__pwned}};
    }}""", xss_id)
    assert XSS in got["text"]
    assert got["tags"] == 0 and got["pwned"] is None
    v.finish(shots, _name(store_url, "heatmap"))

    v = Visit(browser, srv.url + "/maps/heatmap?by=month")
    v.paths_at_least(N_ZONES)
    assert v.painted(at_least=500) >= 500
    assert re.fullmatch(r"\d{4}-\d{2}", v.page.inner_text(".timecontrol-date").strip())  # the month player
    v.finish(shots, _name(store_url, "heatmap-month"))

    v = Visit(browser, srv.url + "/maps/hotspots?cell_m=500")
    n = v.paths_at_least(N_ZONES + 100)
    text = v.page.evaluate(f"""() => {{
        const map = {THE_MAP};
        let target;
        map.eachLayer(l => {{ if (l.feature && l.feature.properties.c && l.feature.properties.c.startsWith('hot')) target = l; }});
        target.openPopup();
        return document.querySelector('.leaflet-popup-content').innerText;
    }}""")
    assert "Gi* z-score" in text and "Hot spot" in text
    assert n > N_ZONES + 100
    v.finish(shots, _name(store_url, "hotspots"))


def test_standalone_file_renders_from_disk_offline(browser, seeded, shots, store_url, tmp_path):
    env = {**os.environ, "ZONECHIEF_DATABASE_URL": store_url}
    files = {}
    for kind, extra in (("zones", []), ("heatmap", []), ("heatmap", ["--by", "week"])):
        out = tmp_path / f"{kind}{'-'.join(extra)}.html"
        r = subprocess.run([str(ZONECHIEF), "map", kind, "--out", str(out), "--standalone", *extra],
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / "zonechief_static").exists()
        files[out.stem] = out
    browser.set_offline(True)
    try:
        v = Visit(browser, files["zones"].as_uri())
        assert v.paths_at_least(N_ZONES) >= N_ZONES + 20
        v.finish(shots, _name(store_url, "standalone-zones"))
        v = Visit(browser, files["heatmap"].as_uri())
        v.paths_at_least(N_ZONES)
        assert v.painted(at_least=2000) >= 2000
        v.finish(shots, _name(store_url, "standalone-heatmap"))
        v = Visit(browser, files["heatmap--by-week"].as_uri())
        v.paths_at_least(N_ZONES)
        assert v.painted(at_least=100) >= 100
        v.finish(shots, _name(store_url, "standalone-heatmap-week"))
    finally:
        browser.set_offline(False)
