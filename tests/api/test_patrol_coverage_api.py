"""GET /v1/patrols/coverage and /maps/patrols (issue 17) over HTTP on SQLite and PostGIS: synthetic patrols
imported through store.patrols_repo's writer, demo reports as demand; the answer equals gis.patrol_coverage
run on the same inputs outside the store, in JSON and as GeoJSON layers; staff only; bad filters are 422."""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from gis import hotspots
from gis.localtime import LOCAL
from gis.patrol_coverage import CLASSES, CoverageParams, coverage
from store.keys import create_key
from store.map_aggregates import report_conditions

SINCE, UNTIL = "2026-11-02", "2026-11-03"  # local days; until is the whole of 11-03
T0, T1 = datetime(2026, 11, 2, tzinfo=LOCAL), datetime(2026, 11, 4, tzinfo=LOCAL)


def _seed_reports(reports, n, now, days):
    """zonechief.bulk.seed_demo, with the demo reports packed into the last `days` days."""
    from zonechief.bulk import Intake, import_intakes
    from zonechief.demo import generate_reports
    from zonechief.reports import Location, ReportIn

    intakes = []
    for i, d in enumerate(generate_reports(n, seed=5, now=now, days=days, index=reports.index,
                                           facilities=reports.facilities), start=1):
        data = ReportIn(source=d["source"], category=d["category"], description=d["description"],
                        location=Location(**d["location"]), reporter=d["reporter"], photo_url=d["photo_url"],
                        idempotency_key=d["idempotency_key"], created_at=d["created_at"])
        intakes.append(Intake(i, data, history=d["history"], feedback=d["feedback"]))
    import_intakes(reports, intakes, actor="demo")


@pytest.fixture(scope="module")
def live(store_url, zone_index):
    from zonechief.patrols import import_frame
    from zonechief.patrols_synthetic import synthetic_tracks

    app = create_app(index=zone_index, database_url=store_url)
    svc = app.state.services
    with svc.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "coverage staff")
        _, public = create_key(s, "public", "a client")
    _seed_reports(svc.reports, 1500, now=datetime(2026, 11, 4, 12, tzinfo=LOCAL), days=3)
    frame = synthetic_tracks(zone_index, days=2, people=4, fix_s=20, seed=3, start=date(2026, 11, 2))
    res = import_frame(svc.db, zone_index, frame, name="synthetic test", actor="test", synthetic=True)
    assert len(res.imported) == 16 and not res.rejected, res.as_dict()
    with TestClient(app) as client:
        yield {"client": client, "svc": svc, "frame": frame, "staff": {"X-API-Key": staff},
               "public": {"X-API-Key": public}}


def _get(live, path="/v1/patrols/coverage", **params):
    params = {"since": SINCE, "until": UNTIL, "permutations": 199, **params}
    return live["client"].get(path, params=params, headers=live["staff"])


def _expected(live, zone_index, town=None):
    """gis.patrol_coverage on the synthetic frame itself (not read back) and the store's reports."""
    svc = live["svc"]
    zones = zone_index.zones if town is None else zone_index.zones[zone_index.zones.town == town]
    scope = None if town is None else list(zones.zone_id)
    lon, lat, _ = svc.db.map_aggregates.points(report_conditions(T0, T1, (), (), scope), False)
    p = CoverageParams(permutations=199)
    return coverage(live["frame"], lon, lat, zone_index, since=T0, until=T1, params=p, cells=hotspots.grid(zones, 250))


def test_staff_only(live):
    c = live["client"]
    assert c.get("/v1/patrols/coverage").status_code == 401
    r = c.get("/v1/patrols/coverage", headers=live["public"])
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/maps/patrols", headers=live["public"]).status_code == 403


