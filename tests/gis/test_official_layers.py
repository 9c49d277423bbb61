"""Tests for gis.official_layers: official village layers as cities deliver them (formats, GBK, CRSs, 三调 names)."""
from __future__ import annotations

import re
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.boundaries import validate
from gis.crs import gcj02_to_wgs84, wgs84_to_gcj02
from gis.lookup import ZoneIndex, normalize_units
from gis.official_layers import (
    CODE_RE,
    FieldMapping,
    OfficialLayerError,
    apply_mapping,
    check_codes,
    coverage_gaps,
    describe_mapping,
    format_problems,
    guess_mapping,
    normalize_code,
    prepare_official,
    read_layer,
    read_zone_map,
    shift_vertices,
    zone_for_codes,
)
from tests.official_fixture import (
    METRIC,
    official_frame,
    shipped_villages,
    write_filegdb,
    write_geojson_gcj02,
    write_geoparquet,
    write_gpkg,
    write_shapefile,
)

pytestmark = [pytest.mark.filterwarnings("ignore:Normalized/laundered field name"),
              pytest.mark.filterwarnings("ignore:Field BSM of type Integer64")]  # the writers' own, not ours
HAS_FILEGDB = "w" in pyogrio.list_drivers().get("OpenFileGDB", "")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("official")


def _read_mapped(path, **kw) -> gpd.GeoDataFrame:
    gdf = read_layer(path, **kw)
    return apply_mapping(gdf, guess_mapping(gdf))


def _max_offset_m(frame: gpd.GeoDataFrame) -> float:
    """The largest Hausdorff distance (m) between each village read back and the shipped one with its code."""
    orig = shipped_villages().set_index("code").to_crs(METRIC).geometry
    got = frame.set_index("code").to_crs(METRIC).geometry
    assert sorted(got.index) == sorted(orig.index)
    return float(shapely.hausdorff_distance(got.values, orig.loc[got.index].values).max())


def _assert_same_villages(frame: gpd.GeoDataFrame, tolerance_m: float) -> None:
    orig = shipped_villages().set_index("code")
    assert all(CODE_RE.match(c) for c in frame["code"])
    assert dict(zip(frame["code"], frame["name"])) == orig["name"].to_dict()  # Chinese intact
    assert dict(zip(frame["code"], frame["town"])) == orig["town"].to_dict()
    assert dict(zip(frame["code"], frame["town_code"])) == orig["town_code"].to_dict()
    assert dict(zip(frame["code"], frame["short_name"])) == orig["short_name"].to_dict()  # made from the names
    assert frame.crs.to_epsg() == 4326
    assert _max_offset_m(frame) < tolerance_m
    assert check_codes(frame) == []


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("cpg", [True, False], ids=["with-cpg", "without-cpg"])
def test_shapefile_4547_with_gbk_dbf(folder, cpg):
    path = write_shapefile(folder, cpg=cpg, name=f"gbk_{cpg}")
    raw = path.with_suffix(".dbf").read_bytes()
    assert "宝石社区居民委员会".encode("gbk") in raw  # really GBK on disk
    assert path.with_suffix(".cpg").exists() == cpg
    frame = _read_mapped(path)
    assert frame.attrs["source_crs"] == "EPSG:4547"
    assert any("GB18030" in n for n in frame.attrs["notes"])
    assert any("19-digit" in n for n in frame.attrs["notes"])
    _assert_same_villages(frame, 0.5)


@pytest.mark.parametrize("declared", ["936", "GB2312", "gbk", "ANSI 936"])
def test_cpg_naming_a_gbk_code_page_reads_gbk_only_characters(folder, declared):
    """塱 (common in Dongguan place names) is in GBK but not in GB2312: a .cpg saying GB2312 must not lose it."""
    gdf = official_frame()
    gdf.loc[4, "ZLDWMC"] = "大塱村村民委员会"
    path = write_shapefile(folder, gdf, name=f"cpg_{declared.replace(' ', '_')}")
    path.with_suffix(".cpg").write_text(declared + "\r\n", encoding="ascii")
    got = read_layer(path)
    assert got.loc[4, "ZLDWMC"] == "大塱村村民委员会"
    assert list(got["ZLDWMC"]) == list(gdf["ZLDWMC"])


