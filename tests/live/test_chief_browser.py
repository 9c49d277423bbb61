"""The chief's page in a real headless Chromium (Playwright) emulating a phone, on a real uvicorn server over PostGIS.

The chief signs in with a staff key and sees the queue on an offline map of the zone; a report filed through
POST /v1/reports (by the test, as a citizen's phone would) appears in the open page without reloading (the
event stream), with a buzz; the chief accepts it, resolves it with a note and a photo, and the citizen's
tracking page shows the resolution. No request leaves the origin. Screenshots go to the test's tmp dir
(or $ZONECHIEF_SCREENSHOTS).
"""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers import LiveServer, inner, pg_database
from tests.live.test_citizen_browser import CHROMIUM, FLAGS, Phone

CHIEF, ZONE = "ZMT-C01", "ZMT-01"
# Counts the page's buzzes and beeps (an init script, outside the page's CSP like a browser extension).
SPY = """
window.__buzz = 0; window.__beeps = 0;
navigator.vibrate = function () { window.__buzz += 1; return true; };
if (window.AudioContext) {
  var make = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () { window.__beeps += 1; return make.call(this); };
}
"""
ITEMS = "#queue li.item"


@pytest.fixture(scope="module")
def server(tmp_path_factory, zone_index):
    from api.app import create_app
    from store.keys import create_key
    from zonechief.settings import Settings

    with pg_database() as url:
        app = create_app(index=zone_index, database_url=url,
                         settings=Settings(media_dir=tmp_path_factory.mktemp("media"), rate_limit_per_minute=0))
        services = app.state.services
        with services.db.sessions.begin() as s:
            key = create_key(s, "staff", "片长 ZMT-01 的手机", chief_id=CHIEF)[1]
        try:
            with LiveServer(app) as srv:
                services.settings.public_url = srv.url
                yield srv, services, key
        finally:
            services.db.engine.dispose()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/test.sh installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=FLAGS + ["--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "处理后.jpg"
    Image.effect_noise((1000, 750), 50).convert("RGB").save(path, "JPEG", quality=85)
    return path


def file_report(srv, zone_index, text: str) -> dict:
    lon, lat = inner(zone_index, ZONE)
    r = httpx.post(f"{srv.url}/v1/reports", json={
        "source": "gps", "category": "06010", "description": text, "location": {"lon": lon, "lat": lat},
        "reporter": {"name": "陈女士", "phone": "13900000000"}}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def loaded_width(img) -> int:
    """The natural width of a (lazy) image once it has loaded."""
    img.scroll_into_view_if_needed()
    img.evaluate("i => i.decode()")
    return img.evaluate("i => i.complete && i.naturalWidth")


def test_the_chief_sees_a_new_report_live_and_resolves_it(server, chromium, zone_index, photo, shots):
    srv, services, key = server
    before = file_report(srv, zone_index, "早上的问题")  # already in the queue when the page opens
    phone = Phone(chromium, srv.url, permissions=[])
    page = phone.page
    phone.ctx.add_init_script(SPY)
    page.goto(f"{srv.url}/chief")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_url(f"{srv.url}/chief")
    assert page.locator(ITEMS).count() == 1 and page.locator(ITEMS).first.get_attribute("data-id") == str(before["id"])
    page.wait_for_function("() => document.getElementById('live').textContent.includes('实时更新中')")
    page.wait_for_function("() => document.querySelectorAll('.leaflet-overlay-pane svg path').length >= 2")  # zone + report
    cookie = next(c for c in phone.ctx.cookies() if c["name"] == "zc_staff")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != key
    assert key not in page.content()
    page.locator("h1").click()  # a tap: the browser lets the page make sound after one
    page.screenshot(path=str(shots / "chief-queue.png"), full_page=True)

    t0 = time.monotonic()
    new = file_report(srv, zone_index, "新问题：井盖缺失")
    page.wait_for_selector(f"{ITEMS}[data-id='{new['id']}']", timeout=2500)
    seen_s = time.monotonic() - t0
    assert page.locator(ITEMS).count() == 2 and page.locator("#count").inner_text() == "2"
    assert "井盖缺失" in page.locator("#fresh").inner_text()
    assert page.evaluate("window.__buzz") == 1
    assert page.evaluate("window.__beeps") == 1
    page.screenshot(path=str(shots / "chief-queue-live.png"), full_page=True)
    print(f"new report on the chief's page after {seen_s:.2f} s")

    page.click(f"{ITEMS}[data-id='{new['id']}'] a")
    page.wait_for_url(f"{srv.url}/chief/reports/{new['id']}")
    assert page.locator("#contact a.tel").get_attribute("href") == "tel:13900000000"
    page.click("#to-in_progress")
    page.wait_for_url(f"{srv.url}/chief/reports/{new['id']}?done=in_progress")
    page.fill("#note", "已补装井盖")
    page.set_input_files("#photo", str(photo))
    assert page.locator("#previews img").count() == 1
    page.screenshot(path=str(shots / "chief-report-resolve.png"), full_page=True)
    page.click("#send")
    page.wait_for_url(f"{srv.url}/chief/reports/{new['id']}?done=resolved")
    assert "已解决" in page.locator("#status").inner_text()
    assert loaded_width(page.locator(".photo-resolution img")) == 1000
    rep = services.reports.get(new["id"])
    assert rep.status == "resolved" and rep.history[-1].note == "已补装井盖" and [m.kind for m in rep.media] == ["resolution"]

    citizen = chromium.new_context()
    cpage = citizen.new_page()
    cpage.goto(new["tracking_url"])
    assert "已补装井盖" in cpage.locator("section.resolution").inner_text()
    assert loaded_width(cpage.locator("section.resolution img")) == 1000
    citizen.close()

    page.goto(f"{srv.url}/chief")  # resolved: off the queue
    assert [page.locator(ITEMS).nth(i).get_attribute("data-id") for i in range(page.locator(ITEMS).count())] == [
        str(before["id"])]
    assert phone.off_origin() == [] and phone.errors == []
    phone.close()


def test_sign_out_ends_the_stream_and_the_page(server, chromium):
    srv, services, key = server
    phone = Phone(chromium, srv.url)
    page = phone.page
    page.goto(f"{srv.url}/chief")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_function("() => document.getElementById('live').textContent.includes('实时更新中')")
    page.click("#sign-out")
    page.wait_for_selector("#key")
    r = page.request.get(f"{srv.url}/v1/chiefs/{CHIEF}/events")
    assert r.status == 401
    assert phone.off_origin() == [] and phone.errors == []
    phone.close()
