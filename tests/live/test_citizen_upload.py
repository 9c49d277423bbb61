"""Photos made small on the phone before they are sent (maps/static/citizen/citizen.js), in a real headless
Chromium emulating a phone in WeChat's browser, on a real uvicorn server over SQLite.

(a) a 4032×3024 phone JPEG whose EXIF GPS (big-endian TIFF) is 3 km from the facility goes out at 2048 px
and under 1.2 MB, even when Send is tapped before it is ready, and the staff still get the "taken far away"
note from the position the page read and sent beside it; (b) a small photo goes out byte for byte; (c) a
large photo with EXIF orientation 6 (little-endian) is stored upright. Then the server's side alone: what
it accepts as a client-reported position, and that a photo's own EXIF position always wins.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from api.citizen import client_position, with_client_positions
from tests.helpers import LiveServer
from tests.live.test_citizen_browser import TOILET, Phone, chromium  # noqa: F401  (chromium: a fixture)
from zonechief.photos import Photo
from zonechief.reports import report_to_dict

M_PER_DEG_LAT = 111_195.0  # metres per degree of latitude on the mean-radius sphere


class Received:
    """The app behind an ASGI layer that keeps each POST body as the server received it (Chromium's CDP leaves file
    parts out of the request's post data)."""

    def __init__(self, app):
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []

        async def recording():
            msg = await receive()
            if msg["type"] == "http.request":
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    self.bodies.append(b"".join(chunks))
            return msg

        return await self.app(scope, recording, send)


@pytest.fixture(scope="module")
def server(tmp_path_factory, zone_index):
    from api.app import create_app
    from zonechief.settings import Settings

    work = tmp_path_factory.mktemp("upload")
    app = create_app(index=zone_index, database_url=f"sqlite:///{work / 'zc.sqlite'}",
                     settings=Settings(media_dir=work / "media", rate_limit_per_minute=0))
    services = app.state.services
    received = Received(app)
    try:
        with LiveServer(received) as srv:
            srv.received = received.bodies
            services.settings.public_url = srv.url
            yield srv, services
    finally:
        services.db.engine.dispose()


def exif(lon: float | None, lat: float | None, endian: str, orientation: int | None = None) -> bytes:
    """An EXIF block (APP1 payload) with a GPS position as degree/minute/second rationals, in the given byte order."""
    e = Image.Exif()
    e.endian = endian
    if orientation:
        e[0x0112] = orientation
    if lon is not None and lat is not None:
        def dms(v: float) -> tuple[float, float, float]:
            d = int(v)
            m = int((v - d) * 60)
            return float(d), float(m), round((v - d - m / 60) * 3600, 4)
        gps = e.get_ifd(0x8825)
        gps[1], gps[2] = "N", dms(lat)
        gps[3], gps[4] = "E", dms(lon)
    return e.tobytes()


def phone_jpeg(size: tuple[int, int], seed: int, **exif_args) -> bytes:
    """A JPEG like a phone photo: coloured blotches and fine grain (not compressible as flat colour is)."""
    rng = np.random.default_rng(seed)
    w, h = size
    blotches = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    grain = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    im = Image.fromarray(np.clip(np.asarray(blotches).astype(np.int16) + grain, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=88, exif=exif(**exif_args) if exif_args else b"")
    return buf.getvalue()


def send(srv, chromium, path: Path) -> tuple[str, bytes]:  # noqa: F811
    """File a report at the toilet with this photo, Send tapped at once (the form waits for the photo to be ready);
    (its tracking token, the POST body the server received)."""
    phone = Phone(chromium, srv.url)
    page = phone.page
    posts: list = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r))
    before = len(srv.received)
    try:
        page.goto(f"{srv.url}/r/{TOILET}")
        page.select_option("#category", "03001")
        page.set_input_files("#photo", str(path))
        page.click("#send")
        page.wait_for_url(re.compile(r"/t/[0-9a-f]+\?filed=1$"))
        assert len(posts) == 1 and len(srv.received) == before + 1 and phone.off_origin() == [] and phone.errors == []
        return re.search(r"/t/([0-9a-f]+)", page.url).group(1), srv.received[-1]
    finally:
        phone.close()


def sent_photo(body: bytes) -> bytes:
    """The photo's bytes in a multipart form body."""
    boundary = body.split(b"\r\n", 1)[0]
    part = next(p for p in body.split(boundary) if b'name="photo"' in p)
    return part.split(b"\r\n\r\n", 1)[1][:-2]  # without the CRLF before the next boundary


def staff_view(services, token: str) -> tuple[dict, list[Image.Image]]:
    """The report as staff see it (JSON) and its stored photos, decoded."""
    rep = services.reports.by_token(token)
    pics = [Image.open(io.BytesIO(services.reports.photo(rep.id, m.id)[1])) for m in rep.media]
    return report_to_dict(rep, personal=True), pics


def facility_point(services) -> tuple[float, float]:
    f = services.facilities
    g = f[f.service_code == TOILET].geometry.iloc[0]
    return float(g.x), float(g.y)


