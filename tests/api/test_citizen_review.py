"""The citizen's side reviewed as an attacker and as a demanding user: each test is a problem found and fixed.

Cross-site posts (someone else's page filing reports from its visitors' addresses), control characters
PostgreSQL cannot hold, full-width digits from a Chinese keyboard, CR LF counted as the browser counts it,
a form key replayed with other content, caching and indexing of tracking links, zone names as HTML in the
map's tooltips (in Chromium), empty photos, media keys with a trailing newline. Over PostGIS, TestClient.
"""
from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from api.app import create_app
from store.media import check_key
from tests.helpers import pg_database
from zonechief.settings import Settings

TOILET = "DGCS-441900112-WC001"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def live(zone_index, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    with pg_database() as url:
        app = create_app(index=zone_index, database_url=url,
                         settings=Settings(media_dir=media, rate_limit_per_minute=0, public_url="https://zc.example.cn"))
        try:
            with TestClient(app) as client:
                yield client, app.state.services
        finally:
            app.state.services.db.engine.dispose()


def soup(r) -> BeautifulSoup:
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    return BeautifulSoup(r.text, "html.parser")


def post(client, path=f"/r/{TOILET}", headers=None, files=None, **fields):
    data = {"category": "03001", "description": "厕所门坏了", "form_key": secrets.token_urlsafe(16), **fields}
    files = files or [("photo", ("", b"", "application/octet-stream"))]  # the empty file input of a phone
    return client.post(path, data=data, files=files, headers=headers or {}, follow_redirects=False)


def token_of(r) -> str:
    assert r.status_code == 303, r.text[:1500]
    return re.fullmatch(r"/t/([0-9a-f]{32})\?filed=1", r.headers["location"]).group(1)


def resolved(client, services) -> str:
    """A filed report, resolved by staff: its token."""
    token = token_of(post(client))
    rid = services.reports.by_token(token).id
    for status in ("in_progress", "resolved"):
        services.reports.transition(rid, status, "staff:test")
    return token


def count(services) -> int:
    with services.db.engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM reports")).scalar()


# ------------------------------------------------------------------ cross-site posts
def test_a_third_party_page_cannot_post_the_forms(live):
    """A page elsewhere auto-submitting /report or /r/... would file reports from each visitor's address
    (around the per-IP limit); Sec-Fetch-Site (or Origin without it) tells such posts apart."""
    client, services = live
    before = count(services)
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        for path in (f"/r/{TOILET}", "/report"):
            r = post(client, path, headers=headers, lon="113.9", lat="22.9")
            assert r.status_code == 403, (headers, path, r.status_code)
            text = soup(r).get_text(" ", strip=True)
            assert "不能从其他网站提交" in text and "another site" in text, text
    assert count(services) == before
    token = resolved(client, services)
    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "5"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and services.reports.by_token(token).satisfaction is None
    # the page's own posts, from a browser that says so or from one that says nothing
    for headers in ({"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
                    {"Origin": "https://zc.example.cn"}, {"Origin": "null"}, {},
                    {"Origin": "https://proxy.example", "X-Forwarded-Host": "proxy.example"}):
        assert post(client, headers=headers).status_code == 303, headers
    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "5"}, follow_redirects=False,
                    headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303


# ------------------------------------------------------------------ text as phones send it
def test_control_characters_are_dropped_not_a_database_error(live):
    """PostgreSQL text cannot hold NUL: the report was refused with an English-only error page and the form lost."""
    client, services = live
    r = post(client, description="门坏了\x00\x07\x1b[0m\t第二行", name="李\x00女士")
    rep = services.reports.by_token(token_of(r))
    assert rep.description == "门坏了[0m\t第二行" and rep.reporter_name == "李女士"
    token = resolved(client, services)
    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "4", "comment": "好\x00的"}, follow_redirects=False)
    assert r.status_code == 303 and services.reports.by_token(token).rating_comment == "好的"


def test_full_width_phone_digits_from_a_chinese_keyboard(live):
    client, services = live
    r = post(client, phone="１３８－００００－００００")
    assert services.reports.by_token(token_of(r)).reporter_phone == "138-0000-0000"
    r = post(client, phone="（０７６９）２２２２ ３３３３")
    assert services.reports.by_token(token_of(r)).reporter_phone == "(0769)2222 3333"


def test_line_breaks_count_as_the_browser_counted_them(live):
    """maxlength counts a line break once; the form posts it as CR LF. 700 lines of one character fit 2000."""
    client, services = live
    text = "\r\n".join(["好"] * 700)  # 1399 characters in the textarea, 2098 as posted
    rep = services.reports.by_token(token_of(post(client, description=text)))
    assert rep.description == "\n".join(["好"] * 700)
    token = resolved(client, services)
    comment = "\r\n".join(["好"] * 400)  # 799 in the textarea (maxlength 1000)
    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "4", "comment": comment}, follow_redirects=False)
    assert r.status_code == 303 and services.reports.by_token(token).rating_comment == "\n".join(["好"] * 400)


