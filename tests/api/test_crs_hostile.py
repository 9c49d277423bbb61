"""Hostile CRSs at every API parameter that takes one: 400 problem+json naming the supported systems, never a 500.

And points given in a projected CRS whose coordinates are evidently degrees: 422 "these look like
degrees; did you mean crs=wgs84?", with nothing stored. In-process (TestClient) on a real PostGIS store;
the bulk import of report files (zonechief.bulk, both routes) on the same store, at the end.
"""
from __future__ import annotations

import csv
import io

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from gis.crs import from_wgs84
from gis.shipped import DATA_DIR
from store.keys import create_key
from tests.gis.test_crs_hostile import ENGINEERING, HOSTILE, MOON_WKT
from tests.helpers import inner, pg_database
from zonechief.bulk import import_file

PROBLEM = "application/problem+json"
SYSTEMS = ("wgs84", "gcj02", "bd09", "cgcs2000", "EPSG:4547")
DEGREES = "these look like degrees; did you mean crs=wgs84?"
LON, LAT = 114.05, 23.06
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def api(zone_index):
    with pg_database() as url:
        app = create_app(index=zone_index, database_url=url)
        services = app.state.services
        with services.db.sessions.begin() as s:
            _, staff = create_key(s, "staff", "crs tests")
            _, admin = create_key(s, "admin", "crs tests admin")
        with TestClient(app) as client:
            yield {"client": client, "services": services, "staff": {"X-API-Key": staff}, "admin": {"X-API-Key": admin}}
        services.db.engine.dispose()


def stored(api) -> int:
    return api["services"].reports.search(limit=1)[1]


def report(crs: str, lon: float = LON, lat: float = LAT) -> dict:
    return {"source": "gps", "category": "06010", "description": "crs test",
            "location": {"lon": lon, "lat": lat, "crs": crs}}


