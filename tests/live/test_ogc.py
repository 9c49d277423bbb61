"""OGC API – Features at /ogc, read by GDAL's OAPIF driver (through pyogrio) from a real server, on both backends.

pyogrio reads with use_arrow=True: the Arrow path releases the GIL while GDAL fetches pages, which
the in-process server thread needs (the row-by-row path holds it and would deadlock).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pyogrio
import pytest
import shapely

from api.app import create_app
from api.ogc import CONFORMANCE, CRS84
from tests.helpers import LiveServer
from zonechief.bulk import seed_demo
from zonechief.reports import ReportIn

PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
PHONE = "13987654321"
NAME = "欧阳测试员"
N_DEMO = 1100  # more than one full page of 1000


class Recorder:
    """ASGI wrapper noting each request's path and query, to see what GDAL asked for."""

    def __init__(self, app):
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.seen.append((scope["path"], scope["query_string"].decode()))
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def live(store_url, zone_index):
    app = create_app(database_url=store_url)
    services = app.state.services
    assert seed_demo(services.reports, N_DEMO, seed=11).inserted > 1000
    g = zone_index.zones.set_index("zone_id").geometry["QS-04"].buffer(-0.002).representative_point()
    mine, _ = services.reports.create(ReportIn(source="gps", category="06010", location={"lon": g.x, "lat": g.y},
                                               reporter={"name": NAME, "phone": PHONE}))
    rec = Recorder(app)
    # GDAL gives up instead of waiting forever should the server stop answering.
    pyogrio.set_gdal_config_options({"GDAL_HTTP_TIMEOUT": "60"})
    with LiveServer(rec) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        yield {"client": client, "services": services, "url": srv.url, "oapif": f"OAPIF:{srv.url}/ogc",
               "rec": rec, "mine": mine.id}
    pyogrio.set_gdal_config_options({"GDAL_HTTP_TIMEOUT": None})


def read(live, layer, **kw):
    return pyogrio.read_dataframe(live["oapif"], layer=layer, use_arrow=True, **kw)


def all_reports(live):
    rows, total = live["services"].reports.search(limit=10**6)
    assert len(rows) == total
    return {r.id: r for r in rows}


def same_geometry(a, b):
    return shapely.equals_exact(a, b, tolerance=1e-9)