def test_shapefile_without_cpg_in_utf8_is_read_as_utf8(folder):
    path = folder / "utf8.shp"
    pyogrio.write_dataframe(official_frame().to_crs(4547), path, encoding="UTF-8")
    path.with_suffix(".cpg").unlink()
    frame = _read_mapped(path)
    assert any("UTF-8" in n for n in frame.attrs["notes"])
    _assert_same_villages(frame, 0.5)


def test_zipped_shapefile_without_cpg(folder):
    """Cities send Shapefiles zipped: the .dbf inside is detected the same way."""
    import zipfile

    path = write_shapefile(folder, cpg=False, name="zipped")
    archive = folder / "CJDCQ.shp.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in path.parent.glob("zipped.*"):
            z.write(part, f"export/{part.name}")
    frame = _read_mapped(archive)
    assert any("export/zipped.shp has no .cpg" in n for n in frame.attrs["notes"])
    _assert_same_villages(frame, 0.5)


def test_explicit_encoding_wins(folder):
    path = write_shapefile(folder, cpg=False, name="explicit_enc")
    wrong = read_layer(path, encoding="ISO-8859-1")
    assert "宝石社区居民委员会" not in set(wrong["ZLDWMC"])  # proves the option reaches GDAL
    assert "宝石社区居民委员会" in set(read_layer(path, encoding="GB18030")["ZLDWMC"])


def test_geopackage_in_4490(folder):
    frame = _read_mapped(write_gpkg(folder))
    assert frame.attrs["source_crs"] == "EPSG:4490"
    _assert_same_villages(frame, 0.5)


def test_geoparquet_in_4547(folder):
    _assert_same_villages(_read_mapped(write_geoparquet(folder)), 0.5)


@pytest.mark.skipif(not HAS_FILEGDB, reason="this GDAL cannot write FileGDB (OpenFileGDB write needs GDAL >= 3.6)")
def test_filegdb(folder):
    path = write_filegdb(folder)
    assert path.is_dir()
    frame = _read_mapped(path)
    assert frame.attrs["source_crs"] == "EPSG:4547"
    _assert_same_villages(frame, 0.5)


def test_geojson_in_gcj02_round_trip_within_1_m(folder):
    path = write_geojson_gcj02(folder)
    as_wgs84 = _read_mapped(path)  # the mistake this guards against: GCJ-02 taken for WGS-84
    assert _max_offset_m(as_wgs84) > 100
    frame = _read_mapped(path, crs="gcj02")
    assert frame.attrs["source_crs"] == "gcj02"
    _assert_same_villages(frame, 1.0)
    assert coverage_gaps(shipped_villages(), frame, 1.0) == []


_LON = st.floats(113.5, 114.3, allow_nan=False)
_LAT = st.floats(22.6, 23.2, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_LON, _LAT), min_size=2, max_size=40))
def test_gcj02_vertex_transform_matches_point_by_point(points):
    xy = np.array(points)
    line = shapely.LineString(xy)
    multi = shapely.MultiPoint(xy)
    gx, gy = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    shifted = [shapely.LineString(np.column_stack([gx, gy])), shapely.MultiPoint(np.column_stack([gx, gy]))]
    back = shift_vertices(shifted, gcj02_to_wgs84)
    for geom, orig in zip(back, (line, multi)):
        got = shapely.get_coordinates(geom)
        assert got.shape == xy.shape  # every vertex, in order
        # brute force: each vertex on its own through the scalar inverse
        expected = np.array([[float(v) for v in gcj02_to_wgs84(x, y)] for x, y in zip(gx, gy)])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        dx = (got[:, 0] - xy[:, 0]) * 111_320 * np.cos(np.radians(xy[:, 1]))
        dy = (got[:, 1] - xy[:, 1]) * 110_574
        assert np.hypot(dx, dy).max() < 1.0
        assert orig.geom_type == geom.geom_type


