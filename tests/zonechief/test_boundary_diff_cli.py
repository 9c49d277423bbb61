"""`zonechief boundaries diff OLD NEW`: the installed console script, run as a subprocess on real files."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gis.boundaries import METRIC
from gis.boundary_diff import diff_units
from gis.shipped import DATA_DIR
from zonechief.cli_boundaries import _width, table
from zonechief.reference import read_boundaries

ZONECHIEF = Path(sys.executable).parent / "zonechief"
SHIPPED = DATA_DIR / "villages.geojson"


def zc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ZONECHIEF), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped villages redrawn as an official export would come: EPSG:4547 GeoPackage; one edge moved,
    one village renamed, one moved to another zone, one split in two, two merged."""
    d = tmp_path_factory.mktemp("diff")
    g = gpd.read_file(SHIPPED).to_crs(METRIC)
    geoms = list(g.geometry)
    a = 0
    renamed, rezoned, s = 5, 6, 10
    b = next(k for k in range(1, 12) if k not in (renamed, rezoned, s) and geoms[k].intersection(geoms[a]).length > 500)
    grab = geoms[b].intersection(geoms[a].buffer(300))
    g.loc[a, "geometry"] = geoms[a].union(grab)
    g.loc[b, "geometry"] = geoms[b].difference(grab)
    g.loc[renamed, "name"] = "测试社区居民委员会"
    g.loc[rezoned, "zone_id"] = next(z for z in g.zone_id if z != g.zone_id[rezoned])
    x0, y0, x1, y1 = geoms[s].bounds
    half = shapely.box(x0 - 10, y0 - 10, (x0 + x1) / 2, y1 + 10)
    part = g.iloc[[s]].copy()
    part["code"], part["name"], part["geometry"] = "441900112999", "新分村民委员会", [geoms[s].difference(half)]
    g.loc[s, "geometry"] = geoms[s].intersection(half)
    m1, m2 = next((i, j) for i in range(12, len(g)) for j in range(i + 1, len(g))
                  if geoms[i].intersection(geoms[j]).length > 500)
    g.loc[m1, "geometry"] = shapely.union_all([geoms[m1], geoms[m2]])
    g = gpd.GeoDataFrame(gpd.pd.concat([g.drop(index=m2), part]), crs=METRIC)
    out = d / "new.gpkg"
    g.to_file(out)
    codes = dict(a=g.code.iloc[0], b=gpd.read_file(SHIPPED).code[b], renamed=gpd.read_file(SHIPPED).code[renamed],
                 rezoned=gpd.read_file(SHIPPED).code[rezoned], split=gpd.read_file(SHIPPED).code[s],
                 merged=gpd.read_file(SHIPPED).code[m1], absorbed=gpd.read_file(SHIPPED).code[m2], grab=grab.area)
    return out, codes


def test_the_table_names_what_moved(redrawn):
    new, codes = redrawn
    r = zc("boundaries", "diff", SHIPPED, new)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    head = out.splitlines()[0]
    assert head.startswith("villages: 31 → 31;"), head
    for words in ("1 renamed", "1 moved", "1 new", "1 gone", "2 merged", "2 split"):
        assert words in head, (words, head)
    assert "测试社区居民委员会" in out and "新分村民委员会" in out  # Chinese names as they are
    rows = {line.split()[1]: line for line in out.splitlines() if re.match(r"^[a-z,]+\s+4419\d{8}\s", line)}
    assert rows[codes["renamed"]].startswith("renamed ")
    assert rows[codes["rezoned"]].startswith("moved ") and "zone " in rows[codes["rezoned"]]
    assert rows[codes["split"]].startswith("split,changed ") and "split into" in rows[codes["split"]]
    assert rows["441900112999"].startswith("split,new ")
    assert rows[codes["merged"]].startswith("merged,changed ")
    assert "merged from " + ", ".join(sorted([codes["merged"], codes["absorbed"]])) in rows[codes["merged"]]
    assert rows[codes["absorbed"]].startswith("merged,gone ")
    grab = f"{codes['grab']:,.0f}"
    assert grab in rows[codes["a"]] and grab in rows[codes["b"]]  # gained by one == lost by the other
    # Columns line up under their header even with Chinese names (two terminal columns each).
    lines = out.splitlines()
    h = next(k for k, line in enumerate(lines) if line.startswith("status") and "code" in line)
    col = _width(lines[h][:lines[h].index("km² before")])
    for line in lines[h + 2:h + 2 + len(rows)]:
        assert line[len(line) - len(line.lstrip())] != " "
        cut = next(k for k in range(len(line)) if _width(line[:k]) >= col)
        assert re.match(r"\s*[\d,.]+", line[cut:]), line