# ------------------------------------------------------------------ the API's own documents
def test_landing_conformance_and_collections(live):
    c = live["client"]
    land = c.get("/ogc").json()
    rels = {l["rel"]: l for l in land["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"] == live["url"] + "/openapi.json"
    assert "/ogc/collections/{collection_id}/items" in c.get(rels["service-desc"]["href"]).json()["paths"]
    assert set(c.get(rels["conformance"]["href"]).json()["conformsTo"]) >= set(CONFORMANCE)
    assert {"core", "geojson", "oas30"} == {u.rsplit("/", 1)[1] for u in CONFORMANCE}
    cols = c.get(rels["data"]["href"]).json()["collections"]
    assert [x["id"] for x in cols] == ["zones", "villages", "facilities", "reports"]
    for col in cols:
        (bbox,) = col["extent"]["spatial"]["bbox"]
        assert col["extent"]["spatial"]["crs"] == CRS84 and len(bbox) == 4 and bbox[0] < bbox[2] and bbox[1] < bbox[3]
        assert any(l["rel"] == "items" and l["type"] == GEOJSON for l in col["links"])
        assert c.get(f"/ogc/collections/{col['id']}").json() == col
    zb = c.get("/ogc/collections/zones").json()["extent"]["spatial"]["bbox"][0]
    assert zb == pytest.approx(list(live["services"].index.zones.total_bounds), abs=1e-12)
    layers = dict(pyogrio.list_layers(live["oapif"]).tolist())
    assert layers == {"zones": "Polygon", "villages": "Polygon", "facilities": "Point", "reports": "Point"}


# ------------------------------------------------------------------ GDAL against the source data
def test_gdal_reads_zones(live, zone_index):
    df = read(live, "zones")
    src = zone_index.zones.set_index("zone_id")
    assert sorted(df["id"]) == sorted(src.index) and len(df) == 29
    chiefs = zone_index.roster.chiefs_by_zone()
    for row in df.itertuples():
        s = src.loc[row.id]
        assert same_geometry(row.geometry, s.geometry), row.id
        assert (row.zone_id, row.name, row.town, row.town_code) == (row.id, s["name"], s.town, s.town_code)
        assert row.chief_id == chiefs[row.id].person_id


def test_gdal_reads_villages(live, zone_index):
    df = read(live, "villages")
    src = zone_index.units.set_index("unit_id")
    assert sorted(df["id"]) == sorted(src.index) and len(df) == len(src)
    for row in df.itertuples():
        s = src.loc[row.id]
        assert same_geometry(row.geometry, s.geometry), row.id
        assert (row.zone_id, row.village_code, row.village_name, row.town) == (s.zone_id, s.village_code,
                                                                               s.village_name, s.town)
    assert "zone_name" not in df.columns


def test_gdal_reads_facilities(live):
    df = read(live, "facilities")
    src = live["services"].facilities.set_index("facility_id")
    assert sorted(df["id"]) == sorted(src.index) and len(df) == len(src)
    for row in df.itertuples():
        s = src.loc[row.id]
        assert same_geometry(row.geometry, s.geometry), row.id
        assert (row.kind, row.name, row.service_code, row.zone_id) == (s.kind, s["name"], s.service_code, s.zone_id)


def test_gdal_reads_reports_across_pages(live):
    src = all_reports(live)
    assert len(src) > 1000
    rec = live["rec"]
    rec.seen.clear()
    df = read(live, "reports", fid_as_index=True)
    # GDAL asked for pages of 1000 and followed the next link to the rest.
    pages = [q for p, q in rec.seen if p == "/ogc/collections/reports/items" and "limit=1000" in q]
    assert len(pages) >= 2 and any("offset=1000" in q for q in pages)
    assert sorted(df.index) == sorted(src) and len(df) == len(src)
    assert not {"reporter", "reporter_name", "reporter_phone", "name", "phone"} & set(df.columns)
    for rid, row in df.iterrows():
        s = src[rid]
        assert (row.report_id, row.category, row.status, row.zone_id, row.chief_id) == (
            s.id, s.category, s.status, s.zone_id, s.chief_id)
        assert abs(row.created_at - s.created_at) <= timedelta(microseconds=500)  # GDAL keeps milliseconds
        assert same_geometry(row.geometry, s.geom), rid


@pytest.mark.parametrize("page_size", [100, 5000])
def test_gdal_paging_small_pages_and_clamped_limit(live, page_size):
    rec = live["rec"]
    rec.seen.clear()
    df = read(live, "reports", fid_as_index=True, PAGE_SIZE=page_size)
    assert sorted(df.index) == sorted(all_reports(live))
    asked = [q for p, q in rec.seen if p == "/ogc/collections/reports/items"]
    assert any(f"limit={page_size}" in q for q in asked)
    if page_size > 1000:
        # The server clamped GDAL's 5000 to 1000 and its next link carried GDAL on.
        assert any("limit=1000" in q and "offset=1000" in q for q in asked)
    else:
        assert sum(f"limit={page_size}" in q for q in asked) >= len(df) // page_size


def test_gdal_bbox_is_filtered_by_the_server(live, zone_index):
    box = (114.03, 23.05, 114.08, 23.09)
    rec = live["rec"]
    rec.seen.clear()
    zones = read(live, "zones", bbox=box)
    src = zone_index.zones
    expected = set(src.zone_id[src.intersects(shapely.box(*box))])
    assert set(zones["id"]) == expected and 0 < len(expected) < len(src)
    assert any(p == "/ogc/collections/zones/items" and "bbox=" in q for p, q in rec.seen)
    reports = read(live, "reports", bbox=box, fid_as_index=True)
    inside = {i for i, r in all_reports(live).items()
              if r.geom is not None and box[0] <= r.geom.x <= box[2] and box[1] <= r.geom.y <= box[3]}
    assert set(reports.index) == inside and inside
    body = live["client"].get("/ogc/collections/reports/items", params={"bbox": ",".join(map(str, box))}).json()
    assert body["numberMatched"] == len(inside)  # counted by the server, not by GDAL's own filter


# ------------------------------------------------------------------ raw HTTP
def test_items_paging_links(live):
    c = live["client"]
    total = len(all_reports(live))
    url, seen, pages = f"{live['url']}/ogc/collections/reports/items?limit=400", [], 0
    first = None
    while url:
        r = c.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == GEOJSON
        body = r.json()
        first = first or body
        assert body["numberMatched"] == total and body["numberReturned"] == len(body["features"]) <= 400
        datetime.fromisoformat(body["timeStamp"])
        seen += [f["id"] for f in body["features"]]
        links = {l["rel"]: l["href"] for l in body["links"]}
        if pages:
            assert "prev" in links
        url = links.get("next")
        pages += 1
    assert pages == -(-total // 400) and len(seen) == len(set(seen)) == total
    assert "prev" not in {l["rel"] for l in first["links"]}
    second = c.get("/ogc/collections/reports/items", params={"limit": 400, "offset": 400}).json()
    prev = next(l["href"] for l in second["links"] if l["rel"] == "prev")
    assert [f["id"] for f in c.get(prev).json()["features"]] == [f["id"] for f in first["features"]]


def test_limit_default_and_clamp(live):
    c = live["client"]
    assert c.get("/ogc/collections/reports/items").json()["numberReturned"] == 100
    big = c.get("/ogc/collections/reports/items", params={"limit": 5000})
    assert big.status_code == 200
    body = big.json()
    assert body["numberReturned"] == 1000 and body["numberMatched"] > 1000
    nxt = httpx.URL(next(l["href"] for l in body["links"] if l["rel"] == "next"))
    assert (nxt.params["limit"], nxt.params["offset"]) == ("1000", "1000")
    assert c.get("/ogc/collections/zones/items", params={"limit": 10**9}).json()["numberReturned"] == 29
    zones = c.get("/ogc/collections/zones/items", params={"limit": 10, "offset": 25}).json()
    assert zones["numberReturned"] == 4 and zones["numberMatched"] == 29
    assert "next" not in {l["rel"] for l in zones["links"]}


def test_single_features(live, zone_index):
    c = live["client"]
    r = c.get("/ogc/collections/zones/items/QS-02")
    assert r.status_code == 200 and r.headers["content-type"] == GEOJSON
    f = r.json()
    assert f["id"] == "QS-02" and f["type"] == "Feature"
    src = zone_index.zones.set_index("zone_id").geometry["QS-02"]
    assert same_geometry(shapely.geometry.shape(f["geometry"]), src)
    assert {l["rel"] for l in f["links"]} >= {"self", "collection"}
    rep = c.get(f"/ogc/collections/reports/items/{live['mine']}").json()
    assert rep["id"] == live["mine"] and rep["properties"]["zone_id"] == "QS-04"
    fac = live["services"].facilities.iloc[0]
    assert c.get(f"/ogc/collections/facilities/items/{fac.facility_id}").json()["properties"]["service_code"] == fac.service_code


def test_reports_carry_no_personal_data(live):
    c = live["client"]
    phones = {r.reporter_phone for r in all_reports(live).values() if r.reporter_phone}
    names = {r.reporter_name for r in all_reports(live).values() if r.reporter_name}
    assert PHONE in phones and NAME in names and len(phones) > 100
    text = c.get(f"/ogc/collections/reports/items/{live['mine']}").text
    pages = [c.get("/ogc/collections/reports/items", params={"limit": 1000, "offset": o}).text for o in (0, 1000)]
    for t in [text, *pages]:
        assert PHONE not in t and NAME not in t and "reporter" not in t
    everything = "".join(pages)
    assert str(live["mine"]) in everything and not any(p in everything for p in phones)


def test_datetime_filter_on_reports(live):
    src = all_reports(live)
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(days=30), now - timedelta(days=10)
    expected = {i for i, r in src.items() if start <= r.created_at <= end}
    q = f"{start.isoformat().replace('+00:00', 'Z')}/{end.isoformat().replace('+00:00', 'Z')}"
    body = live["client"].get("/ogc/collections/reports/items", params={"datetime": q, "limit": 1000}).json()
    assert {f["id"] for f in body["features"]} == expected and body["numberMatched"] == len(expected) > 0
    before = live["client"].get("/ogc/collections/reports/items", params={"datetime": f"../{q.split('/')[0]}"}).json()
    assert before["numberMatched"] == sum(r.created_at <= start for r in src.values())


@pytest.mark.parametrize("path,params,status", [
    ("/ogc/collections/roads", {}, 404),
    ("/ogc/collections/roads/items", {}, 404),
    ("/ogc/collections/zones/items/NOPE-99", {}, 404),
    ("/ogc/collections/reports/items/999999999", {}, 404),
    ("/ogc/collections/reports/items/abc", {}, 404),
    ("/ogc/collections/zones/items", {"bbox": "1,2,3"}, 400),
    ("/ogc/collections/zones/items", {"bbox": "a,b,c,d"}, 400),
    ("/ogc/collections/zones/items", {"bbox": "114,23,113,24"}, 400),
    ("/ogc/collections/reports/items", {"bbox": "114,95,115,96"}, 400),
    ("/ogc/collections/zones/items", {"limit": "0"}, 400),
    ("/ogc/collections/zones/items", {"limit": "many"}, 400),
    ("/ogc/collections/zones/items", {"offset": "-1"}, 400),
    ("/ogc/collections/reports/items", {"datetime": "last week"}, 400),
    ("/ogc/collections/zones/items", {"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, 400),
    ("/ogc/collections/zones/items", {"f": "html"}, 400),
])
def test_errors_are_problems(live, path, params, status):
    r = live["client"].get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM and r.json()["status"] == status and r.json()["detail"]