# ------------------------------------------------------------------ the form key
def test_a_form_key_replayed_with_other_content_does_not_lead_to_the_report(live):
    """The same key with the same content is a double tap (the same receipt); with other content it must not
    hand out the first report's tracking link."""
    client, services = live
    key = secrets.token_urlsafe(16)
    first = token_of(post(client, form_key=key, description="第一份"))
    assert token_of(post(client, form_key=key, description="第一份")) == first  # the double tap
    before = count(services)
    r = post(client, form_key=key, description="别人的内容", phone="13900000000")
    assert r.status_code == 409 and first not in r.text and first not in r.headers.get("location", "")
    page = soup(r)
    assert "已经提交过" in page.get_text() and "already sent" in page.get_text()
    new_key = page.find("input", {"name": "form_key"})["value"]
    assert new_key != key and page.find("textarea", {"name": "description"}).string == "别人的内容"
    assert count(services) == before
    assert token_of(post(client, form_key=new_key, description="别人的内容")) != first  # sent again: a new report
    # a double tap on /report, by coordinates or by address, is still one report (the stored place compares equal)
    for where in ({"lon": "113.912345", "lat": "22.912345", "crs": "gcj02"}, {"address": "樟木头镇 圩镇社区"}):
        key = secrets.token_urlsafe(16)
        first = token_of(post(client, "/report", form_key=key, phone="１３８ ０００", **where))
        assert token_of(post(client, "/report", form_key=key, phone="１３８ ０００", **where)) == first


# ------------------------------------------------------------------ tracking links: caches and crawlers
def test_tracking_links_are_not_cached_or_indexed(live):
    client, services = live
    token = token_of(post(client, files=[("photo", ("a.png", _png(), "image/png"))]))
    r = client.get(f"/v1/track/{token}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    r = client.get(f"/t/{token}")
    assert r.headers["cache-control"] == "no-store" and "noindex" in r.headers["x-robots-tag"]
    url = json.loads(client.get(f"/v1/track/{token}").text)["photos"][0]["url"]
    r = client.get(url)
    assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
    assert "noindex" in r.headers["x-robots-tag"]


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 90, 0)).save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ photos
def test_an_empty_named_photo_says_so(live):
    """A named 0-byte file (a photo the phone failed to read) is refused as empty, not as 'not an image'."""
    client, _ = live
    r = post(client, files=[("photo", ("IMG_0001.HEIC", b"", "image/heic"))])
    assert r.status_code == 422
    err = soup(r).find(id="err-photo").get_text()
    assert "IMG_0001.HEIC" in err and "空" in err and "empty" in err


def test_media_keys_with_a_trailing_newline_are_refused():
    with pytest.raises(ValueError):
        check_key("a" * 64 + "\n")
    assert check_key("a" * 64) == "a" * 64


# ------------------------------------------------------------------ the map in a browser
def test_zone_names_are_text_in_the_maps_tooltips(live):
    """Leaflet's bindTooltip takes a string as HTML: a zone name from uploaded boundaries must stay text.
    The page runs in Chromium, every request answered by the app (TestClient) through Playwright's routing."""
    client, _ = live
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    evil = "<img src=x id=pwned>片区"
    zones = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": evil, "zone_id": "X"},
             "geometry": {"type": "Polygon", "coordinates": [[[113.9, 22.9], [114.0, 22.9], [114.0, 23.0], [113.9, 22.9]]]}}]}

    def handle(route):
        u = route.request.url.replace("http://zc.test", "")
        if u.startswith("/v1/zones"):
            return route.fulfill(status=200, content_type="application/geo+json", body=json.dumps(zones))
        r = client.get(u)
        route.fulfill(status=r.status_code, headers={k: v for k, v in r.headers.items() if k != "content-length"},
                      body=r.content)

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = b.new_page()
            page.route("**/*", handle)
            page.goto("http://zc.test/report")
            page.wait_for_selector(".leaflet-overlay-pane path", state="attached", timeout=10_000)
            for _ in range(4):  # zoomed in, the names show
                page.click(".leaflet-control-zoom-in")
                page.wait_for_timeout(300)
            assert page.locator("#pwned").count() == 0
            tips = page.locator(".leaflet-tooltip").all_text_contents()
            assert evil in tips, tips
        finally:
            b.close()


def test_a_body_over_the_limit_is_a_page_on_the_citizens_paths(tmp_path, zone_index):
    """Four phone photos without JavaScript pass the size the body limit allows: a bilingual page, not raw JSON."""
    app = create_app(index=zone_index, database_url=f"sqlite:///{tmp_path / 'z.sqlite'}",
                     settings=Settings(media_dir=tmp_path, rate_limit_per_minute=0, max_photo_bytes=2048, max_photos=1))
    with TestClient(app) as client:
        r = post(client, files=[("photo", ("a.jpg", b"x" * 400_000, "image/jpeg"))])
        assert r.status_code == 413 and "内容太大" in soup(r).get_text() and r.headers["connection"] == "close"
        r = client.post("/v1/reports", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"  # the API's stays


def test_an_unknown_code_is_not_echoed_unless_it_looks_like_one(live):
    """/r/{anything} is a link on the city's own site: a crafted one must not put its words on the page."""
    client, _ = live
    bait = "请立即拨打客服电话4001234567领取补贴"
    r = client.get(f"/r/{bait}")
    assert r.status_code == 404 and "4001234567" not in r.text and "没有找到" in soup(r).get_text()
    r = client.get("/r/DGCS-NOPE-404")
    assert r.status_code == 404 and "DGCS-NOPE-404" in soup(r).get_text()


def test_photos_are_decoded_a_few_at_a_time():
    """A 100 KB flat PNG can claim 49 MP (~150 MB decoded): a burst of uploads must queue, not decode all at once."""
    import io
    import threading

    from PIL import Image

    from zonechief import photos

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buf, "PNG")
    held = [photos.DECODES.acquire(timeout=5) for _ in range(photos.DECODE_SLOTS)]  # every slot taken
    assert all(held)
    done = threading.Event()
    t = threading.Thread(target=lambda: (photos.process_photo(buf.getvalue(), 1 << 20), done.set()), daemon=True)
    try:
        t.start()
        assert not done.wait(0.5), "a photo was decoded while every slot was taken"
        photos.DECODES.release()
        held.pop()
        assert done.wait(10)
    finally:
        for _ in held:
            photos.DECODES.release()
