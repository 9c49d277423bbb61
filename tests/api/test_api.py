"""The HTTP API in-process (FastAPI's TestClient, which is an httpx client) on the shipped index and a
throw-away SQLite store. Real servers (uvicorn on a port) are in tests/live."""
from __future__ import annotations

import json
import math
import os

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import create_app
from gis.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.helpers import ZONE_IDS, shipped_index

PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"


def _inner_point(zone_id: str) -> tuple[float, float]:
    """A point about 100 m inside the zone (its representative point if the zone is too thin)."""
    g = shipped_index().zones.set_index("zone_id").geometry[zone_id]
    inner = g.buffer(-0.001)
    p = (inner if not inner.is_empty else g).representative_point()
    return float(p.x), float(p.y)


def _rep_point(zone_id: str) -> tuple[float, float]:
    p = shipped_index().zones.set_index("zone_id").geometry[zone_id].representative_point()
    return float(p.x), float(p.y)


@pytest.fixture(scope="module")
def client(zone_index, tmp_path_factory):
    """The app on the shipped index (given, not loaded again) and an empty SQLite store, lifespan run."""
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'zonechief.sqlite'}"
    with TestClient(create_app(index=zone_index, database_url=url)) as c:
        yield c


def get_lookup(client, lon, lat, **params):
    r = client.get("/v1/lookup", params={"lon": lon, "lat": lat, **params})
    assert r.status_code == 200, r.text
    return r.json()


