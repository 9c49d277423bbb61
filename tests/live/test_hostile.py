"""Hostile inputs, one row each: what is sent, the 4xx expected and words of its message.

Against a real uvicorn on the PostGIS store (the production backend: NUL characters, for one, are
refused there). Also: SQL and HTML/JS in text fields are stored verbatim and come back as JSON data.
"""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from gis.shipped import DATA_DIR as REPO_DATA
from tests.helpers import live_admin_app

pytestmark = pytest.mark.hostile
PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
GEO = {"Content-Type": "application/geo+json"}
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def pg_live():
    with live_admin_app("hostile admin") as (srv, key, url), httpx.Client(base_url=srv.url, timeout=60) as c:
        yield {"client": c, "admin": {"X-API-Key": key}, "url": url}


def rep(**kw) -> dict:
    return {"source": "gps", "category": "06010", "location": {"lon": 114.05, "lat": 23.06}, **kw}


def raw(s: str) -> bytes:
    return s.encode()


def fc(*geoms) -> dict:
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": g, "properties": {}} for g in geoms]}


BOWTIE = {"type": "Polygon", "coordinates": [[[114.0, 23.0], [114.1, 23.1], [114.1, 23.0], [114.0, 23.1], [114.0, 23.0]]]}


def villages(mutate) -> bytes:
    d = json.loads((REPO_DATA / "villages.geojson").read_text(encoding="utf-8"))
    mutate(d["features"])
    return json.dumps(d).encode()


