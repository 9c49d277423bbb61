"""Boundary generations over HTTP, on both stores: the list, lookups and layers as of an instant (/v1/lookup,
/v1/lookup batch, /v1/zones, /v1/villages, OGC API Features, /maps/zones), the diff as JSON and as a map, and
reports naming the generation they were assigned under."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from gis.shipped import DATA_DIR
from store.keys import create_key


@pytest.fixture(scope="module")
def api(store_url, tmp_path_factory, zone_index):
    """A store with two generations: the shipped one, then one moving a Zhangmutou village to a neighbour zone."""
    app = create_app(database_url=store_url)
    s = app.state.services
    with s.db.sessions.begin() as ses:
        admin = create_key(ses, "admin", "test")[1]
        staff = create_key(ses, "staff", "test")[1]
    counts = zone_index.units.zone_id.value_counts()
    zone = sorted(z for z, n in counts.items() if n >= 2 and z.startswith("ZMT"))[0]
    mover = zone_index.units[zone_index.units.zone_id == zone].iloc[0]
    target = sorted(zone_index.units[(zone_index.units.zone_id != zone)
                                     & zone_index.units.geometry.touches(mover.geometry)].zone_id)[0]
    fc = json.loads((DATA_DIR / "villages.geojson").read_text(encoding="utf-8"))
    for f in fc["features"]:
        if f["properties"]["code"] == mover.unit_id:
            f["properties"]["zone_id"] = target
    p = mover.geometry.buffer(-0.001).representative_point()
    with TestClient(app) as c:
        first = s.index.generation
        filed = c.post("/v1/reports", json={"category": "06010", "source": "gps",
                                            "location": {"lon": p.x, "lat": p.y, "crs": "wgs84"}},
                       headers={"X-API-Key": staff})
        assert filed.status_code == 201, filed.text
        between = datetime.now(timezone.utc)
        r = c.put("/v1/admin/boundaries", content=json.dumps(fc, ensure_ascii=False).encode(),
                  headers={"X-API-Key": admin, "Content-Type": "application/geo+json"})
        assert r.status_code == 200, r.text
        yield {"c": c, "s": s, "zone": zone, "target": target, "code": mover.unit_id, "p": (p.x, p.y), "first": first,
               "second": r.json()["summary"]["boundaries"]["generation"], "between": between,
               "report": filed.json()["id"], "staff": staff}


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_the_generations_are_listed_with_the_one_in_force(api):
    gens = api["c"].get("/v1/boundaries/generations").json()
    ids = [g["id"] for g in gens]
    assert ids[-2:] == [api["first"], api["second"]]
    assert [g["in_force"] for g in gens[-2:]] == [False, True]
    assert gens[-1]["source"] == "upload" and gens[-1]["activated_at"] is not None


def test_lookups_answer_as_of_an_instant(api):
    c, (lon, lat) = api["c"], api["p"]
    now = c.get("/v1/lookup", params={"lon": lon, "lat": lat}).json()
    before = c.get("/v1/lookup", params={"lon": lon, "lat": lat, "at": iso(api["between"] - timedelta(seconds=1))}).json()
    assert now["zone"]["id"] == api["target"] and before["zone"]["id"] == api["zone"]
    batch = c.post("/v1/lookup", params={"at": iso(api["between"] - timedelta(seconds=1))},
                   json=[{"lon": lon, "lat": lat}]).json()
    assert batch["results"][0]["zone"]["id"] == api["zone"]


def test_layers_answer_as_of_an_instant(api):
    c, code = api["c"], api["code"]
    old_at = iso(api["between"] - timedelta(seconds=1))

    def zone_of(fc):
        return next(f["properties"]["zone_id"] for f in fc["features"] if f["properties"]["unit_id"] == code)

    assert zone_of(c.get("/v1/villages").json()) == api["target"]
    assert zone_of(c.get("/v1/villages", params={"at": old_at}).json()) == api["zone"]
    zones_then = c.get("/v1/zones", params={"at": old_at}).json()
    zones_now = c.get("/v1/zones").json()
    area = {f["properties"]["zone_id"]: len(json.dumps(f["geometry"])) for f in zones_now["features"]}
    area_then = {f["properties"]["zone_id"]: len(json.dumps(f["geometry"])) for f in zones_then["features"]}
    assert area[api["zone"]] != area_then[api["zone"]]  # the zone lost a village
    ogc = c.get(f"/ogc/collections/villages/items/{code}", params={"at": old_at})
    assert ogc.status_code == 200 and ogc.json()["properties"]["zone_id"] == api["zone"]
    assert c.get(f"/ogc/collections/villages/items/{code}").json()["properties"]["zone_id"] == api["target"]
    assert c.get("/ogc/collections/zones/items", params={"at": "yesterday"}).status_code == 400
    page = c.get("/maps/zones", params={"at": old_at})
    assert page.status_code == 200


def test_the_diff_says_what_moved(api):
    c = api["c"]
    d = c.get("/v1/boundaries/diff").json()
    assert (d["from"], d["to"]) == (api["first"], api["second"])
    v = next(x for x in d["villages"] if x["id"] == api["code"])
    assert "moved" in v["tags"] and (v["zone_old"], v["zone_new"]) == (api["zone"], api["target"])
    same = c.get("/v1/boundaries/diff", params={"from": api["second"], "to": api["second"]}).json()
    assert all(x["status"] == "same" for x in same["villages"])
    assert c.get("/v1/boundaries/diff", params={"from": 999}).status_code == 404
    page = c.get("/maps/boundaries/diff")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers and api["code"] in page.text


def test_reports_name_their_generation_and_moved_with_the_zone(api):
    c = api["c"]
    r = c.get(f"/v1/reports/{api['report']}", headers={"X-API-Key": api["staff"]}).json()
    assert r["zone_id"] == api["target"] and r["boundary_generation"] == api["second"]
    assert "re-assigned" in r["history"][-1]["note"]