# ------------------------------------------------------------------------------------------ CRS


def test_prj_less_gauss_kruger_is_refused_with_the_epsg_to_pass(folder):
    path = write_shapefile(folder, prj=False, name="noprj")
    with pytest.raises(OfficialLayerError, match=r"no CRS.*EPSG:4547"):
        read_layer(path)
    _assert_same_villages(_read_mapped(path, crs="EPSG:4547"), 0.5)


def test_prj_less_zone_prefix_suggests_4526(folder):
    path = write_shapefile(folder, crs="EPSG:4526", prj=False, name="noprj38")
    with pytest.raises(OfficialLayerError, match=r"zone prefix 38.*EPSG:4526"):
        read_layer(path)
    with pytest.raises(OfficialLayerError, match=r"not in China.*EPSG:4526"):
        read_layer(path, crs="EPSG:4547")  # the wrong zone variant: caught, not silently misplaced
    _assert_same_villages(_read_mapped(path, crs="EPSG:4526"), 0.5)


def test_prj_less_lon_lat_suggests_geographic(folder):
    path = write_shapefile(folder, crs="EPSG:4490", prj=False, name="noprj_ll")
    with pytest.raises(OfficialLayerError, match=r"longitude/latitude.*EPSG:4490"):
        read_layer(path)


def test_crs_that_contradicts_the_file_is_refused(folder):
    path = write_shapefile(folder, name="conflict")
    with pytest.raises(OfficialLayerError, match=r"declares EPSG:4547, not EPSG:4490"):
        read_layer(path, crs="EPSG:4490")
    with pytest.raises(OfficialLayerError, match=r"projected"):
        read_layer(path, crs="gcj02")
    assert read_layer(path, crs="EPSG:4547").attrs["source_crs"] == "EPSG:4547"  # the same: fine


def test_several_layers_need_a_name(folder):
    path = folder / "two.gpkg"
    official_frame().to_file(path, layer="CJDCQ", engine="pyogrio")
    official_frame().to_file(path, layer="XZQ", engine="pyogrio")
    with pytest.raises(OfficialLayerError, match=r"2 layers: .*CJDCQ.*XZQ.*CJDCQ \(村级调查区\) is the village layer"):
        read_layer(path)
    assert len(read_layer(path, layer="XZQ")) == 31


def test_missing_and_unreadable_files(folder):
    with pytest.raises(OfficialLayerError, match="no such file"):
        read_layer(folder / "nope.shp")
    junk = folder / "junk.geojson"
    junk.write_text("not json", encoding="utf-8")
    with pytest.raises(OfficialLayerError, match="cannot read"):
        read_layer(junk)


# ------------------------------------------------------------------------------------------ guessing


@pytest.mark.parametrize("columns, code, name", [
    (["BSM", "ZLDWDM", "ZLDWMC", "MJ"], "ZLDWDM", "ZLDWMC"),
    (["XZQDM", "XZQMC", "DCMJ"], "XZQDM", "XZQMC"),
    (["xzqdm", "xzqmc"], "xzqdm", "xzqmc"),
    (["QSDWDM", "QSDWMC"], "QSDWDM", "QSDWMC"),
    (["CJDM", "CJMC"], "CJDM", "CJMC"),
    (["DM", "MC"], "DM", "MC"),
    (["code", "name", "short_name", "town", "zone_id"], "code", "name"),
    (["village_code", "village_name"], "village_code", "village_name"),
    (["代码", "名称"], "代码", "名称"),
    (["村代码", "村名称"], "村代码", "村名称"),
    (["行政区代码", "行政区名称"], "行政区代码", "行政区名称"),
    (["坐落单位代码", "坐落单位名称"], "坐落单位代码", "坐落单位名称"),
    (["Code", "Name"], "Code", "Name"),
])
def test_known_field_names_map(columns, code, name):
    m = guess_mapping(columns + ["geometry"])
    assert (m.code, m.name) == (code, name)
    assert m.confidence["code"] == "high" and m.confidence["name"] == "high"
    assert m.ambiguous == []


