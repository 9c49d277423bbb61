"""QR codes of the facilities' service codes (zonechief.qr), `zonechief qr`, and the /v1 QR endpoints.

Every code is read back with zxing-cpp (a decoder independent of segno, which wrote it). The sheet
printed through Chromium is checked in tests/live/test_qr_print.py.
"""
from __future__ import annotations

import io
import re
from datetime import date
from urllib.parse import unquote, urlsplit

import pytest
import zxingcpp
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from zonechief.cli import main
from zonechief.qr import (
    CARDS_PER_PAGE,
    FacilityCard,
    PublicUrlError,
    check_public_url,
    facility_cards,
    qr_png,
    qr_svg,
    report_url,
    sheet_html,
)
from zonechief.settings import Settings

PUBLIC = "https://zc.example.cn"
PROBLEM = "application/problem+json"
EC_ORDER = "LMQH"


def decode(png: bytes) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)


def only_text(png: bytes) -> str:
    codes = decode(png)
    assert len(codes) == 1, codes
    return codes[0].text


# ------------------------------------------------------------------ codes


def test_report_url_percent_encodes_one_segment():
    assert report_url("http://127.0.0.1:8000", "DGCS-441900112-WC001") == "http://127.0.0.1:8000/r/DGCS-441900112-WC001"
    assert report_url("https://a.cn/zc/", "a/b?c#d%e f") == "https://a.cn/zc/r/a%2Fb%3Fc%23d%25e%20f"
    assert report_url("https://a.cn", "公厕") == "https://a.cn/r/%E5%85%AC%E5%8E%95"


def test_every_shipped_facility_decodes_to_its_url(facilities):
    assert len(facilities) == 20
    for code in facilities.service_code:
        url = report_url(PUBLIC, code)
        codes = decode(qr_png(url))
        assert [c.text for c in codes] == [url]
        c = codes[0]
        assert c.format == zxingcpp.BarcodeFormat.QRCode  # a full QR symbol, not Micro QR
        assert EC_ORDER.index(c.ec_level) >= EC_ORDER.index("M"), c.ec_level


def test_quiet_zone_and_scale():
    url = report_url(PUBLIC, "DGCS-441900112-WC001")
    small, big = Image.open(io.BytesIO(qr_png(url, scale=1))), Image.open(io.BytesIO(qr_png(url, scale=8)))
    assert big.size == (small.size[0] * 8, small.size[1] * 8)
    px = small.convert("L")
    w, _ = px.size
    # Four light modules on every side.
    for i in range(w):
        for k in range(4):
            assert px.getpixel((i, k)) > 128 and px.getpixel((k, i)) > 128
            assert px.getpixel((i, w - 1 - k)) > 128 and px.getpixel((w - 1 - k, i)) > 128
    assert px.getpixel((4, 4)) < 128  # the finder pattern starts right after


def test_svg_is_a_standalone_document_and_inline_element():
    url = report_url(PUBLIC, "DGCS-441900112-WC001")
    doc = qr_svg(url)
    assert doc.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in doc
    inline = qr_svg(url, standalone=False)
    assert inline.startswith("<svg") and "viewBox=" in inline and "<?xml" not in inline


odd = st.text(alphabet=st.sampled_from(list(" /?#%&+=;:@!'\"<>\\中文片长樟木头镇") + ["\u3000", "é", "\U0001F6BB"])
              | st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=odd, base=st.sampled_from(["http://127.0.0.1:8000", PUBLIC, "https://a.example.cn/zc"]))
def test_odd_codes_round_trip(code, base):
    text = only_text(qr_png(report_url(base, code), scale=3))
    assert text.startswith(base + "/r/")
    u = urlsplit(text)
    assert not u.query and not u.fragment
    assert unquote(u.path.rsplit("/", 1)[1]) == code


def test_check_public_url():
    assert check_public_url("https://zc.example.cn/") == "https://zc.example.cn"
    assert check_public_url(" http://10.0.0.5:8000/zc ") == "http://10.0.0.5:8000/zc"
    for bad in ("ftp://x", "zc.example.cn", "https://", "https://a.cn/?x=1", "https://a.cn/#f", "https://a b.cn"):
        with pytest.raises(PublicUrlError):
            check_public_url(bad)


# ------------------------------------------------------------------ cards and the sheet


def test_cards_carry_kind_zone_and_chief_in_force(index, facilities):
    cards = facility_cards(index, facilities)
    assert [c.service_code for c in cards] == list(facilities.service_code)
    chiefs = index.roster.chiefs_by_zone()
    names = dict(zip(index.zones.zone_id, index.zones.name))
    for c, row in zip(cards, facilities.itertuples()):
        assert (c.name, c.town, c.zone_id, c.zone_name) == (row.name, row.town, row.zone_id, names[row.zone_id])
        assert c.kind_zh == {"public_toilet": "公共厕所", "chengguan_station": "城管驿站",
                             "community_service_station": "社区服务站"}[row.kind]
        p = chiefs[row.zone_id]
        assert c.chief_line == f"片长 {p.name} 电话 {p.phone}"


def test_cards_follow_the_roster_date(index, facilities):
    f = facilities[facilities.zone_id == "ZMT-03"]
    before, after = facility_cards(index, f, date(2025, 6, 30))[0], facility_cards(index, f, date(2025, 7, 1))[0]
    roster = index.roster.table
    t = roster[(roster.zone_id == "ZMT-03") & (roster.role == "chief")]
    assert len(t) == 2 and before.chief_line != after.chief_line
    assert facility_cards(index, f, date(2020, 1, 1))[0].chief_line == "片长 暂缺"