def test_a_large_photo_is_sent_small_and_keeps_its_far_away_note(server, chromium, tmp_path):  # noqa: F811
    srv, services = server
    lon, lat = facility_point(services)
    far_lat = lat + 3000 / M_PER_DEG_LAT  # 3 km north
    original = phone_jpeg((4032, 3024), 15, lon=lon, lat=far_lat, endian=">")  # big-endian TIFF ("MM")
    assert len(original) > 2_000_000
    path = tmp_path / "IMG_20261203_101500.jpg"
    path.write_bytes(original)
    token, body = send(srv, chromium, path)
    print(f"a {len(original) / 1e6:.2f} MB 4032×3024 photo went out in a {len(body) / 1e6:.2f} MB form")
    assert len(body) < 1_200_000
    assert Image.open(io.BytesIO(sent_photo(body))).size == (2048, 1536)
    assert b'name="photo_gps_1"' in body
    d, pics = staff_view(services, token)
    assert [(p["width"], p["height"]) for p in d["photos"]] == [(2048, 1536)] and pics[0].size == (2048, 1536)
    pos = d["photos"][0]["exif_position"]
    assert pos is not None and abs(pos["lon"] - lon) < 1e-6 and abs(pos["lat"] - far_lat) < 1e-6
    assert 2900 < pos["distance_m"] < 3100
    assert len(d["photo_notes"]) == 1 and "3.0 km" in d["photo_notes"][0]


def test_a_small_photo_is_sent_as_it_is(server, chromium, tmp_path):  # noqa: F811
    srv, services = server
    lon, lat = facility_point(services)
    original = phone_jpeg((800, 600), 16, lon=lon, lat=lat + 2000 / M_PER_DEG_LAT, endian="<")
    assert 30_000 < len(original) < 300_000
    path = tmp_path / "small.jpg"
    path.write_bytes(original)
    token, body = send(srv, chromium, path)
    assert original in body  # the same bytes, EXIF and all: the server reads the position itself
    d, _ = staff_view(services, token)
    assert [(p["width"], p["height"]) for p in d["photos"]] == [(800, 600)]
    assert d["photos"][0]["exif_position"]["distance_m"] > 1900 and len(d["photo_notes"]) == 1


def test_a_turned_photo_is_stored_upright(server, chromium, tmp_path):  # noqa: F811
    srv, services = server
    lon, lat = facility_point(services)
    # Taken with the phone held upright: the sensor's 2400×1600 picture, red on its left, blue on its right;
    # orientation 6 says "turn 90° clockwise to show it", so red is at the top of what the citizen saw.
    sensor = Image.new("RGB", (2400, 1600), (220, 30, 30))
    sensor.paste((30, 30, 220), (1200, 0, 2400, 1600))
    buf = io.BytesIO()
    sensor.save(buf, "JPEG", quality=90, exif=exif(lon, lat + 100 / M_PER_DEG_LAT, "<", orientation=6))
    path = tmp_path / "upright.jpg"
    path.write_bytes(buf.getvalue())
    shown = ImageOps.exif_transpose(Image.open(path))
    assert shown.size == (1600, 2400)
    token, body = send(srv, chromium, path)
    sent = Image.open(io.BytesIO(sent_photo(body)))
    assert sent.size == (1365, 2048) and not sent.getexif()  # turned by the page: no orientation left to apply
    d, pics = staff_view(services, token)
    assert [(p["width"], p["height"]) for p in d["photos"]] == [(1365, 2048)]
    pic = pics[0].convert("RGB")
    top, bottom = pic.getpixel((682, 100)), pic.getpixel((682, 1948))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0], (top, bottom)
    want = shown.resize(pic.size)
    assert want.getpixel((682, 100))[0] > 150 and want.getpixel((682, 1948))[2] > 150
    pos = d["photos"][0]["exif_position"]
    assert pos is not None and pos["distance_m"] < 150 and d["photo_notes"] == []


# ------------------------------------------------------------------ the server's side alone
@given(st.floats(-180, 180), st.floats(-90, 90))
def test_a_sane_client_position_is_taken_as_sent(lon, lat):
    got = client_position(f"{lon!r},{lat!r}")
    assert got == (None if lon == lat == 0 else (lon, lat))


@given(st.one_of(st.text(max_size=80), st.tuples(st.floats(), st.floats()).map(lambda t: f"{t[0]},{t[1]}")))
def test_anything_else_is_no_position(text):
    got = client_position(text)
    if got is not None:
        lon, lat = got
        assert math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90 and (lon, lat) != (0, 0)


def test_a_photo_s_own_exif_position_wins():
    own = Photo(b"x", "image/jpeg", 1, 1, exif_lon=113.9, exif_lat=22.9)
    bare = Photo(b"y", "image/jpeg", 1, 1)
    out = with_client_positions([own, bare, bare, bare], ["114.1,22.95", "114.1,22.95", "nan,22.9", "200,10"])
    assert [(p.exif_lon, p.exif_lat) for p in out] == [(113.9, 22.9), (114.1, 22.95), (None, None), (None, None)]
    assert with_client_positions([bare], []) == [bare]