def test_project_columns_map_every_field():
    m = guess_mapping(["code", "name", "short_name", "town", "zone_id", "zone_name"])
    assert (m.zone, m.zone_name, m.town, m.short_name) == ("zone_id", "zone_name", "town", "short_name")


def test_values_decide_the_sandiao_columns():
    frame = official_frame()
    m = guess_mapping(frame)
    assert (m.code, m.name, m.town) == ("ZLDWDM", "ZLDWMC", "XZQMC")  # XZQDM holds town codes here
    assert m.confidence["code"] == "high" and "XZQDM" in m.alternatives["code"]
    assert any("XZQDM holds 9-digit codes" in n for n in m.notes)
    assert m.zone is None and m.confidence["zone"] == "none"
    text = describe_mapping(m)
    assert "code       ← ZLDWDM [high]: 4419001050020000000" in text
    assert "宝石社区居民委员会" in text and "企石镇" in text
    assert len(text.splitlines()[0].split(": ")[1].split(", ")) == 3  # 3 samples
    assert describe_mapping(m, frame) == text


def test_ambiguous_names_say_so():
    m = guess_mapping(["XZQDM", "XZQMC", "QSDWDM", "QSDWMC"])
    assert m.ambiguous == ["code"]
    assert m.alternatives["code"] == ["XZQDM"]
    assert "confirm or give explicitly: code" in describe_mapping(m)


def test_ambiguous_values_say_so():
    v = shipped_villages()
    other = [c[:-3] + f"{(int(c[-3:]) + 1) % 1000:03d}" for c in v["code"]]  # 12 digits too, but different
    frame = pd.DataFrame({"CJDM": v["code"], "CJMC": v["name"], "DM": other, "MC": v["name"]})
    m = guess_mapping(frame)
    assert m.code == "CJDM" and m.confidence["code"] == "ambiguous" and m.alternatives["code"] == ["DM"]
    same = guess_mapping(frame.assign(DM=v["code"]))  # the same codes twice: nothing to confirm
    assert same.confidence["code"] == "high"


def test_explicit_override_wins():
    m = guess_mapping(["XZQDM", "XZQMC", "QSDWDM", "QSDWMC", "PQ"], code="QSDWDM", zone="PQ")
    assert (m.code, m.name, m.zone) == ("QSDWDM", "QSDWMC", "PQ")  # the name follows the chosen code
    assert m.confidence["code"] == "explicit" and m.ambiguous == []
    assert guess_mapping(["ZLDWDM", "ZLDWMC", "BZ"], name="BZ").name == "BZ"
    with pytest.raises(OfficialLayerError, match=r"code column 'CODE12' not found.*ZLDWDM"):
        guess_mapping(["ZLDWDM", "ZLDWMC"], code="CODE12")


def test_nothing_to_guess():
    m = guess_mapping(["BSM", "MJ"])
    assert m.code is None and m.confidence["code"] == "none"
    with pytest.raises(OfficialLayerError, match="no code column"):
        apply_mapping(official_frame(), FieldMapping(name="ZLDWMC"))


# ------------------------------------------------------------------------------------------ codes