def test_unknown_kind_shown_as_given():
    c = FacilityCard("X-1", "某设施", "bike_shed", "企石镇", "QS-01", "", None, None)
    assert (c.kind_zh, c.kind_en) == ("bike_shed", "")
    assert "bike_shed" in sheet_html([c], PUBLIC)


def test_sheet_is_self_contained_and_escaped(index, facilities):
    cards = facility_cards(index, facilities)
    hostile = FacilityCard('<script>alert(1)</script>', '<img src=x onerror=alert(2)>', '"><b>', '&town',
                           'Z"1', "<i>", "<u>chief</u>", "'><svg onload=1>")
    html = sheet_html([*cards, hostile], PUBLIC)
    assert html.count('class="card"') == 21
    assert html.count('<section class="page"') == -(-21 // CARDS_PER_PAGE)
    assert html.count("<svg") == 21 and "<script" not in html and "<img" not in html and "<u>" not in html
    assert "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")  # only as escaped text
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    # Nothing fetched: no src/href attributes, no CSS url() or @import.
    assert not re.search(r"\b(src|href)\s*=|url\(|@import", html.replace("&lt;img src=x", ""))
    assert "@page { size: A4" in html and "break-inside: avoid" in html
    for c in cards:
        assert report_url(PUBLIC, c.service_code) in html and c.chief_line in html
    assert "扫码反映问题" in html and "Scan to report a problem" in html and "illustrative" in html


# ------------------------------------------------------------------ zonechief qr


def test_cli_writes_a_code_per_facility_and_the_sheet(tmp_path, facilities):
    r = CliRunner().invoke(main, ["qr", "--out", str(tmp_path / "qr"), "--public-url", PUBLIC + "/"])
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == f"wrote 20 QR codes and sheet.html to {tmp_path / 'qr'}"
    files = sorted(p.name for p in (tmp_path / "qr").iterdir())
    assert files == sorted([f"{c}.svg" for c in facilities.service_code] + ["sheet.html"])
    svg = (tmp_path / "qr" / "DGCS-441900112-WC001.svg").read_text(encoding="utf-8")
    assert svg == qr_svg(report_url(PUBLIC, "DGCS-441900112-WC001"))
    assert (tmp_path / "qr" / "sheet.html").read_text(encoding="utf-8").count('class="card"') == 20


def test_cli_town_filter_and_default_url_warning(tmp_path, monkeypatch):
    from zonechief.settings import get_settings

    monkeypatch.delenv("ZONECHIEF_PUBLIC_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(main, ["qr", "--out", "out", "--town", "企石镇"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert "warning" in r.stderr and "http://127.0.0.1:8000" in r.stderr
    assert "wrote 5 QR codes" in r.stderr
    assert len(list((tmp_path / "out").glob("*.svg"))) == 5
    r = CliRunner().invoke(main, ["qr", "--out", str(tmp_path / "b"), "--town", "441900112", "--public-url", PUBLIC])
    assert r.exit_code == 0 and "wrote 15 QR codes" in r.stderr and "warning" not in r.stderr
    r = CliRunner().invoke(main, ["qr", "--out", str(tmp_path / "c"), "--town", "nowhere"])
    assert r.exit_code == 1 and "企石镇" in r.stderr
    r = CliRunner().invoke(main, ["qr", "--out", str(tmp_path / "c"), "--public-url", "ftp://x"])
    assert r.exit_code == 2 and "--public-url" in r.stderr


# ------------------------------------------------------------------ GET /v1/facilities/{code}/qr.*


@pytest.fixture(scope="module")
def client(zone_index, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('qr') / 'zonechief.sqlite'}"
    app = create_app(index=zone_index, settings=Settings(public_url=PUBLIC), database_url=url)
    with TestClient(app) as c:
        yield c


def test_png_endpoint_encodes_the_configured_public_url(client, facilities):
    for code in facilities.service_code:
        r = client.get(f"/v1/facilities/{code}/qr.png")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "public, max-age=3600"
        assert only_text(r.content) == f"{PUBLIC}/r/{code}"


def test_png_scale(client):
    sizes = {}
    for s in (1, 8, 40):
        r = client.get("/v1/facilities/DGCS-441900112-WC001/qr.png", params={"scale": s})
        assert r.status_code == 200
        sizes[s] = Image.open(io.BytesIO(r.content)).size[0]
    assert sizes[8] == 8 * sizes[1] and sizes[40] == 40 * sizes[1]
    for bad in (0, 41, "x"):
        r = client.get("/v1/facilities/DGCS-441900112-WC001/qr.png", params={"scale": bad})
        assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)


def test_svg_endpoint(client):
    r = client.get("/v1/facilities/DGCS-441900105-YZ001/qr.svg")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.text == qr_svg(f"{PUBLIC}/r/DGCS-441900105-YZ001")


@pytest.mark.parametrize("variant", ["dgcs-441900112-wc007", "DGCS441900112WC007", "dgcs 441900112 wc 007"])
def test_variant_finds_the_canonical_code(client, variant):
    r = client.get(f"/v1/facilities/{variant}/qr.png")
    assert r.status_code == 200, r.text
    assert only_text(r.content) == f"{PUBLIC}/r/DGCS-441900112-WC007"


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_unknown_code_is_404_problem(client, fmt):
    r = client.get(f"/v1/facilities/DGCS-000-NOPE/qr.{fmt}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 404 and "DGCS-000-NOPE" in body["detail"]