def _bowtie_first(feats):
    x, y = feats[0]["geometry"]["coordinates"][0][0][:2] if feats[0]["geometry"]["type"] == "Polygon" else \
        feats[0]["geometry"]["coordinates"][0][0][0][:2]
    feats.append({"type": "Feature", "properties": {"code": "X1", "zone_id": "QS-01"},
                  "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 1e-4, y + 1e-4], [x + 1e-4, y], [x, y + 1e-4], [x, y]]]}})


def _empty_first(feats):
    feats[0]["geometry"] = {"type": "Polygon", "coordinates": []}


# (id, method, path, request kwargs, admin key?, status, words of the message)
CASES = [
    # ---- numbers: NaN, inf, 1e308, swapped lon/lat
    ("get NaN", "GET", "/v1/lookup", {"params": {"lon": "nan", "lat": 23.06}}, False, 400, "lon must be a finite number"),
    ("get inf", "GET", "/v1/lookup", {"params": {"lon": 114.05, "lat": "inf"}}, False, 400, "lat must be a finite number"),
    ("get -inf", "GET", "/v1/lookup", {"params": {"lon": "-inf", "lat": 23.06}}, False, 400, "finite"),
    ("get 1e308", "GET", "/v1/lookup", {"params": {"lon": 1e308, "lat": 23.06}}, False, 400, "out of range"),
    ("get swapped", "GET", "/v1/lookup", {"params": {"lon": 23.06, "lat": 114.05}}, False, 400, "did you swap lon and lat"),
    ("get not a number", "GET", "/v1/lookup", {"params": {"lon": "114,05", "lat": 23.06}}, False, 422, "query parameter 'lon'"),
    ("batch NaN", "POST", "/v1/lookup", {"content": raw('[{"lon": NaN, "lat": 23.06}]'), "headers": JSON}, False, 422, "points[0]: lon must be a finite number"),
    ("batch Infinity", "POST", "/v1/lookup", {"content": raw('[[114.05, -Infinity]]'), "headers": JSON}, False, 422, "lat must be a finite number"),
    ("batch 1e308", "POST", "/v1/lookup", {"json": [{"lon": 1e308, "lat": 23.06}]}, False, 422, "out of range"),
    ("batch huge integer", "POST", "/v1/lookup", {"content": raw('[[1' + '0' * 400 + ', 23]]'), "headers": JSON}, False, 422, "far too large"),
    ("batch swapped", "POST", "/v1/lookup", {"json": [[23.06, 114.05]]}, False, 422, "did you swap"),
    ("report NaN", "POST", "/v1/reports", {"content": raw('{"source":"gps","category":"06010","location":{"lon":NaN,"lat":23.06}}'), "headers": JSON}, False, 422, "lon must be a finite number"),
    ("report inf", "POST", "/v1/reports", {"content": raw('{"source":"gps","category":"06010","location":{"lon":1e999,"lat":23.06}}'), "headers": JSON}, False, 422, "finite"),
    ("report 1e308", "POST", "/v1/reports", {"json": rep(location={"lon": 114.05, "lat": 1e308})}, False, 422, "lat 1e+308 is out of range"),
    ("report swapped", "POST", "/v1/reports", {"json": rep(location={"lon": 23.06, "lat": 114.05})}, False, 422, "did you swap"),
    ("report projected garbage", "POST", "/v1/reports", {"json": rep(location={"lon": 1e300, "lat": -1e300, "crs": "EPSG:4547"})}, False, 422, "do not map to a valid WGS-84 position"),
    # ---- GeoJSON: empty and self-intersecting geometries
    ("batch null geometry", "POST", "/v1/lookup", {"json": fc(None)}, False, 422, "features[0] must have a Point geometry"),
    ("batch empty point", "POST", "/v1/lookup", {"json": fc({"type": "Point", "coordinates": []})}, False, 422, "features[0] must have a Point geometry"),
    ("batch self-intersecting polygon", "POST", "/v1/lookup", {"json": fc(BOWTIE)}, False, 422, "must have a Point geometry"),
    ("batch features not a list", "POST", "/v1/lookup", {"json": {"type": "FeatureCollection", "features": {}}}, False, 422, "'features' list"),
    ("boundaries self-intersecting", "PUT", "/v1/admin/boundaries", {"content": villages(_bowtie_first), "headers": GEO}, True, 422, "Self-intersection"),
    ("boundaries empty geometry", "PUT", "/v1/admin/boundaries", {"content": villages(_empty_first), "headers": GEO}, True, 422, "empty geometry"),
    ("boundaries no features", "PUT", "/v1/admin/boundaries", {"json": {"type": "FeatureCollection", "features": []}, "headers": GEO}, True, 422, "rejected"),
    ("boundaries empty body", "PUT", "/v1/admin/boundaries", {"content": b"  ", "headers": GEO}, True, 422, "body is empty"),
    # ---- size
    ("batch of 10,001 points", "POST", "/v1/lookup", {"json": [[114.05, 23.06]] * 10_001}, False, 413, "exceeds the maximum of 10000"),
    ("body over 1 MiB", "POST", "/v1/reports", {"content": b"{" + b" " * 1_100_000 + b"}", "headers": JSON}, False, 413, "exceeds the limit of 1048576 bytes"),
    ("description too long", "POST", "/v1/reports", {"json": rep(description="长" * 2001)}, False, 422, "description: String should have at most 2000 characters"),
    ("deeply nested batch", "POST", "/v1/lookup", {"content": b"[" * 50_000 + b"]" * 50_000, "headers": JSON}, False, 400, "nested too deeply"),
    ("deeply nested report", "POST", "/v1/reports", {"content": b"[" * 50_000 + b"]" * 50_000, "headers": JSON}, False, 400, "nested too deeply"),
    # ---- encoding
    ("batch invalid UTF-8", "POST", "/v1/lookup", {"content": b'[{"lon": 114.05, "lat": 23.06, "id": "\xff\xfe"}]', "headers": JSON}, False, 400, "not valid JSON"),
    ("report invalid UTF-8", "POST", "/v1/reports", {"content": b'{"source":"gps","description":"\xc3\x28"}', "headers": JSON}, False, 400, "not valid UTF-8"),
    ("roster invalid UTF-8", "PUT", "/v1/admin/roster", {"content": b"person_id,role\n\xff\xfe\xfd,chief\n", "headers": CSV}, True, 422, "roster rejected"),
    ("report NUL in text", "POST", "/v1/reports", {"json": rep(description="a\x00b")}, False, 422, "must not contain NUL"),
    ("search NUL in filter", "GET", "/v1/reports", {"params": {"zone_id": "QS\x0001"}}, False, 422, "must not contain NUL"),
    ("crs invalid UTF-8", "GET", "/v1/lookup?lon=114.05&lat=23.06&crs=%FF%FE", {}, False, 400, "unknown CRS"),
    # ---- shape: unknown fields, wrong types, injection into typed fields
    ("report unknown field", "POST", "/v1/reports", {"json": rep(priority="urgent")}, False, 422, "priority: Extra inputs are not permitted"),
    ("report unknown nested field", "POST", "/v1/reports", {"json": rep(location={"lon": 114.05, "lat": 23.06, "alt": 5})}, False, 422, "location.alt: Extra inputs are not permitted"),
    ("report unknown reporter field", "POST", "/v1/reports", {"json": rep(reporter={"name": "a", "email": "x@y"})}, False, 422, "reporter.email: Extra inputs"),
    ("status change unknown field", "PATCH", "/v1/reports/1", {"json": {"status": "closed", "why": "x"}}, True, 422, "why: Extra inputs are not permitted"),
    ("category with SQL", "POST", "/v1/reports", {"json": rep(category="06010' OR '1'='1")}, False, 422, "category"),
    ("photo_url javascript:", "POST", "/v1/reports", {"json": rep(photo_url="javascript:alert(1)")}, False, 422, "photo_url must be an http(s) URL"),
    ("phone with markup", "POST", "/v1/reports", {"json": rep(reporter={"phone": "<script>"})}, False, 422, "reporter.phone"),
    ("limit huge", "GET", "/v1/reports", {"params": {"limit": 10 ** 20}}, False, 422, "query parameter 'limit'"),
    ("bbox NaN", "GET", "/v1/reports", {"params": {"bbox": "nan,nan,nan,nan"}}, False, 422, "four finite numbers"),
    ("at garbage", "GET", "/v1/lookup", {"params": {"lon": 114.05, "lat": 23.06, "at": "2025-13-45"}}, False, 400, "ISO 8601"),
    ("zone id with markup", "GET", "/v1/zones/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", {}, False, 404, "no zone '<img src=x onerror=alert(1)>'"),
    ("report body is a list", "POST", "/v1/reports", {"json": [rep()]}, False, 422, "body"),
    ("report body empty", "POST", "/v1/reports", {"content": b"", "headers": JSON}, False, 422, "body is required"),
    ("roster as PDF", "PUT", "/v1/admin/roster", {"content": b"%PDF-1.4", "headers": {"Content-Type": "application/pdf"}}, True, 415, "text/csv"),
]


@pytest.mark.parametrize("method, path, kwargs, admin, status, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(pg_live, method, path, kwargs, admin, status, needle):
    headers = {**kwargs.get("headers", {}), **(pg_live["admin"] if admin else {})}
    r = pg_live["client"].request(method, path, **{**kwargs, "headers": headers})
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == PROBLEM  # never HTML, never a bare 500 page
    body = r.json()
    assert body["status"] == status and needle in body["detail"], body["detail"][:500]


TEXTS = [
    "'); DROP TABLE reports; --",
    "1' OR '1'='1",
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}} ${7*7} %s %n",
    "\u202egnp.exe 零宽\u200b字符 😀",
]


@pytest.mark.parametrize("text", TEXTS)
def test_text_fields_are_stored_verbatim_and_returned_as_json(pg_live, text):
    c, admin = pg_live["client"], pg_live["admin"]
    r = c.post("/v1/reports", json=rep(description=text, reporter={"name": text[:100]}, idempotency_key=text))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
    rid = r.json()["id"]
    got = c.get(f"/v1/reports/{rid}", headers=admin)
    assert got.headers["content-type"] == "application/json"
    assert got.json()["description"] == text and got.json()["reporter"]["name"] == text[:100]
    # The same key again is the same report, and another report under it is refused: the key is data, not SQL.
    again = c.post("/v1/reports", json=rep(description=text, reporter={"name": text[:100]}, idempotency_key=text))
    assert again.status_code == 200 and again.json()["id"] == rid
    assert c.post("/v1/reports", json=rep(description="other", idempotency_key=text)).status_code == 409
    # Filters are parameters too: an injected condition matches nothing.
    found = c.get("/v1/reports", params={"zone_id": text, "chief_id": text})
    assert found.status_code == 200 and found.json()["total"] == 0
    eng = sa.create_engine(pg_live["url"], poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT description FROM reports WHERE id = :i"), {"i": rid}).scalar() == text
    eng.dispose()


# ------------------------------------------------------------------ the gis layer never crashes
# Property tests: arbitrary input gives an answer or one of the documented exceptions, nothing else.
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gis import crs as gcrs  # noqa: E402
from gis.crs import UnknownCRSError  # noqa: E402
from gis.points import CoordinateError  # noqa: E402

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0])
NEAR = st.floats(100, 130) | st.floats(10, 40)  # around China, where the offset CRSs do their work
CRS_NAMES = st.sampled_from(["wgs84", "gcj02", "bd09", "cgcs2000", "EPSG:4547", "EPSG:3857", "EPSG:32650", "EPSG:2385"])
CRS_ANY = CRS_NAMES | st.text(max_size=40)
PROPS = hsettings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(x=ANY_FLOAT | NEAR, y=ANY_FLOAT | NEAR, crs=CRS_ANY)
def test_crs_transforms_never_crash(x, y, crs):
    try:
        c = gcrs.normalize_crs(crs)
    except UnknownCRSError:
        return
    lon, lat = gcrs.to_wgs84(x, y, c)
    assert lon.shape == lat.shape == ()
    bx, by = gcrs.from_wgs84(lon, lat, c)
    assert bx.shape == ()
    for f in (gcrs.wgs84_to_gcj02, gcrs.gcj02_to_wgs84, gcrs.wgs84_to_bd09, gcrs.bd09_to_wgs84):
        a, b = f(x, y)
        assert np.shape(a) == np.shape(b) == ()


