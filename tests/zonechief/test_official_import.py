"""Importing an official village layer as a boundary generation, end to end: a 三调-style Shapefile in EPSG:4547
with a GBK .dbf through `zonechief boundaries import` (columns guessed, shown, confirmed) and a GeoPackage in
EPSG:4490 through PUT /v1/admin/boundaries; bad layers refused with every problem listed and nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from store.keys import create_key
from tests.helpers import inner, pg_database
from tests.official_fixture import official_frame, shipped_villages, write_gpkg, write_shapefile
from zonechief.reports import Location, ReportIn
from zonechief.services import Services

ZONECHIEF = Path(sys.executable).with_name("zonechief")


def run(args, url, input=None):
    env = {**os.environ, "ZONECHIEF_DATABASE_URL": url}
    return subprocess.run([str(ZONECHIEF), *args], capture_output=True, text=True, timeout=300, env=env, input=input)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with pg_database() as url:
        s = Services(database_url=url)
        assert s.db is not None
        yield url, s
        s.db.engine.dispose()


def generations(url, cli: bool = False):
    """The generations as `zonechief boundaries generations --json` lists them (read directly unless `cli`:
    a process costs seconds)."""
    if cli:
        out = run(["boundaries", "generations", "--json"], url)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text("SELECT id, valid_from FROM boundary_generations ORDER BY id"))]
    finally:
        eng.dispose()


def test_a_gbk_shapefile_in_4547_is_imported_after_the_columns_are_confirmed(store, tmp_path, zone_index):
    url, _ = store
    before = generations(url)
    shp = write_shapefile(tmp_path, cpg=False)  # GBK without a .cpg, as many exports come
    refused = run(["boundaries", "import", str(shp)], url, input="n\n")
    assert refused.returncode != 0 and "ZLDWDM" in refused.stderr and "import with these columns?" in refused.stderr
    assert len(generations(url)) == len(before)  # answering no writes nothing
    done = run(["boundaries", "import", str(shp)], url, input="y\n")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["boundaries"]
    after = generations(url, cli=True)
    assert len(after) == len(before) + 1 and after[-1]["in_force"] and after[-1]["id"] == summary["generation"]
    assert summary["diff"]["villages"]["after"] == len(zone_index.units)
    # Names came through the GBK .dbf intact, codes are 12 digits, each village kept its zone.
    fresh = Services(database_url=url)
    try:
        assert fresh.db is not None and fresh.index.generation == summary["generation"]
        a = fresh.index.lookup(*inner(zone_index, "QS-07"))
        v = zone_index.units[zone_index.units.zone_id == "QS-07"].iloc[0]
        assert (a.zone_id, a.village_code, a.village_name) == ("QS-07", v.unit_id, v.village_name)
    finally:
        fresh.db.engine.dispose()


@pytest.mark.parametrize("damage, expected", [
    ("short_code", "441900105"),
    ("duplicate", "is used by features"),
    ("hole", "not covered"),
])
def test_a_bad_official_layer_is_refused_with_its_problems_and_nothing_is_written(store, tmp_path, damage, expected):
    url, _ = store
    before = generations(url)
    v = shipped_villages()
    frame = official_frame(v)
    if damage == "short_code":
        frame.loc[3, "ZLDWDM"] = frame.loc[3, "ZLDWDM"][:11]
        frame.loc[5, "ZLDWDM"] = "44190010"
    elif damage == "duplicate":
        frame.loc[4, "ZLDWDM"] = frame.loc[2, "ZLDWDM"]
    else:  # a village left out: part of its town is not covered
        frame = frame.drop(index=7).reset_index(drop=True)
    shp = write_shapefile(tmp_path, frame)
    out = run(["boundaries", "import", str(shp), "--yes"], url)
    assert out.returncode != 0 and expected in out.stderr, out.stderr
    assert "nothing" in out.stderr.lower()
    assert generations(url) == before


def test_the_admin_api_takes_a_gpkg_in_4490_and_a_scheduled_generation(store, tmp_path, zone_index):
    url, _ = store
    gpkg = write_gpkg(tmp_path)
    app = create_app(database_url=url)
    services = app.state.services
    with services.db.sessions.begin() as ses:
        key = create_key(ses, "admin", "test")[1]
    with TestClient(app) as c:
        h = {"X-API-Key": key, "Content-Type": "application/geopackage+sqlite3"}
        dry = c.put("/v1/admin/boundaries?dry_run=true", content=gpkg.read_bytes(), headers=h)
        assert dry.status_code == 200, dry.text
        assert dry.json()["summary"]["boundaries"]["open_reports_changing_zone"] == 0
        later = c.put("/v1/admin/boundaries?valid_from=2099-01-01", content=gpkg.read_bytes(), headers=h)
        assert later.status_code == 200, later.text
        b = later.json()["summary"]["boundaries"]
        assert b["takes_effect"] == "scheduled"
        assert datetime.fromisoformat(b["valid_from"]) == datetime(2098, 12, 31, 16, tzinfo=timezone.utc)  # Shanghai midnight
        gens = c.get("/v1/boundaries/generations").json()
        assert gens[-1]["id"] == b["generation"] and gens[-1]["activated_at"] is None and not gens[-1]["in_force"]
        # Valid from 2020, with a report filed since under the boundaries then in force: that is history.
        services.reports.create(ReportIn(source="gps", category="06010", location=Location(lon=inner(zone_index, "QS-02")[0],
                                                                                          lat=inner(zone_index, "QS-02")[1])))
        past = c.put("/v1/admin/boundaries?valid_from=2020-01-01", content=gpkg.read_bytes(), headers=h)
        assert past.status_code == 422 and "rewrite history" in past.json()["detail"]
        assert len(c.get("/v1/boundaries/generations").json()) == len(gens)
        allowed = c.put("/v1/admin/boundaries?valid_from=2020-01-01&rewrite_history=true", content=gpkg.read_bytes(), headers=h)
        assert allowed.status_code == 200
        b = allowed.json()["summary"]["boundaries"]
        since_2020 = [g for g in gens if datetime(2020, 1, 1, tzinfo=timezone.utc) < datetime.fromisoformat(g["valid_from"])
                      <= datetime.now(timezone.utc)]  # imported by the tests before: they stay in force after theirs
        assert b["takes_effect"] == ("window" if since_2020 else "now")
        assert b["rewrite_history"]["reports_in_window"] == 1
        g = {x["id"]: x for x in c.get("/v1/boundaries/generations").json()}[b["generation"]]
        assert g["rewrite_history"] and g["valid_from"].startswith("2019-12-31T16:00")
