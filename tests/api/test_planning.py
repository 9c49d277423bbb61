"""GET /v1/plan/stations and /maps/stations on both stores: demand from the maps' filters, sites with zones,
before/after coverage, solver verdicts, and 422s with the reason for questions that cannot be asked."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from gis.localtime import LOCAL

pytestmark = pytest.mark.filterwarnings("ignore:Constructing LpVariable:DeprecationWarning")
NOW = datetime(2025, 9, 30, 12, tzinfo=LOCAL)
QS = {"town": "企石镇", "grid": 500}  # one town on a coarse grid keeps each solve well under a second


@pytest.fixture(scope="module")
def client(store_url, index):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from zonechief.bulk import seed_demo

    app = create_app(index=index, database_url=store_url)
    seed_demo(app.state.services.reports, 1500, seed=5, now=NOW)
    with TestClient(app) as c:
        yield c


def _qs_points(client, **flt):
    """The matching reports inside 企石镇, read independently of the planner (the maps' store query)."""
    from maps.aggregate import ReportFilter, fetch_points

    s = client.app.state.services
    lon, lat, _ = fetch_points(s.db, s.index, ReportFilter(town="企石镇", **flt))
    return lon, lat


def test_mclp_adds_sites_with_zones_and_more_coverage(client, index):
    r = client.get("/v1/plan/stations", params={**QS, "add": 2, "radius": 1000})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["model"] == "mclp" and j["status"] == "optimal" and j["proven_optimal"] is True and j["gap"] <= 1e-6
    assert j["solver"] == "HiGHS" and len(j["sites"]) == 2 and len(j["existing"]) == 5
    lon, lat = _qs_points(client)
    assert j["n_reports"] == len(lon) == j["before"]["demand"] == j["after"]["demand"]
    assert j["after"]["covered"] > j["before"]["covered"]
    assert j["after"]["covered"] == pytest.approx(j["objective"])
    for s in j["sites"]:
        a = index.lookup(s["lon"], s["lat"])
        assert a.zone_id == s["zone_id"] and s["zone_id"].startswith("QS-") and a.town == "企石镇"
    assert j["parameters"]["add"] == 2 and j["parameters"]["town"] == "企石镇"


def test_pmedian_lowers_mean_distance_and_lscp_covers_all(client):
    p = client.get("/v1/plan/stations", params={**QS, "model": "pmedian", "add": 3}).json()
    assert p["proven_optimal"] and p["after"]["mean_cost"] < p["before"]["mean_cost"]
    assert p["objective"] == pytest.approx(p["after"]["mean_cost"])
    lscp = client.get("/v1/plan/stations", params={**QS, "model": "lscp", "radius": 1500}).json()
    assert lscp["status"] in ("optimal", "feasible", "infeasible")
    if lscp["status"] != "infeasible":
        assert lscp["after"]["covered"] == lscp["after"]["demand"] and lscp["uncovered_cells"] == 0
        assert lscp["objective"] == len(lscp["sites"]) + len(lscp["existing"])


def test_filters_are_the_maps_filters(client):
    """category/since/until select the same reports as the maps' store query."""
    params = {**QS, "category": "06010", "since": "2025-07-01", "until": "2025-09-30"}
    j = client.get("/v1/plan/stations", params=params).json()
    lon, _ = _qs_points(client, categories=("06010",), since=datetime(2025, 7, 1, tzinfo=LOCAL),
                        until=datetime(2025, 10, 1, tzinfo=LOCAL))
    assert 0 < j["n_reports"] == len(lon) < client.get("/v1/plan/stations", params=QS).json()["n_reports"]


def test_geojson_layers(client):
    r = client.get("/v1/plan/stations", params={**QS, "add": 1, "format": "geojson"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    g = r.json()
    roles = [f["properties"]["role"] for f in g["features"]]
    assert roles.count("existing") == 5 and roles.count("proposed") == 1
    assert g["properties"]["status"] == "optimal"
    unc = [f for f in g["features"] if f["properties"]["role"] == "uncovered_demand"]
    assert len(unc) == g["properties"]["uncovered_cells"]
    for f in g["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 113.9 < lon < 114.2 and 22.8 < lat < 23.2


@pytest.mark.parametrize("params, words", [
    ({"add": 100000}, "candidate sites"),
    ({"radius": 0}, "radius must be"),
    ({"radius": -50, "model": "lscp"}, "radius must be"),
    ({"since": "2001-01-01", "until": "2001-01-02"}, "no demand"),
    ({"add": 0, "model": "pmedian"}, "at least 1"),
    ({"town": "北京"}, "town"),
])
def test_bad_questions_are_422_with_the_reason(client, params, words):
    r = client.get("/v1/plan/stations", params={**QS, **params})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]


def test_stations_map_page(client):
    r = client.get("/maps/stations", params={**QS, "add": 2})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    page = r.text
    for words in ("Proposed sites", "Existing stations", "Uncovered demand cells", "Station siting",
                  "positions are illustrative", "Proposed coverage"):  # layer names and legend (JSON-escaped Chinese)
        assert words in page
    assert "cdn" not in page.lower() and "https://" not in page.split("<body")[0].lower()


def test_cli_plan_stations(store_url, client, tmp_path):
    """`zonechief plan stations --json --out` (a real process on the same store) gives the API's answer."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "ZONECHIEF_DATABASE_URL": store_url}
    out = tmp_path / "plan.geojson"
    cmd = [sys.executable, "-m", "zonechief.cli", "plan", "stations", "--add", "2", "--radius", "1000",
           "--town", "企石镇", "--grid", "500"]
    res = subprocess.run([*cmd, "--json", "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    j = json.loads(res.stdout)
    api = client.get("/v1/plan/stations", params={**QS, "add": 2, "radius": 1000}).json()
    assert j["after"]["covered"] == api["after"]["covered"] and j["status"] == "optimal"
    assert {f["properties"]["role"] for f in json.loads(out.read_text())["features"]} >= {"existing", "proposed"}
    assert np.isfinite(j["objective"])
    text = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "within 1000 m: before" in text.stdout and "QS-" in text.stdout
    bad = subprocess.run([*cmd[:-4], "--radius", "0"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "radius must be" in bad.stderr
