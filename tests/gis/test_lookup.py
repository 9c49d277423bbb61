"""Tests for gis.lookup.ZoneIndex against an independent brute-force reference.

The reference (zonechief.testing.BruteForceLookup) reads data/boundaries/villages.geojson with plain
`json` and `shapely.geometry.shape`, dissolves the villages per zone_id with shapely.union_all, and
answers a point with min(zone_id of every zone whose polygon `covers` it). Nothing from gis.* is used
to build it. It is built on first use (tests.helpers.shipped_reference), not when pytest imports this.
"""
from __future__ import annotations

import math
from datetime import date
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis import crs as gcrs
from gis.lookup import ZoneIndex
from gis.points import CoordinateError
from gis.roster import Roster
from tests.helpers import ZONE_IDS, shipped_reference

DATA = Path(__file__).resolve().parents[2] / "data" / "boundaries"
SETTINGS = settings(max_examples=150, deadline=None)


# --------------------------------------------------------------------------- reference


def ref():
    """The brute-force reference on the shipped villages (built once per process, on first use)."""
    return shipped_reference()


def ref_cover(x, y) -> np.ndarray:
    """(n_zones, n_points) boolean: zone polygon covers point (shapely `covers`)."""
    return ref().covers(x, y)


def ref_zone(x, y):
    """Expected zone (min covering zone_id or None) and whether it lies on that zone's outline."""
    return ref().zone_and_boundary(np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8"))


def ref_distance(x, y):
    """Distance in metres (EPSG:4547) to every zone: (n_zones, n_points)."""
    return ref().zone_distances(x, y)


def ids(values) -> list:
    """Column/array of ids with every kind of missing value mapped to None."""
    return [None if (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA) else v for v in values]


@pytest.fixture(scope="module")
def idx() -> ZoneIndex:
    return ZoneIndex.load()


def test_zone_ids_are_the_shipped_ones(idx):
    """tests.helpers.ZONE_IDS (for parametrize, known before any data is read) is what the data holds."""
    assert ref().zone_ids == ZONE_IDS
    assert sorted(idx.zones.zone_id) == ZONE_IDS


# --------------------------------------------------------------------------- random points vs reference


def check_against_reference(idx: ZoneIndex, x, y) -> pd.DataFrame:
    x = np.asarray(x, dtype="f8")
    y = np.asarray(y, dtype="f8")
    df = idx.assign(x, y)
    assert len(df) == len(x)
    np.testing.assert_array_equal(df["lon_wgs84"].to_numpy(), x)
    np.testing.assert_array_equal(df["lat_wgs84"].to_numpy(), y)
    exp, exp_onb = ref_zone(x, y)
    got = np.array(ids(df["zone_id"]), dtype=object)
    status = df["status"].to_numpy(dtype=object)
    covered = np.array([z is not None for z in exp])

    bad = np.flatnonzero(covered & (got != exp))
    assert len(bad) == 0, [(x[i], y[i], got[i], exp[i]) for i in bad[:10]]
    assert set(status[covered]) <= {"inside", "boundary"}
    np.testing.assert_array_equal(df["on_boundary"].to_numpy()[covered], exp_onb[covered])
    np.testing.assert_array_equal(status[covered] == "boundary", exp_onb[covered])
    assert not df["snapped"].to_numpy()[covered].any()
    assert (df["distance_m"].to_numpy()[covered] == 0).all()

    out = ~covered
    assert set(status[out]) <= {"outside", "snapped"}
    snapped = df["snapped"].to_numpy()
    np.testing.assert_array_equal(snapped[out], status[out] == "snapped")
    nearest = np.array(ids(df["nearest_zone_id"]), dtype=object)
    assert all(got[i] is None for i in np.flatnonzero(out & ~snapped))
    assert all(got[i] == nearest[i] for i in np.flatnonzero(out & snapped))
    assert all(nearest[i] is not None for i in np.flatnonzero(out))
    return df


def test_assign_matches_reference_uniform_over_bbox(idx):
    rng = np.random.default_rng(20261127)
    minx, miny, maxx, maxy = ref().bounds
    n = 6000
    x = rng.uniform(minx - 0.01, maxx + 0.01, n)
    y = rng.uniform(miny - 0.01, maxy + 0.01, n)
    df = check_against_reference(idx, x, y)
    # the sample really exercises both branches
    assert (df["status"] == "inside").sum() > 1000
    assert (df["status"] == "outside").sum() > 1000


@pytest.mark.parametrize("zone_id", ZONE_IDS)
def test_assign_matches_reference_in_each_zone_bbox(idx, zone_id):
    rng = np.random.default_rng(1000 + ZONE_IDS.index(zone_id))
    minx, miny, maxx, maxy = ref().zones[zone_id].bounds
    n = 400
    x = rng.uniform(minx, maxx, n)
    y = rng.uniform(miny, maxy, n)
    df = check_against_reference(idx, x, y)
    assert (np.array(ids(df["zone_id"]), dtype=object) == zone_id).sum() > 0.2 * n


# Deferred: the bounds are read from the reference when hypothesis first draws, not at import.
lon_st = st.deferred(lambda: st.floats(ref().bounds[0] - 0.02, ref().bounds[2] + 0.02))
lat_st = st.deferred(lambda: st.floats(ref().bounds[1] - 0.02, ref().bounds[3] + 0.02))


@st.composite
def zone_bbox_point(draw):
    z = draw(st.sampled_from(ZONE_IDS))
    minx, miny, maxx, maxy = ref().zones[z].bounds
    return minx + draw(st.floats(0, 1)) * (maxx - minx), miny + draw(st.floats(0, 1)) * (maxy - miny)


any_point = st.one_of(st.tuples(lon_st, lat_st), zone_bbox_point())


def same_answer(a, row) -> None:
    """An Assignment from lookup() and a row of assign() say the same thing."""
    assert a.zone_id == ids([row["zone_id"]])[0]
    assert a.status == row["status"]
    assert a.on_boundary == bool(row["on_boundary"])
    assert a.snapped == bool(row["snapped"])
    assert a.nearest_zone_id == ids([row["nearest_zone_id"]])[0]
    assert a.distance_m == pytest.approx(float(row["distance_m"]), abs=0.011)
    assert a.village_code == ids([row["village_code"]])[0]
    assert (a.chief.person_id if a.chief else None) == ids([row["chief_id"]])[0]


@SETTINGS
@given(p=any_point)
def test_lookup_agrees_with_assign_and_reference(idx, p):
    lon, lat = p
    a = idx.lookup(lon, lat)
    exp, exp_onb = ref_zone([lon], [lat])
    if exp[0] is not None:
        assert a.zone_id == exp[0]
        assert a.status in ("inside", "boundary")
        assert a.on_boundary == exp_onb[0]
    else:
        assert a.status in ("outside", "snapped")
    # one point (small-batch path) and the same point in a larger batch (vectorised path)
    same_answer(a, idx.assign([lon], [lat]).iloc[0])
    big = idx.assign([lon] * 7, [lat] * 7)
    for _, row in big.iterrows():
        same_answer(a, row)


@settings(max_examples=80, deadline=None)
@given(pts=st.lists(any_point, min_size=1, max_size=12))
def test_assign_batch_is_pointwise(idx, pts):
    x = [p[0] for p in pts]
    y = [p[1] for p in pts]
    df = check_against_reference(idx, x, y)
    for (lon, lat), (_, row) in zip(pts, df.iterrows()):
        same_answer(idx.lookup(lon, lat), row)


# --------------------------------------------------------------------------- boundaries


@cache
def _vertex_zones():
    zones, villages = {}, {}
    for code, z, g in ref().villages:
        for poly in shapely.get_parts(g):
            for ring in [poly.exterior, *poly.interiors]:
                for xy in ring.coords:
                    zones.setdefault(xy, set()).add(z)
                    villages.setdefault(xy, set()).add(code)
    return zones, villages


def vertex_zones() -> dict:
    """Each vertex of the villages -> the zones it belongs to."""
    return _vertex_zones()[0]


@cache
def shared_vertices() -> list:
    """Vertices of two or more zones."""
    return sorted(v for v, zs in vertex_zones().items() if len(zs) >= 2)


@cache
def same_zone_vertices() -> list:
    """Vertices of one zone shared by two or more of its villages."""
    zones, villages = _vertex_zones()
    return sorted(v for v, zs in zones.items() if len(zs) == 1 and len(villages[v]) >= 2)


@cache
def outline_vertices() -> list:
    """Vertices of one village only."""
    zones, villages = _vertex_zones()
    return sorted(v for v, zs in zones.items() if len(zs) == 1 and len(villages[v]) == 1)


@cache
def _shared_segments():
    segs = {}
    for code, z, g in ref().villages:
        for poly in shapely.get_parts(g):
            cs = list(poly.exterior.coords)
            for a, b in zip(cs, cs[1:]):
                segs.setdefault(tuple(sorted([a, b])), set()).add((code, z))
    return {s: v for s, v in segs.items() if len(v) >= 2}


@cache
def _points_on_segments(same_zone: bool):
    """Points at simple fractions of shared segments that the reference says lie on both sides.

    A computed point is rarely exactly on a segment in floating point, so each
    candidate is kept only if every polygon sharing the segment covers it.
    """
    village_geom = {code: g for code, _, g in ref().villages}
    out = []
    for (a, b), owners in _shared_segments().items():
        if (len({z for _, z in owners}) == 1) != same_zone:
            continue
        for n in range(2, 17):
            for k in range(1, n):
                if math.gcd(k, n) != 1:
                    continue
                t = k / n
                p = shapely.Point(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
                if all(village_geom[c].covers(p) for c, _ in owners):
                    out.append((p.x, p.y))
    return out


def edge_points() -> list:
    """Points on edges shared by villages of different zones."""
    return _points_on_segments(same_zone=False)


def same_zone_edge_points() -> list:
    """Points on edges shared by villages of the same zone."""
    return _points_on_segments(same_zone=True)


def test_boundary_fixtures_are_meaningful():
    assert len(shared_vertices()) >= 40
    assert len(edge_points()) >= 20
    # both multi-village zones have an internal edge point
    zs = ref_zone([p[0] for p in same_zone_edge_points()], [p[1] for p in same_zone_edge_points()])[0]
    assert {"ZMT-07", "ZMT-08"} <= set(zs)
    # and the internal shared vertices known from the data
    assert (114.099372, 22.887602) in same_zone_vertices()
    assert (114.039892, 22.856928) in same_zone_vertices()


def check_boundary_points(idx, pts, expect_multi: bool):
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    cov = ref_cover(x, y)
    if expect_multi:
        assert (cov.sum(axis=0) >= 2).all()
    exp = [min(ref().zone_array[cov[:, i]]) for i in range(len(pts))]
    df = idx.assign(x, y)
    assert ids(df["zone_id"]) == exp
    assert (df["on_boundary"]).all()
    assert (df["status"] == "boundary").all()
    # deterministic: again, reversed order, shuffled, in small batches, one by one
    again = idx.assign(x, y)
    pd.testing.assert_frame_equal(df, again)
    rev = idx.assign(x[::-1], y[::-1])
    assert ids(rev["zone_id"])[::-1] == exp
    perm = np.random.default_rng(7).permutation(len(x))
    assert ids(idx.assign(x[perm], y[perm])["zone_id"]) == [exp[i] for i in perm]
    for i in range(0, len(x), 3):
        small = idx.assign(x[i:i + 3], y[i:i + 3])
        assert ids(small["zone_id"]) == exp[i:i + 3]
        assert small["on_boundary"].all()
    for i, (lon, lat) in enumerate(pts):
        a = idx.lookup(lon, lat)
        b = idx.lookup(lon, lat)
        assert a == b
        assert a.zone_id == exp[i], (lon, lat)
        assert a.on_boundary and a.status == "boundary"
        same_answer(a, df.iloc[i])


def test_shared_vertices_go_to_smallest_zone(idx):
    check_boundary_points(idx, shared_vertices(), expect_multi=True)


def test_shared_edge_points_go_to_smallest_zone(idx):
    check_boundary_points(idx, edge_points(), expect_multi=True)


def test_outline_vertices_are_on_boundary(idx):
    pts = outline_vertices()[::5]
    assert len(pts) > 50
    check_boundary_points(idx, pts, expect_multi=False)


def test_vertices_shared_within_one_zone(idx):
    """A vertex shared only by villages of the same zone is on_boundary only if on the zone outline."""
    assert same_zone_vertices()
    for lon, lat in same_zone_vertices():
        (z,) = vertex_zones()[(lon, lat)]
        on_outline = ref().zones[z].boundary.intersects(shapely.Point(lon, lat))
        a = idx.lookup(lon, lat)
        assert a.zone_id == z
        assert a.on_boundary == on_outline
        assert a.status == ("boundary" if on_outline else "inside")
        same_answer(a, idx.assign([lon] * 5, [lat] * 5).iloc[0])


def test_internal_edge_of_multi_village_zone_is_not_a_boundary(idx):
    pts = same_zone_edge_points()
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    exp, exp_onb = ref_zone(x, y)
    assert set(exp) <= {"ZMT-07", "ZMT-08"}
    assert not exp_onb.any()  # the reference agrees these are inside the dissolved zone
    for frame in (idx.assign(x, y), pd.concat([idx.assign(x[i:i + 2], y[i:i + 2]) for i in range(0, len(x), 2)])):
        assert ids(frame["zone_id"]) == list(exp)
        assert not frame["on_boundary"].any()
        assert (frame["status"] == "inside").all()
    for lon, lat, z in zip(x, y, exp):
        a = idx.lookup(lon, lat)
        assert (a.zone_id, a.on_boundary, a.status) == (z, False, "inside")


# --------------------------------------------------------------------------- outside points


def _outside_points(n: int, seed: int):
    """Points outside every zone: uniform around the data plus points just off the outline."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = ref().bounds
    x = rng.uniform(minx - 0.02, maxx + 0.02, n)
    y = rng.uniform(miny - 0.02, maxy + 0.02, n)
    # points within ~0..400 m of the zones' outer outline
    outline = ref().to_metric(shapely.union_all(ref().zone_geoms)).boundary
    s = rng.uniform(0, outline.length, n)
    on = shapely.line_interpolate_point(outline, s)
    ang = rng.uniform(0, 2 * np.pi, n)
    r = rng.uniform(0, 400, n)
    mx = shapely.get_x(on) + r * np.cos(ang)
    my = shapely.get_y(on) + r * np.sin(ang)
    back = pyproj.Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True)
    lx, ly = back.transform(mx, my)
    x = np.concatenate([x, lx])
    y = np.concatenate([y, ly])
    keep = ~ref_cover(x, y).any(axis=0)
    return x[keep], y[keep]


@cache
def outside():
    """(x, y, distance to every zone, distance to the nearest zone) of 2500 points outside every zone."""
    x, y = _outside_points(2500, seed=11)
    d = ref_distance(x, y)
    return x, y, d, d.min(axis=0)


def test_outside_distance_and_nearest_zone(idx):
    OUT_X, OUT_Y, OUT_D, OUT_DMIN = outside()
    assert len(OUT_X) > 2000
    assert (OUT_DMIN < 100).sum() > 200 and (OUT_DMIN > 100).sum() > 200
    df = idx.assign(OUT_X, OUT_Y)
    d = df["distance_m"].to_numpy()
    np.testing.assert_allclose(d, OUT_DMIN, atol=0.5)
    assert (d[OUT_DMIN > 0.01] > 0).all()
    # nearest zone: where the nearest is unambiguous by more than a metre
    order = np.sort(OUT_D, axis=0)
    clear = (order[1] - order[0]) > 1.0
    exp_near = ref().zone_array[OUT_D.argmin(axis=0)]
    got_near = np.array(ids(df["nearest_zone_id"]), dtype=object)
    np.testing.assert_array_equal(got_near[clear], exp_near[clear])


@pytest.mark.parametrize("tol", [0.0, 25.0, None, 300.0])
def test_snapping_follows_tolerance(tol):
    OUT_X, OUT_Y, _, OUT_DMIN = outside()
    ix = ZoneIndex.load(snap_tolerance_m=tol)
    t = 100.0 if tol is None else tol  # default snap_tolerance_m is 100 m
    assert ix.snap_tolerance_m == t
    df = ix.assign(OUT_X, OUT_Y)
    clear = np.abs(OUT_DMIN - t) > 0.5
    exp = OUT_DMIN <= t
    snapped = df["snapped"].to_numpy()
    np.testing.assert_array_equal(snapped[clear], exp[clear])
    if t > 0:
        assert snapped.sum() > 20
    status = df["status"].to_numpy(dtype=object)
    np.testing.assert_array_equal(status == "snapped", snapped)
    np.testing.assert_array_equal(status == "outside", ~snapped)
    assert not df["on_boundary"].any()
    got = np.array(ids(df["zone_id"]), dtype=object)
    near = np.array(ids(df["nearest_zone_id"]), dtype=object)
    assert (got[snapped] == near[snapped]).all()
    assert all(g is None for g in got[~snapped])
    # snapped points are attached to a zone with its chief; outside points have none
    chief = np.array(ids(df["chief_id"]), dtype=object)
    assert all(c is not None for c in chief[snapped])
    assert all(c is None for c in chief[~snapped])
    # lookup() says the same for a sample
    for i in np.flatnonzero(clear)[:: max(1, len(OUT_X) // 40)]:
        a = ix.lookup(OUT_X[i], OUT_Y[i])
        assert a.snapped == exp[i]
        assert a.distance_m == pytest.approx(OUT_DMIN[i], abs=0.5)
        assert a.zone_id == (a.nearest_zone_id if a.snapped else None)


@SETTINGS
@given(p=st.tuples(lon_st, lat_st))
def test_outside_lookup_property(idx, p):
    lon, lat = p
    d = ref_distance([lon], [lat])[:, 0]
    a = idx.lookup(lon, lat)
    if d.min() == 0:
        if ref_cover([lon], [lat]).any():
            assert a.status in ("inside", "boundary")
        return
    if not ref_cover([lon], [lat]).any():
        assert a.status in ("outside", "snapped")
        assert a.distance_m == pytest.approx(d.min(), abs=0.5)
        if d.min() > 0.01:
            assert a.distance_m > 0
        if abs(d.min() - idx.snap_tolerance_m) > 0.5:
            assert a.snapped == (d.min() <= idx.snap_tolerance_m)


# --------------------------------------------------------------------------- invalid input

bad_float = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 200.0, -95.0])


@SETTINGS
@given(pts=st.lists(st.tuples(st.one_of(lon_st, bad_float), st.one_of(lat_st, bad_float)), min_size=1, max_size=10))
def test_assign_flags_invalid_and_never_raises(idx, pts):
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    df = idx.assign(x, y)
    assert len(df) == len(pts)
    good = np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90)
    status = df["status"].to_numpy(dtype=object)
    assert (status[~good] == "invalid").all()
    assert (status[good] != "invalid").all()
    assert all(z is None for z in np.array(ids(df["zone_id"]), dtype=object)[~good])
    assert df["distance_m"].isna().to_numpy()[~good].all()
    assert not df["snapped"].to_numpy()[~good].any()
    if good.any():
        alone = idx.assign(x[good], y[good])
        assert ids(alone["zone_id"]) == ids(df["zone_id"][good])
        assert list(alone["status"]) == list(df["status"][good])
    for lon, lat, ok in zip(x, y, good):
        if not ok:
            with pytest.raises(CoordinateError):
                idx.lookup(lon, lat)


@pytest.mark.parametrize("lon,lat", [(math.nan, 23.0), (114.06, math.nan), (math.inf, 23.0), (114.06, -math.inf),
                                     (None, 23.0)])
def test_lookup_rejects_non_finite(idx, lon, lat):
    with pytest.raises(CoordinateError, match="finite"):
        idx.lookup(lon, lat)
    df = idx.assign(np.array([lon, 114.06] * 3, dtype="f8"), np.array([lat, 23.06] * 3, dtype="f8"))
    assert list(df["status"][::2]) == ["invalid"] * 3
    assert (df["status"][1::2] != "invalid").all()


def test_swapped_lon_lat_message(idx):
    with pytest.raises(CoordinateError, match="did you swap lon and lat"):
        idx.lookup(23.0, 114.06)
    assert idx.assign([23.0], [114.06])["status"].iloc[0] == "invalid"


# --------------------------------------------------------------------------- other CRSs


def _inner(z):
    return ref().zones[z].buffer(-0.001)


@cache
def inner_triangles() -> dict:
    """Each zone shrunk by ~100 m, cut into triangles (to draw points well inside it)."""
    return {
        z: [t for part in shapely.get_parts(_inner(z)) for t in shapely.get_parts(shapely.constrained_delaunay_triangles(part))]
        for z in ZONE_IDS
    }
CONVERT = {
    "gcj02": gcrs.wgs84_to_gcj02,
    "bd09": gcrs.wgs84_to_bd09,
    "EPSG:4547": lambda lon, lat: gcrs.from_wgs84(lon, lat, "EPSG:4547"),
    "EPSG:4490": lambda lon, lat: gcrs.from_wgs84(lon, lat, "EPSG:4490"),
}


@st.composite
def inner_point(draw):
    z = draw(st.sampled_from(ZONE_IDS))
    tris = inner_triangles()[z]
    tri = tris[draw(st.integers(0, len(tris) - 1))]
    (ax, ay), (bx, by), (cx, cy) = list(tri.exterior.coords)[:3]
    u, v = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    if u + v > 1:
        u, v = 1 - u, 1 - v
    return z, ax + u * (bx - ax) + v * (cx - ax), ay + u * (by - ay) + v * (cy - ay)


@SETTINGS
@given(p=inner_point(), crs=st.sampled_from(sorted(CONVERT)))
def test_offset_and_projected_crs_land_in_same_zone(idx, p, crs):
    z, lon, lat = p
    assert idx.lookup(lon, lat).zone_id == z
    cx, cy = CONVERT[crs](lon, lat)
    if crs in ("gcj02", "bd09"):
        # the offset is real: the raw converted coordinate is a different place
        assert abs(float(cx) - lon) + abs(float(cy) - lat) > 1e-4
    a = idx.lookup(float(cx), float(cy), crs=crs)
    assert a.zone_id == z
    assert a.status == "inside"
    assert a.lon == pytest.approx(lon, abs=1e-7) and a.lat == pytest.approx(lat, abs=1e-7)


@pytest.mark.parametrize("crs", sorted(CONVERT))
def test_offset_and_projected_crs_batch(idx, crs):
    rng = np.random.default_rng(3)
    xs, ys, zs = [], [], []
    for z in ZONE_IDS:
        inner = _inner(z)
        minx, miny, maxx, maxy = inner.bounds
        x = rng.uniform(minx, maxx, 120)
        y = rng.uniform(miny, maxy, 120)
        k = shapely.contains_xy(inner, x, y)
        assert k.sum() > 10
        xs.append(x[k])
        ys.append(y[k])
        zs += [z] * int(k.sum())
    x, y = np.concatenate(xs), np.concatenate(ys)
    cx, cy = CONVERT[crs](x, y)
    df = idx.assign(cx, cy, crs=crs)
    assert ids(df["zone_id"]) == zs
    assert (df["status"] == "inside").all()
    np.testing.assert_allclose(df["lon_wgs84"], x, atol=1e-7)
    # the same through a GeoSeries that carries no CRS, named by crs=
    gs = gpd.GeoSeries(gpd.points_from_xy(cx, cy))
    assert ids(idx.assign(gs, crs=crs)["zone_id"]) == zs


# --------------------------------------------------------------------------- roster at a time


def _zone_point(z):
    p = ref().zones[z].representative_point()
    return p.x, p.y


def test_zmt03_chief_changes_on_2025_07_01(idx):
    lon, lat = _zone_point("ZMT-03")
    assert idx.lookup(lon, lat, at="2024-06-01").chief.person_id == "ZMT-C10"
    assert idx.lookup(lon, lat, at="2025-06-30").chief.person_id == "ZMT-C10"
    assert idx.lookup(lon, lat, at=date(2025, 7, 1)).chief.person_id == "ZMT-C03"
    assert idx.lookup(lon, lat, at="2025-12-31").chief.person_id == "ZMT-C03"
    assert idx.lookup(lon, lat).chief.person_id == "ZMT-C03"  # now
    assert idx.lookup(lon, lat, at="2023-12-31").chief is None  # before the roster starts
    df = idx.assign([lon] * 6, [lat] * 6, at="2025-06-30")
    assert set(df["chief_id"]) == {"ZMT-C10"}
    df = idx.assign([lon] * 6, [lat] * 6, at="2025-07-01")
    assert set(df["chief_id"]) == {"ZMT-C03"}
    # other zones are not affected by the change
    lon1, lat1 = _zone_point("ZMT-01")
    assert idx.lookup(lon1, lat1, at="2025-06-30").chief.person_id == "ZMT-C01"


def test_qishi_staff_in_force_now():
    r = Roster.read_csv(DATA / "roster.csv")
    now = r.in_force()
    qs = now[now["zone_id"].str.startswith("QS-")]
    assert qs[qs.role == "chief"]["person_id"].nunique() == 17
    assert qs[qs.role == "inspector"]["person_id"].nunique() == 36
    chiefs = r.people("chief")
    assert chiefs[chiefs["zone_ids"].str.contains("QS-")]["person_id"].nunique() == 17


def test_every_zone_has_exactly_one_chief_now(idx):
    now = idx.roster.in_force()
    chiefs = now[now.role == "chief"]
    counts = chiefs.groupby("zone_id").size()
    assert sorted(counts.index) == ZONE_IDS
    assert (counts == 1).all()
    by_zone = idx.roster.chiefs_by_zone()
    assert sorted(by_zone) == ZONE_IDS
    pts = [_zone_point(z) for z in ZONE_IDS]
    df = idx.assign([p[0] for p in pts], [p[1] for p in pts])
    assert ids(df["zone_id"]) == ZONE_IDS
    assert list(df["chief_id"]) == [by_zone[z].person_id for z in ZONE_IDS]
    # QS-08 and QS-17 share one chief
    assert by_zone["QS-08"].person_id == by_zone["QS-17"].person_id == "QS-C08"


# --------------------------------------------------------------------------- GeoSeries / GeoDataFrame input


def _sample_points():
    pts = [_zone_point(z) for z in ZONE_IDS[:6]] + [(114.5, 23.5), shared_vertices()[0]]
    return [p[0] for p in pts], [p[1] for p in pts]


def test_assign_geodataframe_keeps_index_and_columns(idx):
    x, y = _sample_points()
    n = len(x)
    index = pd.Index([f"r{i}" for i in range(n)][::-1], name="rid")
    gdf = gpd.GeoDataFrame({"a": np.arange(n), "zone_id": ["mine"] * n, "note": list("abcdefgh")[:n]},
                           geometry=gpd.points_from_xy(x, y), crs=4326, index=index)
    out = idx.assign(gdf)
    plain = idx.assign(x, y)
    assert isinstance(out, gpd.GeoDataFrame)
    assert out.index.equals(gdf.index)
    assert list(out.columns[: len(gdf.columns)]) == list(gdf.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(out[["a", "zone_id", "note"]]), pd.DataFrame(gdf[["a", "zone_id", "note"]]))
    assert out.geometry.geom_equals(gdf.geometry).all()
    assert out.crs == gdf.crs
    assert ids(out["zone_id_zc"]) == ids(plain["zone_id"])
    assert list(out["status"]) == list(plain["status"])


def test_assign_geoseries_projected_and_duplicate_index(idx):
    x, y = _sample_points()
    plain = idx.assign(x, y)
    gs = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=4326).to_crs(4547)
    gs.index = [3, 3, 1, 1, 2, 2, 9, 9][: len(gs)]  # duplicated labels must not multiply rows
    out = idx.assign(gs)
    assert isinstance(out, gpd.GeoDataFrame)
    assert len(out) == len(gs)
    assert list(out.index) == list(gs.index)
    assert out.crs == gs.crs
    # interior/outside points agree exactly; the shared vertex (last point) moves by the
    # projection round trip, so it only has to land in one of the zones sharing it
    assert ids(out["zone_id"])[:-1] == ids(plain["zone_id"])[:-1]
    assert list(out["status"])[:-1] == list(plain["status"])[:-1]
    assert out["zone_id"].iloc[-1] in vertex_zones()[shared_vertices()[0]]
    np.testing.assert_allclose(out["lon_wgs84"], x, atol=1e-7)


def test_assign_geoseries_missing_geometries(idx):
    lon, lat = _zone_point("QS-05")
    gs = gpd.GeoSeries([None, shapely.Point(), shapely.Point(lon, lat)], index=[10, 20, 30], crs=4326)
    out = idx.assign(gs)
    assert list(out.index) == [10, 20, 30]
    assert list(out["status"]) == ["invalid", "invalid", "inside"]
    assert ids(out["zone_id"]) == [None, None, "QS-05"]


def test_locate_once_answers_as_locate(zone_index):
    """The grid-less locate (one-off batches) gives locate's unit for every point, inside, outside and on edges."""
    import numpy as np

    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = zone_index.units.total_bounds
    lon = np.r_[rng.uniform(x0 - 0.02, x1 + 0.02, 20_000), np.nan]
    lat = np.r_[rng.uniform(y0 - 0.02, y1 + 0.02, 20_000), 23.0]
    edge = zone_index.units.geometry.iloc[0].exterior.coords[0]  # a vertex: on the edge of several units
    lon, lat = np.r_[lon, edge[0]], np.r_[lat, edge[1]]
    assert np.array_equal(zone_index.locate_once(lon, lat), zone_index.locate(lon, lat)[0])
