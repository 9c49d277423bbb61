"""The citizen's pages in a real headless Chromium (Debian's /usr/bin/chromium, Playwright) emulating a phone
in WeChat's browser: 390×844, touch, a MicroMessenger user agent, on a real uvicorn server over PostGIS.

(a) without JavaScript a report is filed from the QR page with a real JPEG; (b) with it, the category
search filters the list; (c) /report shows the zone and chief of the phone's position before sending, and
says so when it is outside every zone; (d) no page asks anything of another origin. Screenshots go to the
test's tmp dir (or $ZONECHIEF_SCREENSHOTS).
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.helpers import LiveServer, inner, pg_database

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MMWEBID/2247 "
             "MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "user_agent": WECHAT_UA, "locale": "zh-CN"}
TOILET = "DGCS-441900112-WC001"
MAX_PHOTO = 4 * 1_048_576
PATHS = "() => document.querySelectorAll('.leaflet-overlay-pane svg path').length"


@pytest.fixture(scope="module")
def server(tmp_path_factory, zone_index):
    from api.app import create_app
    from zonechief.settings import Settings

    media = tmp_path_factory.mktemp("media")
    with pg_database() as url:
        app = create_app(index=zone_index, database_url=url, settings=Settings(media_dir=media, rate_limit_per_minute=0,
                                                                             max_photo_bytes=MAX_PHOTO))
        services = app.state.services
        try:
            with LiveServer(app) as srv:
                services.settings.public_url = srv.url  # the receipt's link must lead back here
                yield srv, services
        finally:
            services.db.engine.dispose()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/test.sh installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "厕所.jpg"
    Image.effect_noise((1200, 900), 60).convert("RGB").save(path, "JPEG", quality=85)
    return path


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "big.jpg"
    Image.effect_noise((4000, 3000), 40).convert("RGB").save(path, "JPEG", quality=92)
    assert path.stat().st_size > MAX_PHOTO
    return path


class Phone:
    """A browser context like a phone in WeChat; records every request and every script error."""

    def __init__(self, chromium, server_url: str, **options):
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.ctx = chromium.new_context(**PHONE, **options)
        origin = urlsplit(server_url).netloc

        def guard(route):  # anything off the server's origin is blocked, and recorded below
            u = urlsplit(route.request.url)
            return route.continue_() if u.netloc == origin or u.scheme in ("data", "blob") else route.abort()

        self.ctx.route("**/*", guard)
        self.ctx.on("request", lambda r: self.requests.append(r.url))
        self.page = self.ctx.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.origin = origin

    def off_origin(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != self.origin]

    def close(self):
        self.ctx.close()


def test_without_javascript_a_report_is_filed_from_the_qr_page(server, chromium, photo, shots):
    srv, services = server
    phone = Phone(chromium, srv.url, java_script_enabled=False)
    page = phone.page
    page.goto(f"{srv.url}/r/{TOILET}")
    assert page.locator("h1").inner_text() == "樟木头公厕 01"
    assert not page.locator("#category-search").is_visible()  # the search box needs JavaScript
    page.select_option("#category", "03001")
    page.fill("#description", "男厕门锁坏了")
    page.set_input_files("#photo", str(photo))
    page.fill("#phone", "13800000000")
    page.screenshot(path=str(shots / "citizen-code-form-nojs.png"), full_page=True)
    page.click("#send")
    page.wait_for_url(re.compile(r"/t/[0-9a-f]+\?filed=1$"))
    assert "已收到" in page.locator("section.received").inner_text()
    link = page.locator("#tracking-link")
    token = re.search(r"/t/([0-9a-f]+)", page.url).group(1)
    assert link.inner_text() == f"{srv.url}/t/{token}"
    page.screenshot(path=str(shots / "citizen-receipt-nojs.png"), full_page=True)
    rep = services.reports.by_token(token)
    assert rep.zone_id == "ZMT-01" and rep.chief_id and rep.category == "03001" and rep.description == "男厕门锁坏了"
    assert len(rep.media) == 1 and rep.media[0].content_type == "image/jpeg"
    assert page.locator(".photos img").evaluate("img => img.complete && img.naturalWidth") == rep.media[0].width
    link.click()  # the kept link opens the tracking page
    page.wait_for_url(f"{srv.url}/t/{token}")
    assert "已派给片长" in page.locator("#status").inner_text()
    assert phone.off_origin() == [] and phone.errors == []
    phone.close()


def test_with_javascript_the_category_search_filters(server, chromium, shots):
    srv, _ = server
    phone = Phone(chromium, srv.url)
    page = phone.page
    page.goto(f"{srv.url}/r/{TOILET}")
    search = page.locator("#category-search")
    assert search.is_visible()
    every = page.locator("#category option").count()
    search.fill("垃圾")
    texts = page.locator("#category option").all_inner_texts()
    assert 1 < len(texts) < every and all("垃圾" in t for t in texts[1:])  # [0] is the "choose" line
    assert page.locator("#category optgroup").first.get_attribute("label") == "常见问题 / Common"
    search.fill("03002")  # by code: one category left, chosen
    assert page.locator("#category").input_value() == "03002"
    search.fill("")
    assert page.locator("#category option").count() == every and page.locator("#category").input_value() == "03002"
    page.screenshot(path=str(shots / "citizen-code-form-js.png"), full_page=True)
    assert phone.off_origin() == [] and phone.errors == []
    phone.close()


def test_with_javascript_a_photo_over_the_limit_is_shrunk_before_sending(server, chromium, big_photo):
    srv, services = server
    phone = Phone(chromium, srv.url)
    page = phone.page
    page.goto(f"{srv.url}/r/{TOILET}")
    page.select_option("#category", "03001")
    page.set_input_files("#photo", str(big_photo))
    page.wait_for_function(f"() => document.getElementById('photo').files[0].size < {MAX_PHOTO}")
    assert page.locator("#previews img").count() == 1
    page.click("#send")
    page.wait_for_url(re.compile(r"/t/[0-9a-f]+\?filed=1$"))
    rep = services.reports.by_token(re.search(r"/t/([0-9a-f]+)", page.url).group(1))
    assert [(m.width, m.height) for m in rep.media] == [(2048, 1536)]
    assert phone.off_origin() == [] and phone.errors == []
    phone.close()


def test_report_anywhere_shows_the_zone_and_chief_before_sending(server, chromium, zone_index, shots):
    srv, services = server
    lon, lat = inner(zone_index, "QS-04")
    phone = Phone(chromium, srv.url, geolocation={"longitude": 113.2, "latitude": 22.2}, permissions=["geolocation"])
    page = phone.page
    page.goto(f"{srv.url}/report")
    page.wait_for_function(f"() => ({PATHS})() >= {len(zone_index.zones)}")  # the zones, drawn offline
    answer = page.locator("#where-answer")
    page.click("#locate")  # first far away: said plainly
    page.wait_for_function("() => document.getElementById('where-answer').textContent.includes('不在任何片区内')")
    assert "outside every zone" in answer.inner_text()
    phone.ctx.set_geolocation({"longitude": lon, "latitude": lat})
    page.click("#locate")
    page.wait_for_function("() => document.getElementById('where-answer').textContent.includes('QS-04')")
    chief = services.index.roster.chiefs_by_zone()["QS-04"]
    assert f"片长 {chief.name}" in answer.inner_text() and answer.locator("a.tel").get_attribute("href") == f"tel:{chief.phone}"
    page.screenshot(path=str(shots / "citizen-report-map.png"), full_page=True)
    page.select_option("#category", "06010")
    page.fill("#description", "路边暴露垃圾")
    page.click("#send")
    page.wait_for_url(re.compile(r"/t/[0-9a-f]+\?filed=1$"))
    rep = services.reports.by_token(re.search(r"/t/([0-9a-f]+)", page.url).group(1))
    assert rep.source == "gps" and rep.zone_id == "QS-04" and rep.chief_id == chief.person_id
    assert abs(rep.geom.x - lon) < 1e-6 and abs(rep.geom.y - lat) < 1e-6
    assert phone.off_origin() == [] and phone.errors == []
    assert any("/v1/lookup?" in u for u in phone.requests) and any(u.endswith("/v1/zones") for u in phone.requests)
    phone.close()
