"""POST /v1/patrols and GET /v1/patrols (issue 17) through HTTP on SQLite and PostGIS: staff only, GPX/CSV/JSON
uploads answered per track (201), 422 with the reasons when nothing can be imported."""
from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from store.keys import create_key
from tests.zonechief.test_patrols_import import T0, csv, gpx, walk


@pytest.fixture(scope="module")
def live(store_url, zone_index):
    app = create_app(index=zone_index, database_url=store_url)
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "patrol staff")
        _, public = create_key(s, "public", "a client")
    with TestClient(app) as client:
        yield {"client": client, "staff": {"X-API-Key": staff}, "public": {"X-API-Key": public}}


def test_only_staff_may_post_or_list(live, zone_index):
    t, x, y = walk(zone_index)
    body = csv(zip(["API-0"] * 20, t, x, y))
    c = live["client"]
    assert c.post("/v1/patrols", content=body, headers={"content-type": "text/csv"}).status_code == 401
    r = c.post("/v1/patrols", content=body, headers={"content-type": "text/csv", **live["public"]})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/v1/patrols", headers=live["public"]).status_code == 403


def test_a_multipart_upload_is_answered_per_track_and_listed(live, zone_index):
    good, bad = "API-1", "API-2"
    t, x, y = walk(zone_index)
    files = [("file", ("day.gpx", gpx([(good, t, x, y), (bad, t, [v + 0.05 * (i == 10) for i, v in enumerate(x)], y)]),
                       "application/gpx+xml")),
             ("file", ("junk.gpx", b"no xml here", "application/gpx+xml"))]
    r = live["client"].post("/v1/patrols", files=files, data={"team": "QS-INSP"}, headers=live["staff"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["imported"] == 1 and out["tracks"][0]["person_id"] == good and out["points"] == 20
    assert "150 km/h" in out["rejected_tracks"][0]["reasons"][0]
    assert "not a GPX file" in [f for f in out["files"] if f["name"] == "junk.gpx"][0]["error"]
    r = live["client"].get("/v1/patrols", params={"person_id": good, "geometry": "true"}, headers=live["staff"])
    assert r.status_code == 200
    [p] = r.json()["patrols"]
    assert p["team"] == "QS-INSP" and p["n_points"] == 20 and p["imported_by"] == "api:patrol staff"
    assert p["geometry"]["type"] == "LineString" and len(p["geometry"]["coordinates"]) == 20


def test_json_points_and_the_time_filter(live, zone_index):
    start = T0 + timedelta(days=3)
    t, x, y = walk(zone_index, start=start)
    pts = [{"time": a.replace(tzinfo=None).isoformat(), "lon": b, "lat": c} for a, b, c in zip(t, x, y)]  # local time
    r = live["client"].post("/v1/patrols", json={"person_id": "API-3", "crs": "wgs84", "points": pts},
                            headers=live["staff"])
    assert r.status_code == 201, r.text
    assert r.json()["tracks"][0]["started_at"] == start.astimezone(timezone.utc).isoformat()  # 09:00 local = 01:00 UTC
    day = start.date().isoformat()
    r = live["client"].get("/v1/patrols", params={"since": day, "until": day, "person_id": "API-3"},
                           headers=live["staff"])
    assert r.json()["total"] == 1
    r = live["client"].get("/v1/patrols", params={"since": "2026-11-06", "person_id": "API-3"}, headers=live["staff"])
    assert r.json()["total"] == 0


def test_nothing_valid_is_422_with_the_reasons(live, zone_index):
    t, x, y = walk(zone_index)
    body = csv(zip(["API-4"] * 20, t, [v + 1 for v in x], y))
    r = live["client"].post("/v1/patrols", content=body, headers={"content-type": "text/csv", **live["staff"]})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert "outside both towns" in p["detail"] and p["report"]["rejected_tracks"][0]["person_id"] == "API-4"
    r = live["client"].post("/v1/patrols", json={"points": "no"}, headers=live["staff"])
    assert r.status_code == 422
    r = live["client"].post("/v1/patrols", content=b"x", headers={"content-type": "image/png", **live["staff"]})
    assert r.status_code == 415


def test_dry_run_is_200_and_stores_nothing(live, zone_index):
    t, x, y = walk(zone_index)
    body = csv(zip(["API-5"] * 20, t, x, y))
    r = live["client"].post("/v1/patrols?dry_run=true", content=body,
                            headers={"content-type": "text/csv", **live["staff"]})
    assert r.status_code == 200 and r.json()["imported"] == 1 and r.json()["tracks"][0]["patrol_id"] is None
    assert live["client"].get("/v1/patrols", params={"person_id": "API-5"}, headers=live["staff"]).json()["total"] == 0