# Every place the API takes a CRS from the client, as (name, request).
ENDPOINTS = {
    "GET lookup crs": lambda c, h, k: c.get("/v1/lookup", params={"lon": LON, "lat": LAT, "crs": h}),
    "GET lookup out_crs": lambda c, h, k: c.get("/v1/lookup", params={"lon": LON, "lat": LAT, "out_crs": h}),
    "POST lookup ?crs": lambda c, h, k: c.post("/v1/lookup", params={"crs": h}, json=[{"lon": LON, "lat": LAT}]),
    "POST lookup body crs": lambda c, h, k: c.post("/v1/lookup", json={"crs": h, "points": [[LON, LAT]]}),
    "POST lookup out_crs": lambda c, h, k: c.post("/v1/lookup", params={"out_crs": h}, json=[[LON, LAT]]),
    "POST lookup GeoJSON ?crs": lambda c, h, k: c.post("/v1/lookup", params={"crs": h}, json={
        "type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                   "geometry": {"type": "Point", "coordinates": [LON, LAT]}}]}),
    "POST reports": lambda c, h, k: c.post("/v1/reports", json=report(h), headers=k),
}


def assert_crs_refused(r, why: str = ""):
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["title"] == "Unknown CRS" and body["status"] == 400
    for system in SYSTEMS:
        assert system in body["detail"]
    assert why in body["detail"]
    assert len(body["detail"]) < 600  # never the hostile input echoed back whole


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("crs,why", HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_every_crs_parameter_refuses_a_hostile_crs(api, endpoint, crs, why):
    before = stored(api)
    r = ENDPOINTS[endpoint](api["client"], crs, api["staff"])
    if endpoint == "POST reports" and len(crs) > 64:
        # A report's crs is at most 64 characters (the limit both import routes share): refused by validation.
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert "64 characters" in r.json()["detail"]
    else:
        assert_crs_refused(r, why)
    assert stored(api) == before


@pytest.mark.parametrize("path,param", [("zones/items", "crs"), ("zones/items", "bbox-crs"), ("reports/items", "crs"),
                                        ("reports/items", "bbox-crs"), ("zones/items/QS-01", "crs"), ("reports/items/1", "crs")])
@pytest.mark.parametrize("crs", ["IAU_2015:30100", "EPSG:4547", MOON_WKT, "x" * 20_000])
def test_ogc_offers_crs84_only(api, path, param, crs):
    r = api["client"].get(f"/ogc/collections/{path}", params={param: crs, "bbox": "113.9,22.8,114.2,23.1"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, r.text
    detail = r.json()["detail"]
    assert CRS84 in detail and len(detail) < 600


# ------------------------------------------------------------------ admin uploads: the files' declared CRS
FILE_CRSS = ["IAU_2015:30100", MOON_WKT, "+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80", ENGINEERING]


def _gpkg(layer: gpd.GeoDataFrame, crs) -> bytes:
    buf = io.BytesIO()
    layer.set_crs(crs, allow_override=True).to_file(buf, driver="GPKG", engine="pyogrio")
    return buf.getvalue()


@pytest.mark.parametrize("kind,source", [("boundaries", "villages.geojson"), ("facilities", "facilities.geojson")])
@pytest.mark.parametrize("crs", FILE_CRSS, ids=[c[:30] for c in FILE_CRSS])
def test_admin_uploads_with_a_hostile_declared_crs(api, kind, source, crs):
    body = _gpkg(gpd.read_file(DATA_DIR / source).head(5), crs)
    r = api["client"].put(f"/v1/admin/{kind}", content=body, params={"dry_run": "true"},
                          headers={**api["admin"], "Content-Type": "application/geopackage+sqlite3"})
    assert_crs_refused(r)


# ------------------------------------------------------------------ degrees in a projected CRS
@pytest.mark.parametrize("crs", ["EPSG:4547", "EPSG:32650", "EPSG:3857"])
def test_degrees_given_as_projected_coordinates_are_422(api, crs):
    c = api["client"]
    r = c.get("/v1/lookup", params={"lon": LON, "lat": LAT, "crs": crs})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert DEGREES in r.json()["detail"]
    r = c.post("/v1/lookup", json={"crs": crs, "points": [{"lon": LON, "lat": LAT, "id": "a"}]})
    assert r.status_code == 422 and DEGREES in r.json()["detail"], r.text
    assert r.json()["errors"][0]["id"] == "a"
    before = stored(api)
    for headers in ({}, api["staff"]):
        r = c.post("/v1/reports", json=report(crs), headers=headers)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert DEGREES in r.json()["detail"]
    assert stored(api) == before


def test_real_projected_coordinates_still_work(api, zone_index):
    # The control: the same endpoints, with the metres the CRS means, place the point in its zone.
    lon, lat = inner(zone_index, "QS-12")
    x, y = (float(v) for v in from_wgs84(lon, lat, "EPSG:4547"))
    c = api["client"]
    r = c.get("/v1/lookup", params={"lon": x, "lat": y, "crs": "EPSG:4547", "out_crs": "EPSG:32650"})
    assert r.status_code == 200 and r.json()["zone"]["id"] == "QS-12", r.text
    r = c.post("/v1/lookup", json={"crs": "EPSG:4547", "points": [[x, y]]})
    assert r.status_code == 200 and r.json()["results"][0]["zone"]["id"] == "QS-12", r.text
    before = stored(api)
    r = c.post("/v1/reports", json=report("EPSG:4547", x, y), headers=api["staff"])
    assert r.status_code == 201 and r.json()["zone_id"] == "QS-12", r.text
    assert stored(api) == before + 1



# ------------------------------------------------------------------ bulk import: rows with a hostile CRS or degrees
@pytest.mark.parametrize("columnar", [True, False], ids=["column route", "row route"])
def test_import_rejects_hostile_and_misplaced_rows_and_keeps_the_rest(api, zone_index, tmp_path, columnar):
    lon, lat = inner(zone_index, "ZMT-03")
    x, y = (float(v) for v in from_wgs84(lon, lat, "EPSG:4547"))
    tag = f"imp-{columnar}"
    rows = [  # (lon, lat, crs, what happens)
        (lon, lat, "", "stored"),
        (x, y, "EPSG:4547", "stored"),
        (LON, LAT, "EPSG:4547", DEGREES),
        (LON, LAT, "EPSG:32650", DEGREES),
        (LON, LAT, "IAU_2015:30100", "not on the Earth"),
        (x, y, "+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80", "around Dongguan"),
        (x, y, "EPSG:5703", "vertical"),
    ]
    src = tmp_path / "reports.csv"
    src.write_text("category,lon,lat,crs,description,idempotency_key\n" + "".join(
        f"06010,{a!r},{b!r},{c},row {i},{tag}-{i}\n" for i, (a, b, c, _) in enumerate(rows)), encoding="utf-8")
    before = stored(api)
    res = import_file(api["services"].reports, src, tmp_path / "rejects.csv", columnar=columnar)
    assert (res.inserted, res.rejected) == (2, 5), str(res)
    assert stored(api) == before + 2
    rejects = {int(r["row"]): r["reason"] for r in csv_rows(tmp_path / "rejects.csv")}
    for i, (_, _, _, what) in enumerate(rows):
        if what == "stored":
            assert i + 1 not in rejects
        else:
            assert what in rejects[i + 1], rejects[i + 1]
    got = {r.description: r.zone_id for r in api["services"].reports.search(zone_id="ZMT-03", limit=50)[0]}
    assert got["row 0"] == got["row 1"] == "ZMT-03"


def csv_rows(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