def assert_problem(r: httpx.Response, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    for n in needles:
        assert n in body["detail"], (n, body["detail"])
    return body


# ------------------------------------------------------------------ GET /v1/lookup


@pytest.mark.parametrize("zone_id", ZONE_IDS)
def test_lookup_each_zone(client, zone_index, zone_id):
    lon, lat = _rep_point(zone_id)
    r = client.get("/v1/lookup", params={"lon": lon, "lat": lat})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "inside"
    assert body["zone"]["id"] == zone_id
    assert body["zone"]["name"]
    assert body["chief"] is not None
    assert body["chief"]["id"] == zone_index.roster.chiefs_by_zone()[zone_id].person_id
    assert body["point"] == {"lon": pytest.approx(lon, abs=1e-12), "lat": pytest.approx(lat, abs=1e-12), "crs": "wgs84"}
    assert body["query"] == {"lon": lon, "lat": lat, "crs": "wgs84"}
    assert body["on_boundary"] is False and body["snapped"] is False
    assert body["village"]["code"] in zone_index.zones.set_index("zone_id").village_codes[zone_id].split(",")


@pytest.mark.parametrize("zone_id", ZONE_IDS)
def test_lookup_gcj02_and_bd09_give_same_zone(client, zone_id):
    lon, lat = _inner_point(zone_id)
    assert get_lookup(client, lon, lat)["zone"]["id"] == zone_id
    for name, convert in (("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)):
        x, y = (float(v) for v in convert(lon, lat))
        assert math.hypot(x - lon, y - lat) > 1e-3  # the offset is real, so a wrong CRS would be caught
        body = get_lookup(client, x, y, crs=name)
        assert body["zone"]["id"] == zone_id, name
        assert body["query"]["crs"] == name
        # The answer is in WGS-84: the original point, recovered to well under a millimetre.
        assert body["point"]["crs"] == "wgs84"
        assert body["point"]["lon"] == pytest.approx(lon, abs=1e-8)
        assert body["point"]["lat"] == pytest.approx(lat, abs=1e-8)


def test_lookup_crs_aliases(client):
    lon, lat = _inner_point("QS-05")
    x, y = (float(v) for v in wgs84_to_gcj02(lon, lat))
    assert get_lookup(client, x, y, crs="AMap")["zone"]["id"] == "QS-05"
    assert get_lookup(client, lon, lat, crs="EPSG:4326")["zone"]["id"] == "QS-05"


@pytest.mark.parametrize("at, chief", [("2024-06-01", "ZMT-C10"), ("2026-01-01", "ZMT-C03"),
                                       ("2025-06-30T23:00:00+08:00", "ZMT-C10"), ("2025-07-01", "ZMT-C03")])
def test_lookup_roster_at(client, at, chief):
    lon, lat = _rep_point("ZMT-03")
    body = get_lookup(client, lon, lat, at=at)
    assert body["zone"]["id"] == "ZMT-03"
    assert body["chief"]["id"] == chief


def test_lookup_out_crs_gcj02(client):
    lon, lat = _rep_point("ZMT-01")
    body = get_lookup(client, lon, lat, out_crs="gcj02")
    gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
    assert body["point"]["crs"] == "gcj02"
    assert body["point"]["lon"] == pytest.approx(gx, abs=1e-12)
    assert body["point"]["lat"] == pytest.approx(gy, abs=1e-12)
    assert abs(body["point"]["lon"] - lon) > 1e-4
    assert body["zone"]["id"] == "ZMT-01"


def test_lookup_outside_reports_nearest(client):
    body = get_lookup(client, 100.0, 30.0)
    assert body["status"] == "outside"
    assert body["zone"] is None and body["chief"] is None
    assert body["nearest_zone_id"] in ZONE_IDS
    assert body["distance_m"] > 1_000_000


# ------------------------------------------------------------------ bad input → 4xx problem+json

BAD_GETS = [
    ({"lon": "114.05"}, 422, ["'lat'", "required"]),
    ({"lat": "23.06"}, 422, ["'lon'", "required"]),
    ({"lon": "nan", "lat": "23.06"}, 400, ["lon", "finite"]),
    ({"lon": "114.05", "lat": "inf"}, 400, ["lat", "finite"]),
    ({"lon": "1e308", "lat": "23.06"}, 400, ["lon", "[-180, 180]"]),
    ({"lon": "23.06", "lat": "114.06"}, 400, ["did you swap lon and lat"]),
    ({"lon": "114.05", "lat": "23.06", "crs": "foo"}, 400, ["'foo'", "wgs84", "gcj02", "bd09", "EPSG"]),
    ({"lon": "114.05", "lat": "23.06", "out_crs": "foo"}, 400, ["'foo'", "wgs84"]),
    ({"lon": "114.05", "lat": "23.06", "at": "notadate"}, 400, ["notadate", "ISO 8601"]),
    ({"lon": "abc", "lat": "23.06"}, 422, ["'lon'"]),
    ({"lon": "1e300", "lat": "1e300", "crs": "EPSG:4547"}, 400, ["EPSG:4547"]),
]


@pytest.mark.parametrize("params, status, needles", BAD_GETS, ids=[json.dumps(p) for p, _, _ in BAD_GETS])
def test_lookup_bad_query(client, params, status, needles):
    assert_problem(client.get("/v1/lookup", params=params), status, *needles)


def test_unknown_zone_404(client):
    body = assert_problem(client.get("/v1/zones/NOPE-99"), 404, "NOPE-99", "/v1/zones")
    assert body["instance"] == "/v1/zones/NOPE-99"


def test_unknown_path_404(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "/v1/nothing-here", "/docs")


@pytest.mark.parametrize("method, path", [("DELETE", "/v1/lookup"), ("PUT", "/v1/lookup"), ("POST", "/healthz"),
                                          ("DELETE", "/v1/zones/ZMT-01")])
def test_wrong_method_405(client, method, path):
    r = client.request(method, path)
    body = assert_problem(r, 405, method)
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert "GET" in allowed and method not in allowed
    assert "GET" in body["detail"]
    if path == "/v1/lookup":
        assert "POST" in allowed and "POST" in body["detail"]


def _post(client, body, **params):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/v1/lookup", content=raw, params=params, headers={"content-type": "application/json"})


def test_post_malformed_json_400(client):
    assert_problem(_post(client, b'[{"lon": 114.05, "lat": '), 400, "not valid JSON")
    assert_problem(_post(client, b""), 400, "not valid JSON")
    assert_problem(_post(client, b"\xff\xfe\x00garbage"), 400, "not valid JSON")


@pytest.mark.parametrize("raw", [b'[{"lon": NaN, "lat": 23.06}]', b'[{"lon": 114.05, "lat": Infinity}]',
                                 b'[[114.05, 23.06], [-Infinity, 23.0]]', b'[{"lon": 114.05, "lat": 1e400}]'])
def test_post_non_finite_422(client, raw):
    body = assert_problem(_post(client, raw), 422, "finite")
    assert body["errors"] and "finite" in body["errors"][0]["message"]


def test_post_huge_integer_is_4xx(client):
    # A JSON integer too big for a float used to escape as a 500.
    assert_problem(_post(client, b'[{"lon": 1' + b"0" * 400 + b', "lat": 23}]'), 422, "points[0].lon")
    r = _post(client, b'[{"lon": 1' + b"0" * 5000 + b', "lat": 23}]')
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PROBLEM)


def test_post_invalid_points_listed(client):
    body = assert_problem(_post(client, [{"id": "ok", "lon": 114.05, "lat": 23.06},
                                         {"id": "swapped", "lon": 23.06, "lat": 114.05}]),
                          422, "points[1]", "did you swap lon and lat")
    assert [(e["index"], e["id"]) for e in body["errors"]] == [(1, "swapped")]
    assert "did you swap" in body["errors"][0]["message"]


def test_post_oversize_batch_413(client):
    pts = [{"lon": 114.05, "lat": 23.06}] * 10_001
    assert_problem(_post(client, pts), 413, "10001", "10000")
    # The limit itself is fine.
    r = _post(client, [[114.05, 23.06]] * 10_000)
    assert r.status_code == 200 and r.json()["count"] == 10_000


def test_post_oversize_body_413(client):
    # Far more bytes than any 10000-point batch needs: refused on size, before parsing.
    raw = b"[" + b",".join([b'{"lon": 114.05, "lat": 23.06, "id": "' + b"x" * 500 + b'"}'] * 10_000) + b"]"
    assert_problem(_post(client, raw), 413, "10000")


WRONG_SHAPES = [
    ("string", "hello", ["JSON list"]),
    ("number", 42, ["JSON list"]),
    ("object without points", {"pts": [[114.05, 23.06]]}, ["'points'"]),
    ("points not a list", {"points": {"lon": 114.05, "lat": 23.06}}, ["JSON list"]),
    ("missing lat", [{"lon": 114.05}], ["points[0]", "missing lat"]),
    ("missing both", [{"x": 1}], ["lon and lat"]),
    ("lat as string", [{"lon": 114.05, "lat": "23.06"}], ["points[0].lat", "number", '"23.06"']),
    ("lon as bool", [{"lon": True, "lat": 23.06}], ["points[0].lon", "number"]),
    ("triple", [[114.05, 23.06, 0]], ["points[0]", "[lon, lat]"]),
    ("null point", [None], ["points[0]"]),
    ("crs not a string", {"crs": 4326, "points": []}, ["'crs'"]),
    ("linestring feature", {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[114.05, 23.06], [114.06, 23.07]]},
         "properties": {}}]}, ["features[0]", "Point"]),
    ("features not a list", {"type": "FeatureCollection", "features": {}}, ["'features'"]),
    ("null geometry", {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None}]},
     ["features[0]", "Point"]),
    ("properties a string", {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.05, 23.06]}, "properties": "x"}]},
     ["features[0].properties"]),
]


