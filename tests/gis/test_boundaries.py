"""Tests for the shipped boundary data and for gis.boundaries (reading and validating layers)."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Polygon, box, shape

from gis.boundaries import BoundaryError, load_and_validate, validate
from gis.lookup import ZoneIndex

DATA = Path(__file__).resolve().parents[2] / "data" / "boundaries"
METRIC = "EPSG:4547"
EXPECTED_ZONES = [f"ZMT-{i:02d}" for i in range(1, 10)] + [f"QS-{i:02d}" for i in range(1, 21)]
TOWN_AREA_KM2 = {"企石镇": 57.9, "樟木头镇": 118.8}


def _fc(name):
    return json.loads((DATA / f"{name}.geojson").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def villages() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "villages.geojson")


# --------------------------------------------------------------------------- shipped data


def test_villages_have_12_digit_codes():
    feats = _fc("villages")["features"]
    assert len(feats) == 31
    codes = [f["properties"]["code"] for f in feats]
    assert all(isinstance(c, str) and re.fullmatch(r"\d{12}", c) for c in codes)
    assert len(set(codes)) == 31
    # each code starts with its town's 9-digit code
    assert all(f["properties"]["code"].startswith(f["properties"]["town_code"]) for f in feats)
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") and shape(f["geometry"]).is_valid for f in feats)


def test_zones_are_the_29_expected_ones():
    zone_feats = _fc("zones")["features"]
    assert sorted(f["properties"]["zone_id"] for f in zone_feats) == sorted(EXPECTED_ZONES)
    assert sorted({f["properties"]["zone_id"] for f in _fc("villages")["features"]}) == sorted(EXPECTED_ZONES)
    # zones.geojson is the dissolve of the villages
    vill = {}
    for f in _fc("villages")["features"]:
        vill.setdefault(f["properties"]["zone_id"], []).append(shape(f["geometry"]))
    for f in zone_feats:
        z = f["properties"]["zone_id"]
        diff = shape(f["geometry"]).symmetric_difference(shapely.union_all(vill[z]))
        assert gpd.GeoSeries([diff], crs=4326).to_crs(METRIC).area.iloc[0] < 1.0, z


def test_villages_tile_each_town(villages):
    towns = gpd.read_file(DATA / "towns.geojson").to_crs(METRIC)
    vm = villages.to_crs(METRIC)
    geoms = vm.geometry.values
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right) if i < j]
    assert len(pairs) > 40  # neighbours do touch
    for i, j in pairs:
        assert shapely.intersection(geoms[i], geoms[j]).area < 1e-6, (vm.code.iloc[i], vm.code.iloc[j])
    assert set(vm.town_code) == set(towns.town_code)
    for code, g in vm.groupby("town_code"):
        town = towns[towns.town_code == code].geometry.iloc[0]
        union = shapely.union_all(g.geometry.values)
        assert union.symmetric_difference(town).area < 1.0, code


def test_town_areas(villages):
    towns = gpd.read_file(DATA / "towns.geojson")
    area = dict(zip(towns["name"], towns.to_crs(METRIC).area / 1e6))
    assert set(area) == set(TOWN_AREA_KM2)
    for name, km2 in TOWN_AREA_KM2.items():
        assert area[name] == pytest.approx(km2, rel=0.02), name
    # the villages add up to the same areas
    vill_area = villages.to_crs(METRIC).assign(a=lambda d: d.area / 1e6).groupby("town")["a"].sum()
    for name, km2 in TOWN_AREA_KM2.items():
        assert vill_area[name] == pytest.approx(km2, rel=0.02), name


@pytest.mark.parametrize("name", ["villages", "zones", "towns", "facilities"])
def test_every_feature_has_geometry_quality(name):
    feats = _fc(name)["features"]
    assert feats
    for f in feats:
        q = f["properties"].get("geometry_quality")
        assert isinstance(q, str) and q, f["properties"]


def test_facilities_lie_in_their_zone(index):
    fac = gpd.read_file(DATA / "facilities.geojson")
    zones = gpd.read_file(DATA / "zones.geojson").set_index("zone_id")
    assert len(fac) > 0
    for r in fac.itertuples():
        assert r.zone_id in zones.index, r.facility_id
        assert zones.loc[r.zone_id].geometry.covers(r.geometry), r.facility_id
    got = index.assign(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy())
    assert list(got["zone_id"]) == list(fac["zone_id"])
    assert (got["status"] == "inside").all()


def test_public_toilets_have_unique_service_codes():
    props = [f["properties"] for f in _fc("facilities")["features"]]
    toilets = [p for p in props if p["kind"] == "public_toilet"]
    assert len(toilets) == 15
    codes = [p["service_code"] for p in toilets]
    assert all(isinstance(c, str) and c for c in codes)
    assert len(set(codes)) == 15
    all_codes = [p["service_code"] for p in props]
    assert len(set(all_codes)) == len(all_codes)


def test_shipped_data_is_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert 0 < total < 2 * 1024 * 1024


def test_shipped_layer_validates_cleanly():
    gdf, report = load_and_validate(DATA / "villages.geojson")
    assert report.n_features == 31
    assert report.ok and not report.issues, str(report)


# --------------------------------------------------------------------------- importing official files


@pytest.fixture(scope="module")
def probe_points(villages):
    """Random points over the data, each with its distance (m) to the nearest village edge."""
    rng = np.random.default_rng(4547)
    minx, miny, maxx, maxy = villages.total_bounds
    n = 3000
    x = rng.uniform(minx - 0.005, maxx + 0.005, n)
    y = rng.uniform(miny - 0.005, maxy + 0.005, n)
    edges = shapely.union_all(villages.to_crs(METRIC).boundary.values)
    mx, my = pyproj.Transformer.from_crs(4326, METRIC, always_xy=True).transform(x, y)
    d = shapely.distance(shapely.points(mx, my), edges)
    return x, y, d


def _write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shapefile field-name truncation, missing-CRS notices
        if path.suffix == ".parquet":
            gdf.to_parquet(path)
        else:
            gdf.to_file(path, engine="pyogrio")
    return path


@pytest.mark.parametrize("epsg", [4547, 4490])
@pytest.mark.parametrize("ext", ["gpkg", "shp", "parquet"])
def test_official_formats_and_crs_give_same_lookups(tmp_path, villages, index, probe_points, epsg, ext):
    path = _write(villages.to_crs(epsg), tmp_path / f"villages_{epsg}.{ext}")
    _, report = load_and_validate(path)
    assert report.crs == f"EPSG:{epsg}"
    ix = ZoneIndex.load(path)
    assert sorted(ix.zones["zone_id"]) == sorted(EXPECTED_ZONES)
    assert sorted(ix.units["village_code"]) == sorted(villages["code"])
    x, y, d = probe_points
    far = d > 1.0
    assert far.sum() > 2900
    ref = index.assign(x[far], y[far])
    got = ix.assign(x[far], y[far])
    np.testing.assert_array_equal(got["zone_id"].astype(str).fillna("-").to_numpy(), ref["zone_id"].astype(str).fillna("-").to_numpy())
    np.testing.assert_array_equal(got["status"].to_numpy(), ref["status"].to_numpy())
    np.testing.assert_array_equal(got["village_code"].astype(str).fillna("-").to_numpy(),
                                  ref["village_code"].astype(str).fillna("-").to_numpy())
    # outside distances barely move under a reprojection round trip
    out = (ref["status"] == "outside").to_numpy()
    np.testing.assert_allclose(got["distance_m"].to_numpy()[out], ref["distance_m"].to_numpy()[out], atol=0.5)


# --------------------------------------------------------------------------- validation

X0, Y0 = 500_000.0, 2_540_000.0  # EPSG:4547 metres, in Dongguan


def sq(i, j, size=1000.0):
    return box(X0 + i * size, Y0 + j * size, X0 + (i + 1) * size, Y0 + (j + 1) * size)


def layer(geoms, ids, crs=METRIC):
    return gpd.GeoDataFrame({"zone_id": ids}, geometry=list(geoms), crs=crs)


def to_metric_point(lon, lat):
    x, y = pyproj.Transformer.from_crs(4326, METRIC, always_xy=True).transform(lon, lat)
    return shapely.Point(x, y)


def from_metric(x, y):
    return pyproj.Transformer.from_crs(METRIC, 4326, always_xy=True).transform(x, y)


def test_bowtie_is_repaired_and_reported(tmp_path):
    bow = Polygon([(X0 + 1000, Y0), (X0 + 2000, Y0 + 1000), (X0 + 2000, Y0), (X0 + 1000, Y0 + 1000)])
    assert not bow.is_valid
    path = _write(layer([sq(0, 0), bow], ["A", "B"]), tmp_path / "bow.gpkg")
    clean, report = load_and_validate(path)
    repaired = [i for i in report.issues if i.kind == "repaired"]
    assert len(repaired) == 1 and repaired[0].features == ["B"]
    assert report.ok and not report.errors
    assert clean.geometry.is_valid.all()
    fixed = clean.to_crs(METRIC).geometry.iloc[1]
    assert fixed.area == pytest.approx(500_000, rel=1e-3)  # two triangles of the bow-tie
    assert fixed.covers(to_metric_point(repaired[0].lon, repaired[0].lat))
    ix = ZoneIndex.load(path)
    lon, lat = from_metric(X0 + 1900, Y0 + 500)  # inside the right-hand triangle
    assert ix.lookup(lon, lat).zone_id == "B"
    lon, lat = from_metric(X0 + 500, Y0 + 500)
    assert ix.lookup(lon, lat).zone_id == "A"


def test_empty_and_non_polygon_features_are_errors(tmp_path):
    path = _write(layer([sq(0, 0), Polygon(), LineString([(X0, Y0), (X0 + 5, Y0 + 5)])], ["A", "B", "C"]),
                  tmp_path / "bad.gpkg")
    _, report = load_and_validate(path)
    errs = report.errors
    assert {tuple(e.features) for e in errs} == {("B",), ("C",)}
    assert any("empty" in e.message for e in errs if e.features == ["B"])
    assert any("LineString" in e.message for e in errs if e.features == ["C"])
    assert not report.ok
    with pytest.raises(BoundaryError) as exc:
        ZoneIndex.load(path)
    assert exc.value.report is not None and len(exc.value.report.errors) == 2
    # errors are not waived by strict=False
    with pytest.raises(BoundaryError):
        ZoneIndex.load(path, strict=False)


def test_overlap_is_reported_with_area_and_location(tmp_path):
    a = sq(0, 0)
    b = box(X0 + 800, Y0 + 100, X0 + 1800, Y0 + 600)
    overlap = a.intersection(b)  # 200 m x 500 m
    path = _write(layer([a, b], ["A", "B"]), tmp_path / "overlap.gpkg")
    _, report = load_and_validate(path)
    ov = [i for i in report.issues if i.kind == "overlap"]
    assert len(ov) == 1
    assert sorted(ov[0].features) == ["A", "B"]
    assert ov[0].area_m2 == pytest.approx(overlap.area, rel=0.01)
    assert overlap.contains(to_metric_point(ov[0].lon, ov[0].lat))
    with pytest.raises(BoundaryError, match="overlap"):
        ZoneIndex.load(path)
    ix = ZoneIndex.load(path, strict=False)
    lon, lat = from_metric(X0 + 900, Y0 + 300)  # in both: smallest zone_id wins
    assert ix.lookup(lon, lat).zone_id == "A"
    lon, lat = from_metric(X0 + 1500, Y0 + 300)
    assert ix.lookup(lon, lat).zone_id == "B"


def test_gap_is_reported_with_area(tmp_path):
    ring = [sq(i, j) for i in range(3) for j in range(3) if (i, j) != (1, 1)]
    path = _write(layer(ring, [f"Z{k}" for k in range(8)]), tmp_path / "gap.gpkg")
    _, report = load_and_validate(path)
    gaps = [i for i in report.issues if i.kind == "gap"]
    assert len(gaps) == 1
    assert gaps[0].area_m2 == pytest.approx(1_000_000, rel=0.01)
    assert sq(1, 1).contains(to_metric_point(gaps[0].lon, gaps[0].lat))
    assert sorted(gaps[0].features) == [f"Z{k}" for k in range(8)]
    assert not [i for i in report.issues if i.kind == "overlap"]
    with pytest.raises(BoundaryError, match="gap"):
        ZoneIndex.load(path)
    ix = ZoneIndex.load(path, strict=False)
    lon, lat = from_metric(X0 + 1500, Y0 + 1500)  # centre of the hole: 500 m from every zone
    a = ix.lookup(lon, lat)
    assert a.status == "outside" and a.zone_id is None
    assert a.distance_m == pytest.approx(500, abs=0.5)


def test_small_slivers_below_tolerance_are_not_reported():
    a = sq(0, 0)
    b = box(X0 + 999.9995, Y0, X0 + 2000, Y0 + 1000)  # 0.0005 m x 1000 m = 0.5 m² overlap
    _, report = validate(layer([a, b], ["A", "B"]).to_crs(4326), tolerance_m2=1.0)
    assert report.ok and not report.issues
    _, report = validate(layer([a, b], ["A", "B"]).to_crs(4326), tolerance_m2=0.1)
    assert [i.kind for i in report.issues] == ["overlap"]


@pytest.mark.parametrize("ext", ["shp", "gpkg"])
def test_file_without_crs_needs_crs_argument(tmp_path, ext):
    path = tmp_path / f"nocrs.{ext}"
    _write(gpd.GeoDataFrame({"zone_id": ["A", "B"]}, geometry=[sq(0, 0), sq(1, 0)], crs=None), path)
    if ext == "shp":
        assert not path.with_suffix(".prj").exists()
    with pytest.raises(BoundaryError, match="CRS"):
        ZoneIndex.load(path)
    ix = ZoneIndex.load(path, crs="EPSG:4547")
    lon, lat = from_metric(X0 + 1500, Y0 + 500)
    assert 113.9 < lon < 114.1 and 22.9 < lat < 23.0
    assert ix.lookup(lon, lat).zone_id == "B"


def test_duplicate_ids_are_errors(tmp_path):
    path = _write(layer([sq(0, 0), sq(1, 0), sq(2, 0)], ["A", "A", "B"]), tmp_path / "dup.gpkg")
    _, report = load_and_validate(path)
    assert [e.features for e in report.errors] == [["A"]]
    with pytest.raises(BoundaryError, match="A"):
        ZoneIndex.load(path)
    with pytest.raises(BoundaryError):
        ZoneIndex.load(path, strict=False)


def test_clean_synthetic_layer_loads(tmp_path):
    path = _write(layer([sq(0, 0), sq(1, 0)], ["A", "B"]), tmp_path / "ok.parquet")
    _, report = load_and_validate(path)
    assert report.ok and not report.issues
    ix = ZoneIndex.load(path)
    geoms = dict(zip(ix.units["zone_id"], ix.units.geometry))
    shared = set(geoms["A"].exterior.coords) & set(geoms["B"].exterior.coords)
    assert len(shared) == 2  # the two ends of the common edge, exactly equal after reprojection
    for lon, lat in shared:
        a = ix.lookup(lon, lat)
        assert (a.zone_id, a.status, a.on_boundary) == ("A", "boundary", True)
    lon, lat = from_metric(X0 + 1500, Y0 + 500)
    assert ix.lookup(lon, lat).zone_id == "B"