@PROPS
@given(xs=st.lists(ANY_FLOAT | NEAR, max_size=20), ys=st.lists(ANY_FLOAT | NEAR, max_size=20), crs=CRS_NAMES)
def test_transforms_are_vectorized_and_shape_preserving(xs, ys, crs):
    n = min(len(xs), len(ys))
    lon, lat = gcrs.to_wgs84(np.array(xs[:n]), np.array(ys[:n]), crs)
    assert lon.shape == lat.shape == (n,)


@PROPS
@given(lon=ANY_FLOAT | st.floats(113.9, 114.3), lat=ANY_FLOAT | st.floats(22.8, 23.2), crs=CRS_ANY)
def test_lookup_answers_or_raises_a_documented_error(zone_index, lon, lat, crs):
    try:
        a = zone_index.lookup(lon, lat, crs=crs)
    except (CoordinateError, UnknownCRSError) as exc:
        assert str(exc)
        return
    assert a.status in ("inside", "boundary", "snapped", "outside")
    assert (a.zone_id is None) == (a.status == "outside")


@PROPS
@given(pts=st.lists(st.tuples(ANY_FLOAT | st.floats(113.9, 114.3), ANY_FLOAT | st.floats(22.8, 23.2)), max_size=30),
       crs=CRS_NAMES)
def test_assign_keeps_every_row(zone_index, pts, crs):
    xs, ys = np.array([p[0] for p in pts], dtype="f8"), np.array([p[1] for p in pts], dtype="f8")
    df = zone_index.assign(xs, ys, crs=crs)
    assert len(df) == len(pts)
    assert set(df.status) <= {"inside", "boundary", "snapped", "outside", "invalid"}
    bad = df.status == "invalid"
    assert df.problem[bad].notna().all() and df.zone_id[bad].isna().all()


@pytest.fixture(scope="module")
def gazetteer():
    from gis.gazetteer import Gazetteer

    return Gazetteer.load()


@PROPS
@given(text=st.text(max_size=200) | st.sampled_from(["", "   ", "\x00", "企石镇\x00铁岗村", "樟木头" * 100, "%s%n{0}", "'; DROP TABLE x;--"])
       | st.none() | st.integers() | st.floats())
def test_geocoder_never_crashes(gazetteer, text):
    from gis.gazetteer import geocode_address

    r = geocode_address(text, gazetteer)
    assert 0 <= r.confidence <= 1
    assert r.needs_review or (r.lon is not None and r.lat is not None)