@pytest.mark.parametrize("body, needles", [(b, n) for _, b, n in WRONG_SHAPES], ids=[i for i, _, _ in WRONG_SHAPES])
def test_post_wrong_shape_422(client, body, needles):
    assert_problem(_post(client, body), 422, *needles)


def test_post_unknown_crs_400(client):
    assert_problem(_post(client, {"crs": "mars-ish", "points": [[114.05, 23.06]]}), 400, "mars-ish", "gcj02")
    assert_problem(_post(client, [[114.05, 23.06]], at="yesterday"), 400, "ISO 8601")


# ------------------------------------------------------------------ POST /v1/lookup: same answers as GET

SAMPLE_ZONES = ["QS-01", "QS-08", "QS-17", "ZMT-03", "ZMT-07", "ZMT-08"]


def _sample_points():
    pts = [_inner_point(z) for z in SAMPLE_ZONES]
    return pts + [(100.0, 30.0), (113.95, 22.95)]  # far outside; near Dongguan but outside every zone


def _strip(result: dict, *keys) -> dict:
    return {k: v for k, v in result.items() if k not in keys}


def test_post_list_of_objects_equals_get(client):
    pts = _sample_points()
    r = _post(client, [{"id": f"p{i}", "lon": x, "lat": y} for i, (x, y) in enumerate(pts)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(pts) and body["crs"] == "wgs84" and body["out_crs"] == "wgs84"
    assert [res["id"] for res in body["results"]] == [f"p{i}" for i in range(len(pts))]
    for (x, y), res in zip(pts, body["results"]):
        assert _strip(res, "id") == _strip(get_lookup(client, x, y), "query")
    assert [res["zone"]["id"] for res in body["results"][:len(SAMPLE_ZONES)]] == SAMPLE_ZONES
    assert body["results"][-2]["status"] == "outside"


def test_post_object_with_crs_equals_get(client):
    pts = [tuple(float(v) for v in wgs84_to_gcj02(x, y)) for x, y in _sample_points()]
    # The body's crs wins over the query parameter.
    r = _post(client, {"crs": "gcj02", "points": [{"lon": x, "lat": y} for x, y in pts]}, crs="bd09")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["crs"] == "gcj02"
    for (x, y), res in zip(pts, body["results"]):
        assert res["id"] is None
        assert _strip(res, "id") == _strip(get_lookup(client, x, y, crs="gcj02"), "query")
    assert [res["zone"]["id"] for res in body["results"][:len(SAMPLE_ZONES)]] == SAMPLE_ZONES


def test_post_pairs_equals_get(client):
    pts = _sample_points()
    r = _post(client, [[x, y] for x, y in pts], at="2024-06-01", out_crs="gcj02")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["out_crs"] == "gcj02"
    for (x, y), res in zip(pts, body["results"]):
        assert _strip(res, "id") == _strip(get_lookup(client, x, y, at="2024-06-01", out_crs="gcj02"), "query")
    zmt03 = body["results"][SAMPLE_ZONES.index("ZMT-03")]
    assert zmt03["chief"]["id"] == "ZMT-C10"


def test_post_empty_list(client):
    r = _post(client, [])
    assert r.status_code == 200 and r.json()["count"] == 0 and r.json()["results"] == []


def test_post_feature_collection(client):
    pts = _sample_points()
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": i, "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"case": f"c{i}", "nested": {"n": i, "名": "测试"}, "tags": [i]}}
        for i, (x, y) in enumerate(pts)]}
    fc["features"][0]["properties"] = None
    r = _post(client, fc)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(GEOJSON)
    out = r.json()
    assert out["type"] == "FeatureCollection" and len(out["features"]) == len(pts)
    for i, ((x, y), f) in enumerate(zip(pts, out["features"])):
        assert f["type"] == "Feature"
        props = dict(f["properties"])
        zc = props.pop("zonechief")
        expected_props = {} if i == 0 else {"case": f"c{i}", "nested": {"n": i, "名": "测试"}, "tags": [i]}
        assert props == expected_props
        assert zc == _strip(get_lookup(client, x, y), "query")
        assert f["geometry"] == {"type": "Point", "coordinates": [pytest.approx(x, abs=1e-12), pytest.approx(y, abs=1e-12)]}
    assert [f["properties"]["zonechief"]["zone"]["id"] for f in out["features"][:len(SAMPLE_ZONES)]] == SAMPLE_ZONES