def test_json_equals_the_analysis_on_the_same_inputs(live, zone_index):
    r = _get(live)
    assert r.status_code == 200, r.text
    out = r.json()
    exp = _expected(live, zone_index)
    s = out["summary"]
    assert s["fixes"] == exp.summary["fixes"] > 1000
    assert s["people"] == 4 and s["patrols"] == exp.summary["patrols"] == 16  # 2 shifts × 2 days × 4
    for k in ("stops", "dose_stops", "long_stops", "windows", "hot_spots", "reports", "reports_within", *CLASSES):
        assert s[k] == exp.summary[k], k
    assert s["windows"] == 10  # 08–18 local in 2-hour windows, two days
    assert s["dose_share"] == pytest.approx(exp.summary["dose_share"])
    assert s["distance_km"] == pytest.approx(exp.summary["distance_km"], rel=1e-6)
    zones = {z["zone_id"]: z for z in out["zones"]}
    assert set(zones) == set(zone_index.zones.zone_id)
    for z in exp.zones.itertuples():
        assert zones[z.zone_id]["visits"] == z.visits and zones[z.zone_id]["reports"] == z.reports
        assert zones[z.zone_id]["dwell_min"] == pytest.approx(z.dwell_min, abs=1e-3)
    people = {p["person_id"]: p for p in out["people"]}
    assert set(people) == set(live["frame"]["person_id"])
    assert all(p["patrols"] == 4 and p["zones_covered"] >= 1 and p["distance_km"] > 0 for p in people.values())
    assert sum(p["patrol_hours"] for p in people.values()) == pytest.approx(s["patrol_hours"], rel=1e-6)
    d = out["definitions"]
    assert d["parameters"]["dose_min_s"] == 600 and set(d["classes"]) == set(CLASSES)
    assert len(out["windows"]) == 10 and out["windows"][0]["start"].startswith("2026-11-02T00:00:00")
    assert all(c["class"] in CLASSES for c in out["cells"])


def test_town_and_zone_filters(live, zone_index):
    r = _get(live, town="樟木头镇")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["summary"]["fixes"] == 0 and out["people"] == []  # the synthetic inspectors patrol Qishi
    assert {z["zone_id"][:3] for z in out["zones"]} == {"ZMT"}
    assert out["summary"]["reports"] == _expected(live, zone_index, "樟木头镇").summary["reports"]
    r = _get(live, zone="QS-01")
    assert r.status_code == 200 and [z["zone_id"] for z in r.json()["zones"]] == ["QS-01"]


@pytest.mark.parametrize("params, words", [
    ({"zone": "NOPE-1"}, "no zone"), ({"town": "Atlantis"}, "no town"), ({"category": "99999"}, "unknown category"),
    ({"since": "2026-11-05", "until": "2026-11-01"}, "before"), ({"cell_m": "5"}, "cell_m"),
])
def test_bad_filters_are_422(live, params, words):
    r = _get(live, **params)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert words in r.text


def test_geojson_layers(live, zone_index):
    exp = _expected(live, zone_index)
    for layer, n in (("cells", None), ("tracks", len(exp.tracks)), ("stops", len(exp.stops))):
        r = _get(live, format="geojson", layer=layer)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
        fc = r.json()
        assert fc["type"] == "FeatureCollection"
        if n is not None:
            assert len(fc["features"]) == n > 0
    cells = _get(live, format="geojson").json()["features"]
    props = [f["properties"] for f in cells]
    assert all(f["geometry"]["type"] == "Polygon" for f in cells)
    assert sum(p["reports"] for p in props) == int(exp.cells["reports"].sum()) > 0
    assert {p["class"] for p in props} <= set(CLASSES)
    lon, lat = np.array([f["geometry"]["coordinates"][0][0] for f in cells]).T
    assert (113.8 < lon).all() and (lon < 114.4).all() and (22.8 < lat).all() and (lat < 23.2).all()


def test_map_page(live):
    r = _get(live, "/maps/patrols")
    assert r.status_code == 200, r.text[:500]
    html = r.text
    for words in ("Patrol coverage", "Under-patrolled hot spot", "Over-patrolled quiet area", "Well covered",
                  "10–16 min stop"):
        assert words in html, words
    assert "script-src 'self' 'sha256-" in r.headers["content-security-policy"]
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert live["client"].get("/maps/patrols").status_code == 401
