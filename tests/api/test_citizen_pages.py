"""The citizen's pages over HTTP (TestClient): /r/{code}, /report, /t/{token}, and their error pages.

Forms are posted as a browser without JavaScript posts them (multipart, the fields the HTML has),
on both stores (SQLite file and PostGIS). Pages are read with BeautifulSoup (a dependency of libpysal).
"""
from __future__ import annotations

import io
import re
import secrets
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from gis.categories import categories_for_kind, load_categories, load_facility_categories
from tests.helpers import inner
from zonechief.qr import report_url
from zonechief.settings import Settings

TOILET = "DGCS-441900112-WC001"  # 樟木头公厕 01, zone ZMT-01
MAX_PHOTO = 65_536  # bytes: small, so an oversized photo is cheap to make


def jpeg(w=320, h=240, noise=False) -> bytes:
    im = Image.effect_noise((w, h), 120).convert("RGB") if noise else Image.new("RGB", (w, h), (180, 40, 40))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def live(store_url, zone_index, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    app = create_app(index=zone_index, database_url=store_url,
                     settings=Settings(media_dir=media, rate_limit_per_minute=0, max_photo_bytes=MAX_PHOTO,
                                       public_url="https://zc.example.cn"))
    with TestClient(app) as client:
        yield client, app.state.services, store_url


def soup(r) -> BeautifulSoup:
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    return BeautifulSoup(r.text, "html.parser")


def form_key(client, path=f"/r/{TOILET}") -> str:
    return soup(client.get(path)).find("input", {"name": "form_key"})["value"]


def post_code(client, code=TOILET, photos=(), follow=False, **fields):
    data = {"category": "03001", "description": "厕所门坏了", "form_key": secrets.token_urlsafe(16), **fields}
    files = [("photo", p) for p in photos] or [("photo", ("", b"", "application/octet-stream"))]  # an empty file input
    return client.post(f"/r/{code}", data={k: v for k, v in data.items() if v is not None}, files=files,
                       follow_redirects=follow)


def token_of(r) -> str:
    assert r.status_code == 303, r.text[:2000]
    m = re.fullmatch(r"/t/([0-9a-f]+)\?filed=1", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def count(url: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM reports")).scalar()
    finally:
        eng.dispose()


def field_error(page: BeautifulSoup, name: str) -> str:
    e = page.find(id=f"err-{name}")
    return e.get_text(" ", strip=True) if e else ""


# ------------------------------------------------------------------ categories
def test_categories_for_kind_puts_the_kinds_codes_first_in_rank_order():
    cats = load_categories()
    common = load_facility_categories()
    assert set(common["code"]) <= set(cats["code"]), "facility_categories.csv names codes that are not in categories.csv"
    for kind in ("public_toilet", "chengguan_station", "community_service_station"):
        out = categories_for_kind(kind, cats)
        ranked = list(common.loc[common.kind == kind].sort_values("rank")["code"])
        assert list(out["code"][: len(ranked)]) == ranked and out["common"].sum() == len(ranked)
        assert sorted(out["code"]) == sorted(cats["code"])  # nothing lost, nothing twice
    assert list(categories_for_kind("public_toilet", cats)["code"][:2]) == ["03001", "03002"]
    assert not categories_for_kind("unknown kind", cats)["common"].any()


# ------------------------------------------------------------------ the form
def test_code_form_shows_the_facility_and_lists_its_categories_first(live):
    client, services, _ = live
    r = client.get(f"/r/{TOILET}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = soup(r)
    assert page.html["lang"] == "zh-CN" and page.find("meta", {"name": "viewport"})
    text = page.get_text(" ", strip=True)
    chief = services.index.roster.chiefs_by_zone()["ZMT-01"]
    assert "樟木头公厕 01" in text and "公共厕所" in text and "ZMT-01" in text and f"片长 {chief.name}" in text
    assert page.find("a", href=f"tel:{chief.phone}")
    select = page.find("select", {"name": "category"})
    assert select.has_attr("required")
    groups = select.find_all("optgroup")
    assert groups[0]["label"] == "常见问题 / Common"
    assert [o["value"] for o in groups[0].find_all("option")][:3] == ["03001", "03002", "06010"]
    catalogue = {o["value"] for g in groups[1:] for o in g.find_all("option")}
    assert catalogue == set(services.categories["code"])  # then the whole catalogue, by major category
    assert [g["label"] for g in groups[1:]][:2] == ["市政公用设施类", "交通设施类"]
    photo = page.find("input", {"type": "file"})
    assert photo["name"] == "photo" and photo["accept"] == "image/*" and photo.has_attr("multiple")
    assert form_key(client) != form_key(client)  # a new key each time the form is drawn
    assert not page.find("script", src=False)  # no inline script (CSP)


def test_every_qr_link_opens_its_facilitys_form(live):
    client, services, _ = live
    for code, name in zip(services.facilities.service_code, services.facilities.name):
        path = urlsplit(report_url("https://zc.example.cn", code)).path
        r = client.get(path)
        assert r.status_code == 200 and soup(r).find("h1").get_text() == name
        assert soup(r).find("form")["action"] == path
    assert client.get("/r/dgcs 441900112 wc001").status_code == 200  # as typed from the sign: case and spaces do not matter


def test_unknown_code_is_a_friendly_404_with_a_link_to_report(live):
    client, _, _ = live
    for r in (client.get("/r/DGCS-NOPE-404"), post_code(client, code="DGCS-NOPE-404")):
        assert r.status_code == 404
        page = soup(r)
        text = page.get_text(" ", strip=True)
        assert "没有找到" in text and "Not found" in text and "DGCS-NOPE-404" in text
        assert page.find("a", href="/report")
        assert "Traceback" not in r.text
    r = client.get("/v1/track/" + "0" * 32)  # the JSON faces keep problem+json
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------------------ filing
def test_a_form_without_javascript_files_a_report_with_zone_chief_and_photo(live):
    client, services, _ = live
    r = post_code(client, photos=[("门.jpg", jpeg(), "image/jpeg")], phone="138 0000 0000", name="李女士")
    token = token_of(r)
    rep = services.reports.by_token(token)
    assert rep.source == "service_code" and rep.category == "03001" and rep.description == "厕所门坏了"
    assert rep.zone_id == "ZMT-01" and rep.chief_id == services.index.roster.chiefs_by_zone()["ZMT-01"].person_id
    assert rep.status == "assigned" and rep.reporter_phone == "138 0000 0000" and rep.reporter_name == "李女士"
    assert len(rep.media) == 1 and rep.media[0].kind == "citizen" and (rep.media[0].width, rep.media[0].height) == (320, 240)
    receipt = client.get(r.headers["location"])
    page = soup(receipt)
    text = page.get_text(" ", strip=True)
    assert "已收到" in text and "Received" in text and "保存此链接" in text
    assert page.find("a", href=f"https://zc.example.cn/t/{token}")  # the full link, from public_url
    img = page.select_one(".photos img")
    assert img["src"] == f"/t/{token}/photos/{rep.media[0].id}"
    got = client.get(img["src"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"


def test_the_same_form_key_twice_files_one_report(live):
    client, _, url = live
    key = form_key(client)
    before = count(url)
    first = token_of(post_code(client, form_key=key))
    again = token_of(post_code(client, form_key=key))  # a double tap: the same form twice
    assert first == again and count(url) == before + 1


def test_missing_category_draws_the_form_again_with_the_values_kept(live):
    client, _, url = live
    before = count(url)
    r = post_code(client, category=None, description="洗手池漏水 <b>urgent</b>", phone="13800000000")
    assert r.status_code == 422
    page = soup(r)
    assert "请选择问题类型" in field_error(page, "category")
    assert page.find("textarea", {"name": "description"}).string == "洗手池漏水 <b>urgent</b>"  # kept, and escaped
    assert page.find("input", {"name": "phone"})["value"] == "13800000000"
    assert page.find("select", {"name": "category"})["aria-invalid"] == "true"
    assert count(url) == before


def test_bad_phone_and_unknown_category(live):
    client, _, _ = live
    page = soup(r := post_code(client, phone="call me maybe", category="06010"))
    assert r.status_code == 422 and "电话号码" in field_error(page, "phone")
    assert page.find("option", selected=True)["value"] == "06010"  # the choice is kept, selected once
    assert len(page.find_all("option", selected=True)) == 1
    page = soup(r := post_code(client, category="99999"))
    assert r.status_code == 422 and "99999" in field_error(page, "category")


def test_photos_refused_draw_the_form_again(live):
    client, _, url = live
    before = count(url)
    r = post_code(client, photos=[("x.jpg", b"this is text, not a photo", "image/jpeg")], category="06010")
    assert r.status_code == 415
    page = soup(r)
    assert "x.jpg" in field_error(page, "photo") and "请重新选择照片" in page.get_text()
    assert page.find("option", selected=True)["value"] == "06010"
    big = jpeg(600, 600, noise=True)
    assert len(big) > MAX_PHOTO
    r = post_code(client, photos=[("big.jpg", big, "image/jpeg")])
    assert r.status_code == 413 and "big.jpg" in field_error(soup(r), "photo")
    r = post_code(client, photos=[(f"{i}.jpg", jpeg(), "image/jpeg") for i in range(4)])
    assert r.status_code == 413 and "最多 3 张" in field_error(soup(r), "photo")
    assert count(url) == before


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_any_description_comes_back_as_typed(live, text):
    client, _, _ = live
    r = post_code(client, category="", description=text)
    assert r.status_code == 422
    assert (soup(r).find("textarea", {"name": "description"}).string or "") == text.strip()


# ------------------------------------------------------------------ /report
def test_report_anywhere_by_coordinates_by_address_or_not_at_all(live, zone_index):
    client, services, _ = live
    page = soup(client.get("/report"))
    assert page.find(id="map") and page.find("input", {"name": "address"})
    assert {i["name"] for i in page.select("input[type=hidden][disabled]")} == {"lon", "lat", "crs"}  # the map's, off without JS
    assert page.find("noscript")  # typed coordinates without JS
    key = form_key(client, "/report")
    lon, lat = inner(zone_index, "QS-04")
    r = client.post("/report", data={"category": "06010", "lon": ["", str(lon)], "lat": ["", str(lat)], "crs": "wgs84",
                                     "form_key": key}, follow_redirects=False)
    rep = services.reports.by_token(token_of(r))
    assert rep.source == "gps" and rep.zone_id == "QS-04" and abs(rep.geom.x - lon) < 1e-9
    r = client.post("/report", data={"category": "06010", "address": "企石镇铁岗村", "form_key": secrets.token_urlsafe(16)},
                    follow_redirects=False)
    rep = services.reports.by_token(token_of(r))
    assert rep.source == "address" and rep.location_input == {"address": "企石镇铁岗村"}
    r = client.post("/report", data={"category": "06010", "description": "哪里都不是"})
    assert r.status_code == 422 and "地址" in field_error(soup(r), "location")
    r = client.post("/report", data={"category": "06010", "lon": "east", "lat": "23"})
    assert r.status_code == 422 and "数字" in field_error(soup(r), "location")


# ------------------------------------------------------------------ tracking and answers
def test_tracking_page_and_the_answers(live):
    client, services, _ = live
    token = token_of(post_code(client, description="<script>alert(1)</script>"))
    r = client.get(f"/t/{token}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = soup(r)
    assert "已派给片长" in page.find(id="status").get_text() and "sent to the zone chief" in page.find(id="status").get_text()
    assert "<script>alert(1)</script>" in page.get_text() and "<script>alert" not in r.text  # shown, escaped
    assert not page.select("form.answer-form") and "处理完成后才能评价" in page.get_text()

    # an answer before resolution: 409, the page with the message
    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "5"})
    assert r.status_code == 409 and "处理完成后才能评价" in soup(r).select_one("#feedback .err").get_text()

    rid = services.reports.by_token(token).id
    for status in ("in_progress", "resolved"):
        services.reports.transition(rid, status, "staff:test", note="门已修好" if status == "resolved" else None)
    page = soup(client.get(f"/t/{token}"))
    assert "已处理完成" in page.find(id="status").get_text() and "门已修好" in page.select_one(".resolution").get_text()
    form = page.select_one("form.answer-form")
    assert [i["value"] for i in form.find_all("input", {"name": "outcome"})] == ["fixed", "partly_fixed", "not_fixed"]
    assert sorted(i["value"] for i in form.find_all("input", {"name": "rating"})) == ["1", "2", "3", "4", "5"]

    r = client.post(f"/t/{token}", data={"rating": "4", "comment": "谢谢"})  # no outcome chosen
    assert r.status_code == 422 and "是否已解决" in field_error(soup(r), "outcome")
    assert soup(r).find("textarea", {"name": "comment"}).string == "谢谢"

    r = client.post(f"/t/{token}", data={"outcome": "fixed", "rating": "5", "comment": "很快"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/t/{token}"
    rep = services.reports.by_token(token)
    assert (rep.satisfaction, rep.rating, rep.rating_comment, rep.status) == ("fixed", 5, "很快", "resolved")
    assert "已解决" in soup(client.get(f"/t/{token}")).select_one("section.answer").get_text()

    # "not fixed" reopens, the comment in the history
    r = client.post(f"/t/{token}", data={"outcome": "not_fixed", "rating": "1", "comment": "门还是坏的"}, follow_redirects=False)
    assert r.status_code == 303
    rep = services.reports.by_token(token)
    assert rep.status == "in_progress" and rep.history[-1].actor == "citizen" and "门还是坏的" in rep.history[-1].note
    page = soup(client.get(f"/t/{token}"))
    assert "正在处理" in page.find(id="status").get_text() and "门还是坏的" in page.select_one(".history").get_text()


def test_forged_tokens_are_404_pages(live):
    client, _, _ = live
    for r in (client.get("/t/" + secrets.token_hex(16)), client.get("/t/not-a-token"),
              client.post("/t/" + secrets.token_hex(16), data={"outcome": "fixed", "rating": "5"})):
        assert r.status_code == 404
        assert "没有找到" in soup(r).get_text() and "Traceback" not in r.text


# ------------------------------------------------------------------ limits and outages
def test_the_rate_limit_is_a_429_page_with_retry_after(tmp_path, zone_index):
    app = create_app(index=zone_index, database_url=f"sqlite:///{tmp_path / 'z.sqlite'}",
                     settings=Settings(media_dir=tmp_path / "media", rate_limit_per_minute=1))
    with TestClient(app) as client:
        token_of(post_code(client))
        r = post_code(client)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        text = soup(r).get_text(" ", strip=True)
        assert "提交太频繁" in text and "Too many reports" in text and "秒后再试" in text


def test_a_database_outage_is_a_503_page_with_retry_after(tmp_path, zone_index):
    app = create_app(index=zone_index, database_url="postgresql+psycopg://postgres@127.0.0.1:9/none",
                     settings=Settings(media_dir=tmp_path / "media", rate_limit_per_minute=0))
    with TestClient(app) as client:
        for r in (client.get("/t/" + secrets.token_hex(16)), post_code(client)):
            assert r.status_code == 503 and r.headers["retry-after"]
            assert "服务暂时不可用" in soup(r).get_text() and "Traceback" not in r.text
        assert client.get(f"/r/{TOILET}").status_code == 200  # the form itself needs no database
