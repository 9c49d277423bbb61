"""The installed `zonechief` console script, run as a subprocess on small files."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis.boundaries import METRIC
from gis.crs import wgs84_to_gcj02
from tests.helpers import pg_database, shipped_index

ZONECHIEF = Path(sys.executable).parent / "zonechief"
REPO = Path(__file__).resolve().parents[2]
VILLAGES = REPO / "data" / "boundaries" / "villages.geojson"


@cache
def inner(zone_id: str) -> tuple[float, float]:
    """A point about 100 m inside the zone, rounded to 7 decimals as a user would type it."""
    g = shipped_index().zones.set_index("zone_id").geometry[zone_id]
    b = g.buffer(-0.001)
    p = (b if not b.is_empty else g).representative_point()
    return round(p.x, 7), round(p.y, 7)


def zc(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ZONECHIEF), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_script_installed():
    assert ZONECHIEF.exists(), f"{ZONECHIEF} missing; pip install -e ."


def test_help_lists_commands():
    r = zc("--help")
    assert r.returncode == 0
    for cmd in ("serve", "lookup", "assign", "boundaries"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd


# ------------------------------------------------------------------ lookup


def test_lookup_prints_zone_and_chief():
    lon, lat = inner("ZMT-05")
    r = zc("lookup", lon, lat)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^zone\s+ZMT-05\b", r.stdout, re.M)
    assert re.search(r"^chief\s+ZMT-C05\b", r.stdout, re.M)
    assert "樟木头镇" in r.stdout


def test_lookup_gcj02():
    lon, lat = inner("QS-11")
    x, y = (float(v) for v in wgs84_to_gcj02(lon, lat))
    r = zc("lookup", x, y, "--crs", "gcj02")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^zone\s+QS-11\b", r.stdout, re.M)


def test_lookup_json():
    lon, lat = inner("QS-17")
    r = zc("lookup", lon, lat, "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["status"] == "inside"
    assert body["zone"]["id"] == "QS-17"
    assert body["chief"]["id"] == "QS-C08"
    assert body["point"] == {"lon": pytest.approx(lon), "lat": pytest.approx(lat), "crs": "wgs84"}


def test_lookup_at():
    lon, lat = inner("ZMT-03")
    assert re.search(r"^chief\s+ZMT-C10\b", zc("lookup", lon, lat, "--at", "2024-06-01").stdout, re.M)
    assert re.search(r"^chief\s+ZMT-C03\b", zc("lookup", lon, lat, "--at", "2026-01-01").stdout, re.M)


def test_lookup_bad_at_is_a_message_not_a_traceback():
    r = zc("lookup", 114.05, 23.06, "--at", "notadate")
    assert r.returncode not in (0, 3)
    assert "ISO 8601" in r.stderr and "Traceback" not in r.stderr


def test_lookup_swapped():
    lon, lat = inner("ZMT-05")
    r = zc("lookup", lat, lon)
    assert r.returncode not in (0, 3)
    assert "did you swap" in r.stderr
    assert r.stdout == ""


def test_lookup_unknown_crs():
    r = zc("lookup", 114.05, 23.06, "--crs", "foo")
    assert r.returncode not in (0, 3)
    assert "unknown CRS 'foo'" in r.stderr and "gcj02" in r.stderr


def test_lookup_far_outside_exits_3():
    r = zc("lookup", 100.0, 30.0)
    assert r.returncode == 3
    assert "outside every zone" in r.stdout
    assert re.search(r"nearest (QS|ZMT)-\d\d", r.stdout)


# ------------------------------------------------------------------ assign

GOOD_ZONES = ("QS-01", "ZMT-07", "QS-17")


@pytest.fixture(scope="module")
def good():
    """A point inside each of three zones, by zone_id."""
    return {z: inner(z) for z in GOOD_ZONES}


@pytest.fixture(scope="module")
def points_csv(tmp_path_factory, good):
    d = tmp_path_factory.mktemp("assign")
    (q1x, q1y), (z7x, z7y), (q17x, q17y) = good.values()
    rows = [
        ["r1", "甲, 乙", str(q1x), str(q1y), "00123"],
        ["r2", "bad text", "abc", "23.0", "007"],
        ["r3", "swapped", str(z7y), str(z7x), ""],
        ["r4", "empty", "", "", "x"],
        ["r5", "far", "100.0", "30.0", "0"],
        ["r6", "ok", f" {z7x} ", f"{z7y}", "1e5"],
        ["r7", "ok2", str(q17x), str(q17y), "NA"],
    ]
    src = pd.DataFrame(rows, columns=["id", "name", "lon", "lat", "code"])
    path = d / "in.csv"
    src.to_csv(path, index=False)
    return path, src


@pytest.fixture(scope="module")
def assigned_csv(points_csv):
    path, src = points_csv
    out = path.parent / "out.csv"
    r = zc("assign", path, out)
    assert r.returncode == 0, r.stderr
    return read_csv(out), src, r


def test_assign_csv_keeps_rows_and_columns(assigned_csv):
    out, src, r = assigned_csv
    assert len(out) == len(src)
    # Original columns untouched, as text, in the same order (leading zeros, "NA", commas, spaces).
    assert list(out.columns[:len(src.columns)]) == list(src.columns)
    pd.testing.assert_frame_equal(out[src.columns], src)
    assert {"zone_id", "chief_id", "status", "problem"} <= set(out.columns)
    assert "7 rows" in r.stderr


def test_assign_csv_results(assigned_csv):
    out, _, _ = assigned_csv
    got = out.set_index("id")
    assert list(got.status) == ["inside", "invalid", "invalid", "invalid", "outside", "inside", "inside"]
    assert got.zone_id["r1"] == "QS-01" and got.chief_id["r1"] == "QS-C01"
    assert got.zone_id["r6"] == "ZMT-07" and got.chief_id["r6"] == "ZMT-C07"
    assert got.zone_id["r7"] == "QS-17" and got.chief_id["r7"] == "QS-C08"
    for rid in ("r2", "r3", "r4", "r5"):
        assert got.zone_id[rid] == "" and got.chief_id[rid] == ""
    for rid in ("r2", "r3", "r4"):
        assert got.problem[rid], rid
    assert "did you swap" in got.problem["r3"]
    assert "lon" in got.problem["r2"] and "lon" in got.problem["r4"]
    for rid in ("r1", "r5", "r6", "r7"):
        assert got.problem[rid] == ""
    assert got.nearest_zone_id["r5"] != "" and float(got.distance_m["r5"]) > 1_000_000


def test_assign_csv_gcj02_matches_wgs84(points_csv, assigned_csv, tmp_path):
    _, src = points_csv
    wgs_out, _, _ = assigned_csv
    g = src.copy()
    ok = pd.to_numeric(g.lon, errors="coerce").notna() & pd.to_numeric(g.lat, errors="coerce").notna()
    # Convert only the well-formed, in-range rows; the bad ones stay bad.
    for i in g.index[ok]:
        x, y = float(g.lon[i]), float(g.lat[i])
        if abs(y) <= 90:
            gx, gy = (float(v) for v in wgs84_to_gcj02(x, y))
            g.loc[i, ["lon", "lat"]] = [repr(gx), repr(gy)]
    assert g.lon[0] != src.lon[0]
    path = tmp_path / "gcj.csv"
    g.to_csv(path, index=False)
    out_path = tmp_path / "gcj_out.csv"
    r = zc("assign", path, out_path, "--crs", "gcj02")
    assert r.returncode == 0, r.stderr
    out = read_csv(out_path)
    assert list(out.zone_id) == list(wgs_out.zone_id)
    assert list(out.status) == list(wgs_out.status)
    inside = out.status == "inside"
    assert (pd.to_numeric(out.lon_wgs84[inside]) - pd.to_numeric(wgs_out.lon_wgs84[inside])).abs().max() < 1e-8
    assert (pd.to_numeric(out.lat_wgs84[inside]) - pd.to_numeric(wgs_out.lat_wgs84[inside])).abs().max() < 1e-8


def test_assign_custom_columns(tmp_path, good):
    (x1, y1), (x2, y2) = good["QS-01"], good["ZMT-07"]
    src = pd.DataFrame({"ref": ["a", "b"], "gps_e": [str(x1), str(x2)], "gps_n": [str(y1), str(y2)]})
    path = tmp_path / "cols.csv"
    src.to_csv(path, index=False)
    r = zc("assign", path, tmp_path / "nocols.csv")
    assert r.returncode != 0 and "--lon" in r.stderr and "gps_e" in r.stderr
    out_path = tmp_path / "cols_out.csv"
    r = zc("assign", path, out_path, "--lon", "gps_e", "--lat", "gps_n")
    assert r.returncode == 0, r.stderr
    out = read_csv(out_path)
    assert list(out.zone_id) == ["QS-01", "ZMT-07"]
    pd.testing.assert_frame_equal(out[src.columns], src)
    r = zc("assign", path, tmp_path / "x.csv", "--lon", "nope", "--lat", "gps_n")
    assert r.returncode != 0 and "'nope'" in r.stderr


def test_assign_geoparquet_out(points_csv, tmp_path, good):
    path, src = points_csv
    out_path = tmp_path / "out.parquet"
    r = zc("assign", path, out_path)
    assert r.returncode == 0, r.stderr
    gdf = gpd.read_parquet(out_path)
    assert gdf.crs is not None and gdf.crs.to_epsg() == 4326
    assert len(gdf) == len(src) and list(gdf["id"]) == list(src["id"])
    assert list(gdf["code"]) == list(src["code"])
    assert list(gdf.zone_id.fillna("")) == ["QS-01", "", "", "", "", "ZMT-07", "QS-17"]
    valid = gdf.status != "invalid"
    assert gdf.geometry[~valid].isna().all()
    assert gdf.geometry[valid].notna().all()
    first = gdf.geometry.iloc[0]
    assert (first.x, first.y) == pytest.approx(good["QS-01"], abs=1e-9)


def test_assign_geojson_in_and_out(tmp_path, good):
    pts = [good["ZMT-07"], (100.0, 30.0), good["QS-17"]]
    src = gpd.GeoDataFrame({"name": ["a", "far", "c"], "n": [1, 2, 3]},
                           geometry=gpd.points_from_xy(*zip(*pts)), crs=4326)
    path = tmp_path / "in.geojson"
    src.to_file(path, driver="GeoJSON", engine="pyogrio")
    out_path = tmp_path / "out.geojson"
    r = zc("assign", path, out_path)
    assert r.returncode == 0, r.stderr
    out = gpd.read_file(out_path, engine="pyogrio")
    assert out.crs.to_epsg() == 4326
    assert list(out["name"]) == ["a", "far", "c"] and list(out["n"]) == [1, 2, 3]
    assert list(out.zone_id.fillna("")) == ["ZMT-07", "", "QS-17"]
    assert list(out.status) == ["inside", "outside", "inside"]
    for (x, y), g in zip(pts, out.geometry):
        assert (g.x, g.y) == pytest.approx((x, y), abs=1e-9)


def test_assign_geojson_in_projected_crs(tmp_path, good):
    # A spatial file in a projected CRS is read in its own CRS.
    x, y = good["QS-01"]
    src = gpd.GeoDataFrame({"name": ["a"]}, geometry=gpd.points_from_xy([x], [y]), crs=4326).to_crs(METRIC)
    path = tmp_path / "proj.gpkg"
    src.to_file(path, driver="GPKG", engine="pyogrio")
    out_path = tmp_path / "proj_out.csv"
    r = zc("assign", path, out_path)
    assert r.returncode == 0, r.stderr
    out = read_csv(out_path)
    assert list(out.zone_id) == ["QS-01"]
    assert float(out.lon_wgs84[0]) == pytest.approx(x, abs=1e-7)


def test_assign_unknown_extension(points_csv, tmp_path):
    path, _ = points_csv
    dst = tmp_path / "out.xyz"
    r = zc("assign", path, dst)
    assert r.returncode != 0
    assert "unknown output format" in r.stderr and ".csv" in r.stderr and ".parquet" in r.stderr
    assert "Traceback" not in r.stderr
    assert not dst.exists()


def test_assign_missing_input(tmp_path):
    r = zc("assign", tmp_path / "nope.csv", tmp_path / "out.csv")
    assert r.returncode != 0 and "nope.csv" in r.stderr


# ------------------------------------------------------------------ boundaries validate


def test_validate_shipped_villages():
    r = zc("boundaries", "validate", VILLAGES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("valid")
    assert "31 features" in r.stdout
    assert "overlap" not in r.stdout and "gap" not in r.stdout


def test_validate_overlapping_squares(tmp_path):
    a = shapely.box(114.00, 23.00, 114.01, 23.01)
    b = shapely.box(114.005, 23.005, 114.015, 23.015)
    gdf = gpd.GeoDataFrame({"code": ["SQ-A", "SQ-B"]}, geometry=[a, b], crs=4326)
    path = tmp_path / "squares.geojson"
    gdf.to_file(path, driver="GeoJSON", engine="pyogrio")
    r = zc("boundaries", "validate", path)
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("- overlap:"))
    assert "SQ-A" in line and "SQ-B" in line
    m = re.search(r"([\d.]+) m²", line)
    assert m, line
    expected = gpd.GeoSeries([a.intersection(b)], crs=4326).to_crs(METRIC).area.iloc[0]
    assert float(m.group(1)) == pytest.approx(expected, rel=1e-3)
    assert expected > 200_000  # about 0.005° × 0.005°


@pytest.mark.parametrize("flag", [None, "--rebuild-indexes", "--keep-indexes"])
def test_reports_import_on_postgis(tmp_path, flag):
    """`reports import` into PostGIS: rejects file, exit code 2 when rows were rejected, indexes kept or rebuilt."""
    import os

    import sqlalchemy as sa

    lon, lat = inner("QS-12")
    src = tmp_path / "in.csv"
    pd.DataFrame({"lon": [lon, lon, "x"], "lat": [lat, lat, lat], "category": ["06010", "6010", "06010"],
                  "idempotency_key": ["a", "b", "c"]}).to_csv(src, index=False)
    with pg_database() as url:
        env = {**os.environ, "ZONECHIEF_DATABASE_URL": url}
        out = subprocess.run([str(ZONECHIEF), "reports", "import", str(src), *([flag] if flag else [])],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 2, out.stderr
        assert "2 imported" in out.stdout and "1 rejected" in out.stdout
        assert read_csv(tmp_path / "in.rejects.csv")["row"].tolist() == ["3"]
        eng = sa.create_engine(url)
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM reports WHERE zone_id = 'QS-12'")).scalar() == 2
            assert c.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = 'reports'")).scalar() == 8
            # the foreign key pointing at reports (report_media's) is back after a rebuild
            assert c.execute(sa.text("SELECT count(*) FROM pg_constraint WHERE conrelid = 'report_media'::regclass "
                                     "AND contype = 'f'")).scalar() == 1
        eng.dispose()
        again = subprocess.run([str(ZONECHIEF), "reports", "import", str(src)], capture_output=True, text=True,
                               timeout=120, env=env)
        assert "0 imported" in again.stdout and "2 already present" in again.stdout