# ------------------------------------------------------------------ geography, roster, ops


def test_zones(client):
    r = client.get("/v1/zones")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(GEOJSON)
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 29
    assert sorted(f["properties"]["zone_id"] for f in fc["features"]) == sorted(ZONE_IDS)
    for f in fc["features"]:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert f["properties"]["chief_id"], f["properties"]["zone_id"]
    by_id = {f["properties"]["zone_id"]: f["properties"] for f in fc["features"]}
    assert by_id["QS-17"]["chief_id"] == "QS-C08"
    qs = client.get("/v1/zones", params={"town": "企石镇"}).json()
    assert len(qs["features"]) == 20


def test_one_zone(client):
    r = client.get("/v1/zones/ZMT-07")
    assert r.status_code == 200 and r.headers["content-type"].startswith(GEOJSON)
    f = r.json()
    assert f["type"] == "Feature"
    assert f["properties"]["zone_id"] == "ZMT-07"
    assert sorted(f["properties"]["village_codes"].split(",")) == ["441900112008", "441900112011"]
    assert f["properties"]["chief_id"] == "ZMT-C07"


def test_villages(client):
    r = client.get("/v1/villages")
    assert r.status_code == 200 and r.headers["content-type"].startswith(GEOJSON)
    feats = r.json()["features"]
    assert len(feats) == 31
    assert len({f["properties"]["village_code"] for f in feats}) == 31
    assert len(client.get("/v1/villages", params={"town": "樟木头镇"}).json()["features"]) == 11