@pytest.mark.parametrize("value, expected", [
    ("441900105001", "441900105001"),
    ("  441900105001\u3000", "441900105001"),
    ("４４１９００１０５００１", "441900105001"),
    (441900105001.0, "441900105001"),
    (np.float64(441900105001.0), "441900105001"),
    (np.int64(441900105001), "441900105001"),
    ("441900105001.0", "441900105001"),
    ("4419001050010000000", "441900105001"),
    (4419001052000000000.0, "441900105200"),  # a 19-digit code kept as a double
    ("44190010500", "44190010500"),  # left for check_codes
    ("4419001050011234567", "4419001050011234567"),  # 19 digits not ending in zeros: not cut
    (None, None), (float("nan"), None), ("", None),
])
def test_normalize_code(value, expected):
    assert normalize_code(value)[0] == expected


def test_apply_mapping_with_numeric_codes():
    v = shipped_villages()
    gdf = gpd.GeoDataFrame({"DM": v["code"].astype("int64").astype(float), "MC": v["name"], "PQ": range(len(v))},
                           geometry=v.geometry, crs=4326)
    frame = apply_mapping(gdf, guess_mapping(gdf, zone="PQ"))
    assert list(frame["code"]) == list(v["code"])
    assert list(frame["zone_id"]) == [str(i) for i in range(len(v))]  # numbers as text, no ".0"
    assert any("stored as numbers" in n for n in frame.attrs["notes"])


def test_bad_codes_are_all_listed():
    gdf = official_frame()
    gdf.loc[2, "ZLDWDM"] = gdf.loc[2, "ZLDWDM"][:11]  # 11 digits
    gdf.loc[5, "ZLDWDM"] = "44190010520A0000000"
    gdf.loc[9, "ZLDWDM"] = gdf.loc[7, "ZLDWDM"]  # one code, two features
    gdf.loc[12, "ZLDWMC"] = " "
    gdf.loc[14, "ZLDWDM"] = None
    frame = apply_mapping(gdf, guess_mapping(gdf, code="ZLDWDM", name="ZLDWMC"))
    problems = check_codes(frame)
    by = {}
    for p in problems:
        by.setdefault(p.what, []).append(p)
    assert sorted(by) == ["bad_code", "duplicate_code", "empty_name", "no_code"]
    assert sorted(p.features[0] for p in by["bad_code"]) == ["3", "6"]
    assert "'44190010520'" in by["bad_code"][0].message and "11 characters" in by["bad_code"][0].message
    assert by["duplicate_code"][0].features == ["8", "10"]
    assert by["empty_name"][0].features == ["13"] and by["no_code"][0].features == ["15"]
    text = format_problems(problems)
    assert len(text.splitlines()) == len(problems) == 5
    assert "features 8, 10" in text


def test_a_missing_village_leaves_its_town_uncovered():
    v = shipped_villages()
    gone = v.index[v["code"] == "441900105200"][0]  # 铁岗村, 企石镇
    frame = apply_mapping(official_frame().drop(index=gone), guess_mapping(official_frame()))
    gaps = coverage_gaps(v, frame, 1.0)
    assert len(gaps) == 1
    g = gaps[0]
    assert g.town == "企石镇" and g.what == "not_covered" and g.kind == "gap"
    expected = v.loc[[gone]].to_crs(METRIC).area.iloc[0]
    assert g.area_m2 == pytest.approx(expected, rel=1e-6)
    assert v.geometry[gone].contains(shapely.Point(g.lon, g.lat))
    assert coverage_gaps(v, frame, expected * 1.01) == []  # below tolerance: not listed
    assert "企石镇" in str(g) and "m²" in str(g)


def test_towns_layer_or_units_give_the_same_gaps():
    v = shipped_villages()
    towns = v.dissolve("town").reset_index()[["town", "geometry"]]
    frame = apply_mapping(official_frame(), guess_mapping(official_frame()))
    small = frame[~frame["code"].isin(["441900112004", "441900105203"])]
    by_units = {(g.town, round(g.area_m2)) for g in coverage_gaps(v, small, 1.0)}
    by_towns = {(g.town, round(g.area_m2)) for g in coverage_gaps(towns, small, 1.0)}
    assert by_units == by_towns and {t for t, _ in by_units} == {"企石镇", "樟木头镇"}


