"""The printable QR sheet and the SVG endpoint through a real headless Chromium (Debian's /usr/bin/chromium).

sheet.html, as `zonechief qr` writes it, is printed to PDF by Chromium; every PDF page is rasterised
with pdfium at 200 dpi and read with zxing-cpp: every facility's code must survive printing whole,
on A4 pages, as many pages as the 2×3 grid implies. The page may fetch nothing.
"""
from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import zxingcpp
from PIL import Image

from tests.helpers import LiveServer

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
ZONECHIEF = Path(sys.executable).parent / "zonechief"
PUBLIC = "https://zonechief.dongguan.example.cn/citizen"  # a long base: denser codes than the default
A4_PT = (595.0, 842.0)
DPI = 200


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/test.sh installs it)"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1000, "height": 1000})
        yield ctx
        ctx.close()


def qr_texts(img: Image.Image) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)]


def open_offline(browser, url: str):
    """A page on `url` where every request but file: and data: is refused and recorded."""
    page, fetched = browser.new_page(), []

    def guard(route):
        if urlsplit(route.request.url).scheme in ("file", "data"):
            return route.continue_()
        fetched.append(route.request.url)
        return route.abort()

    page.route("**/*", guard)
    page.goto(url, wait_until="load")
    return page, fetched


def test_printed_sheet_keeps_every_code(browser, facilities, tmp_path):
    import pypdfium2 as pdfium

    out = tmp_path / "qr"
    r = subprocess.run([str(ZONECHIEF), "qr", "--out", str(out), "--public-url", PUBLIC],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    page, fetched = open_offline(browser, (out / "sheet.html").as_uri())
    pdf_bytes = page.pdf(format="A4", print_background=True)
    page.close()
    assert fetched == []
    (tmp_path / "sheet.pdf").write_bytes(pdf_bytes)

    expected = Counter(f"{PUBLIC}/r/{c}" for c in facilities.service_code)
    pdf = pdfium.PdfDocument(pdf_bytes)
    assert len(pdf) == -(-len(expected) // 6)  # 2×3 cards a page
    seen: Counter = Counter()
    for i in range(len(pdf)):
        p = pdf[i]
        w, h = p.get_size()
        assert abs(w - A4_PT[0]) <= 1 and abs(h - A4_PT[1]) <= 1, (i, w, h)
        img = p.render(scale=DPI / 72).to_pil()
        texts = qr_texts(img)
        assert len(texts) == min(6, len(expected) - 6 * i), (i, texts)  # the page's cards, none cut or lost
        seen.update(texts)
    pdf.close()
    assert seen == expected


@pytest.fixture(scope="module")
def server(zone_index, tmp_path_factory):
    from api.app import create_app
    from zonechief.settings import Settings

    url = f"sqlite:///{tmp_path_factory.mktemp('qr-live') / 'zonechief.sqlite'}"
    app = create_app(index=zone_index, settings=Settings(public_url=PUBLIC), database_url=url)
    with LiveServer(app) as srv:
        yield srv


@pytest.mark.parametrize("asked, code", [("DGCS-441900112-WC001", "DGCS-441900112-WC001"),
                                         ("dgcs-441900105-fw003", "DGCS-441900105-FW003")])
def test_svg_endpoint_renders_to_a_readable_code(browser, server, asked, code):
    page = browser.new_page()
    resp = page.goto(f"{server.url}/v1/facilities/{asked}/qr.svg", wait_until="load")
    assert resp is not None and resp.status == 200
    assert resp.headers["content-type"].startswith("image/svg+xml")
    shot = page.locator("svg").screenshot()
    page.close()
    img = Image.open(io.BytesIO(shot))
    assert qr_texts(img) == [f"{PUBLIC}/r/{code}"]