def test_chiefs(client):
    r = client.get("/v1/chiefs")
    assert r.status_code == 200
    people = r.json()
    qs_chiefs = [p for p in people if p["role"] == "chief" and p["id"].startswith("QS-")]
    assert len(qs_chiefs) == 17
    qs08 = next(p for p in people if p["id"] == "QS-C08")
    assert qs08["zone_ids"] == ["QS-08", "QS-17"]
    inspectors = client.get("/v1/chiefs", params={"role": "inspector"}).json()
    assert len(inspectors) == 36 and {p["role"] for p in inspectors} == {"inspector"}
    then = {p["id"] for p in client.get("/v1/chiefs", params={"role": "chief", "at": "2024-06-01"}).json()}
    later = {p["id"] for p in client.get("/v1/chiefs", params={"role": "chief", "at": "2026-01-01"}).json()}
    assert "ZMT-C10" in then and "ZMT-C03" not in then
    assert "ZMT-C03" in later and "ZMT-C10" not in later
    assert len(later) == 26
    assert_problem(client.get("/v1/chiefs", params={"role": "boss"}), 422, "'role'")


def test_facilities(client):
    r = client.get("/v1/facilities")
    assert r.status_code == 200 and r.headers["content-type"].startswith(GEOJSON)
    feats = r.json()["features"]
    assert len(feats) == 20
    assert sum(f["properties"]["kind"] == "public_toilet" for f in feats) == 15
    assert all(f["geometry"]["type"] == "Point" for f in feats)
    toilets = client.get("/v1/facilities", params={"kind": "public_toilet"}).json()["features"]
    assert len(toilets) == 15


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    warm = body["checks"].pop("hotspots")  # the kernels' warm-up (tests/live/test_cold_start.py)
    assert warm["status"] in ("warming", "ok")
    assert {k: v for k, v in body.items() if k != "worker"} == {"status": "ok", "version": r.json()["version"], "zones": 29, "villages": 31, "roster": True,
                        "checks": {"zones_index": {"status": "ok", "zones": 29, "villages": 31, "roster": True},
                                   "database": {"status": "ok", "dialect": "sqlite"}}}
    assert body["version"]


def test_healthz_names_the_process_and_the_reference_data_in_force(client, zone_index, facilities):
    from zonechief.reference import fingerprint

    w = client.get("/healthz").json()["worker"]
    assert w == {"pid": os.getpid(), "reference": {"fingerprint": fingerprint(zone_index, facilities), "audit_id": None}}
    assert len(w["reference"]["fingerprint"]) == 12


def test_docs_and_openapi(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger" in r.text.lower()
    spec = client.get("/openapi.json").json()
    assert {"get", "post"} <= set(spec["paths"]["/v1/lookup"])
    assert "/v1/zones/{zone_id}" in spec["paths"]
    assert "oneOf" in spec["paths"]["/v1/lookup"]["post"]["requestBody"]["content"]["application/json"]["schema"]


# ------------------------------------------------------------------ property: never 5xx

coord = st.one_of(st.floats(-200, 200), st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=100, deadline=None)
@given(lon=coord, lat=coord)
def test_lookup_never_5xx(client, lon, lat):
    r = client.get("/v1/lookup", params={"lon": lon, "lat": lat})
    assert r.status_code < 500, r.text
    if abs(lon) <= 180 and abs(lat) <= 90:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] in ("inside", "boundary", "snapped", "outside")
        assert body["query"]["lon"] == lon and body["query"]["lat"] == lat
    else:
        assert_problem(r, 400)