# ------------------------------------------------------------------------------------------ zones


@pytest.fixture(scope="module")
def current_units():
    return ZoneIndex.load().units


def test_villages_keep_their_zones(current_units):
    frame = apply_mapping(official_frame(), guess_mapping(official_frame()))
    assert "zone_id" not in frame.columns
    zoned, problems = zone_for_codes(frame, current_units)
    assert problems == []
    shipped = shipped_villages().set_index("code")["zone_id"]
    assert dict(zip(zoned["code"], zoned["zone_id"])) == shipped.to_dict()
    names = dict(zip(current_units["zone_id"], current_units["zone_name"]))
    assert all(zn == names[z] for z, zn in zip(zoned["zone_id"], zoned["zone_name"]))


def test_new_codes_need_a_zones_csv(current_units, folder):
    gdf = official_frame()
    gdf.loc[0, "ZLDWDM"] = "4419001059990000000"
    gdf.loc[1, "ZLDWDM"] = "4419001059980000000"
    gdf.loc[3, "XZQMC"] = None  # the town name comes back from the town code
    frame = apply_mapping(gdf, guess_mapping(gdf))
    zoned, problems = zone_for_codes(frame, current_units)
    assert [p.what for p in problems] == ["no_zone", "no_zone"]
    assert "441900105999" in problems[0].message and "zones CSV" in problems[0].message
    assert zoned.loc[3, "town"] == "企石镇"
    csv = folder / "zones.csv"
    csv.write_bytes("code,zone_id,zone_name\n441900105999,QS-01,\n4419001059980000000,QS-21,企石新区\n".encode("gbk"))
    zmap = read_zone_map(csv)
    assert zmap == {"441900105999": ("QS-01", None), "441900105998": ("QS-21", "企石新区")}
    zoned, problems = zone_for_codes(frame, current_units, zmap)
    assert problems == []
    assert list(zoned.loc[:1, "zone_id"]) == ["QS-01", "QS-21"]
    assert zoned.loc[0, "zone_name"] == dict(zip(current_units["zone_id"], current_units["zone_name"]))["QS-01"]
    assert zoned.loc[1, "zone_name"] == "企石新区"


def test_zones_csv_problems_are_listed(folder):
    csv = folder / "bad_zones.csv"
    csv.write_text("code,zone_id\n4419001050,QS-01\n441900105001,QS-01\n441900105001,QS-02\n441900105002,\n",
                   encoding="utf-8")
    with pytest.raises(OfficialLayerError) as exc:
        read_zone_map(csv)
    msg = str(exc.value)
    assert "line 2" in msg and "line 4: code 441900105001 is given zones QS-01 and QS-02" in msg and "line 5" in msg
    csv.write_text("village,zone\n", encoding="utf-8")
    with pytest.raises(OfficialLayerError, match="code,zone_id"):
        read_zone_map(csv)


# ------------------------------------------------------------------------------------------ into the index


def test_read_layer_feeds_validation_and_the_index(folder, current_units):
    """The path the import takes: read → map → zones → validate (gis.boundaries) → normalize_units → ZoneIndex."""
    frame = _read_mapped(write_shapefile(folder, cpg=False, name="to_index"))
    zoned, problems = zone_for_codes(frame, current_units)
    assert problems == [] and check_codes(zoned) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent repairs or CRS warnings on the way
        clean, report = validate(zoned, id_field="code", tolerance_m2=1.0, source="to_index.shp")
    assert report.ok, str(report)
    index = ZoneIndex(normalize_units(clean, id_field="code"))
    shipped = ZoneIndex.load()
    assert sorted(index.zones.zone_id) == sorted(shipped.zones.zone_id)
    rng = np.random.default_rng(19)
    x0, y0, x1, y1 = shipped.units.total_bounds
    lon, lat = rng.uniform(x0, x1, 3000), rng.uniform(y0, y1, 3000)
    a, b = index.assign(lon, lat), shipped.assign(lon, lat)
    inside = (b["status"].astype(str) == "inside").to_numpy()
    assert inside.sum() > 500
    assert (a["status"].astype(str).to_numpy() == b["status"].astype(str).to_numpy()).mean() > 0.999
    placed = (b["status"].astype(str) != "outside").to_numpy()
    same = a["zone_id"].astype(object).to_numpy() == b["zone_id"].astype(object).to_numpy()
    assert same[inside].all() and same[placed].mean() > 0.999
    assert re.fullmatch(r"\d{12}", index.units.village_code.iloc[0])