def test_json_is_the_engine_s_diff(redrawn):
    new, codes = redrawn
    r = zc("boundaries", "diff", SHIPPED, new, "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    old_idx, _ = read_boundaries(SHIPPED, None)
    new_idx, _ = read_boundaries(new, None)
    assert got == json.loads(json.dumps(diff_units(old_idx, new_idx).to_json()))
    a = next(v for v in got["villages"] if v["id"] == codes["a"])
    assert a["gained_m2"] == pytest.approx(codes["grab"], abs=0.01)


def test_identity_and_tolerance_through_a_shapefile_without_prj(tmp_path):
    g = gpd.read_file(SHIPPED).to_crs(METRIC)
    shp = tmp_path / "villages.shp"
    g.to_file(shp, encoding="utf-8")
    shp.with_suffix(".prj").unlink()
    r = zc("boundaries", "diff", SHIPPED, shp)
    assert r.returncode == 1 and "no CRS" in r.stderr and "villages.shp" in r.stderr
    r = zc("boundaries", "diff", SHIPPED, shp, "--crs", "EPSG:4547")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("villages: 31 → 31; no change")  # reprojection noise is below 1 m²
    r = zc("boundaries", "diff", SHIPPED, shp, "--crs", "EPSG:4547", "--tolerance-m2", "0", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["summary"]["villages"]
    assert got["changed"] <= 31 and got["gained_m2"] < 1.0  # the noise is real, and tiny
    r = zc("boundaries", "diff", SHIPPED, SHIPPED, "--crs", "EPSG:99999")
    assert r.returncode == 2 and "--crs" in r.stderr


def test_id_and_zone_fields(tmp_path):
    g = gpd.read_file(SHIPPED).rename(columns={"code": "XZQDM", "zone_id": "PQ"})
    other = tmp_path / "other.geojson"
    g.to_file(other)
    r = zc("boundaries", "diff", SHIPPED, other, "--id-field", "XZQDM", "--zone-field", "PQ")
    assert r.returncode == 1 and "XZQDM" in r.stderr  # the old file has no such column
    g.rename(columns={"XZQDM": "code", "PQ": "zone_id"}).to_file(tmp_path / "same.geojson")
    g2 = g.copy()
    g2.loc[0, "PQ"] = g2.PQ[1]
    g2.to_file(tmp_path / "moved.geojson")
    r = zc("boundaries", "diff", other, tmp_path / "moved.geojson", "--id-field", "XZQDM", "--zone-field", "PQ", "--all")
    assert r.returncode == 0, r.stderr
    assert "1 moved" in r.stdout.splitlines()[0]
    assert sum(1 for line in r.stdout.splitlines() if re.match(r"^same\s+4419", line)) == 30  # --all lists them


def test_refused_inputs_name_the_file(tmp_path):
    g = gpd.read_file(SHIPPED)
    g.loc[1, "code"] = g.code[0]
    dup = tmp_path / "dup.geojson"
    g.to_file(dup)
    r = zc("boundaries", "diff", SHIPPED, dup)
    assert r.returncode == 1
    assert "dup.geojson" in r.stderr and f"id {g.code[0]} is used by more than one feature" in r.stderr


def test_out_map_is_one_offline_file(redrawn, tmp_path):
    new, codes = redrawn
    out = tmp_path / "maps" / "diff.html"
    r = zc("boundaries", "diff", SHIPPED, new, "--out-map", out)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stderr
    html = out.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)  # every asset inlined
    assert html.count("<script") >= 3 and "L.map(" in html
    assert codes["split"] in html and "441900112999" in html
    assert json.dumps("新分村民委员会")[1:-1] in html  # folium writes GeoJSON with \\u escapes
    assert "illustrative" in html


def test_table_helper_aligns_wide_characters():
    t = table(["a", "名称", "n"], [["x", "湖美村", "1"], ["yy", "b", "22"]], {2})
    lines = t.splitlines()
    assert len({_width(line.rstrip()) for line in lines[:1] + lines[2:]}) == 1
    assert lines[2].endswith(" 1") and lines[3].endswith("22")