# ------------------------------------------------------------------------------------------ all in one


def test_prepare_official_happy_path(folder, current_units):
    out = prepare_official(write_shapefile(folder, cpg=False, name="prep_ok"), current_units)
    assert out.ok, format_problems(out.problems)
    assert out.source_crs == "EPSG:4547" and (out.mapping.code, out.mapping.name) == ("ZLDWDM", "ZLDWMC")
    assert any("GB18030" in n for n in out.notes) and any("19-digit" in n for n in out.notes)
    assert dict(zip(out.frame["code"], out.frame["zone_id"])) == shipped_villages().set_index("code")["zone_id"].to_dict()
    _assert_same_villages(out.frame, 0.5)


def test_prepare_official_lists_every_problem(folder, current_units):
    gdf = official_frame()
    gone = gdf.index[gdf["ZLDWDM"].str.startswith("441900112004")]
    gdf.loc[1, "ZLDWDM"] = "44190010520"  # 11 digits
    gdf.loc[3, "ZLDWDM"] = gdf.loc[2, "ZLDWDM"]  # one code, two features
    gdf = gdf.drop(index=gone)  # 百果洞社区 deleted: 樟木头镇 no longer covered
    path = write_shapefile(folder, gdf, name="prep_bad")
    out = prepare_official(path, current_units)
    assert not out.ok
    what = sorted({p.what for p in out.problems})
    assert what == ["bad_code", "duplicate_code", "no_zone", "not_covered"]
    gaps = [p for p in out.problems if p.what == "not_covered"]
    assert [g.town for g in gaps] == ["樟木头镇"]  # a bad code keeps its polygon: 企石镇 stays covered
    text = format_problems(out.problems)
    assert "'44190010520'" in text and "features 3, 4" in text and "樟木头镇" in text


def test_prepare_official_ambiguous_until_said(folder, current_units):
    v = shipped_villages()
    other = [c[:-3] + f"{(int(c[-3:]) + 1) % 1000:03d}" for c in v["code"]]  # 12 digits too, but different
    gdf = gpd.GeoDataFrame({"CJDM": v["code"], "CJMC": v["name"], "DM": other, "MC": v["name"]},
                           geometry=v.geometry, crs=4326)
    path = folder / "ambiguous.gpkg"
    gdf.to_file(path, engine="pyogrio")
    out = prepare_official(path, current_units)
    assert [p.what for p in out.problems][0] == "ambiguous_mapping" and "CJDM or DM" in out.problems[0].message
    assert prepare_official(path, current_units, columns={"code": "CJDM"}).ok


def test_prepare_official_with_a_zones_csv(folder, current_units):
    gdf = official_frame()
    gdf.loc[0, "ZLDWDM"] = "4419001059990000000"
    path = write_shapefile(folder, gdf, crs="EPSG:4490", name="prep_zones")
    assert [p.what for p in prepare_official(path, current_units).problems] == ["no_zone"]
    csv = folder / "prep_zones.csv"
    csv.write_text("code,zone_id\n441900105999,QS-01\n", encoding="utf-8")
    out = prepare_official(path, current_units, zone_map=csv)
    assert out.ok and out.frame.loc[0, "zone_id"] == "QS-01"
