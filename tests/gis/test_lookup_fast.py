"""The bulk fast paths of gis.lookup against brute force.

ZoneIndex.locate answers batches of more than 4 points from a cell grid, and
_classify finds the nearest unit of outside points from a metric candidate grid.
Both must give exactly what shapely gives point by point. The reference
(zonechief.testing.BruteForceLookup) reads data/boundaries/villages.geojson with
json + shapely only, orders the villages as the index promises (zone_id, then code)
and answers each point with
    unit     = first village whose interior holds it, else first that covers it, else -1
    interior = some village's interior holds it
for every village, with no grid, tree or bounding box in between. The reference,
the index and its grid are built on first use, not when pytest imports this module.
"""
from __future__ import annotations

import math
import os
import signal
import tracemalloc
from functools import cache
from pathlib import Path
from typing import Annotated

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api import errors
from api.app import create_app
from api.deps import at_param as _at_param
from api.lookup import assignment_json
from api.lookup import crs_param as _crs_param
from api.schemas import LookupResult
from gis.lookup import ZoneIndex, normalize_units
from tests.helpers import shipped_reference

_TO_M = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
# The shipped villages' extent (WGS-84), for the hypothesis strategies below, which need it before any
# data is read; test_box_constants_match_the_data checks it against the reference.
MINX, MINY, MAXX, MAXY = 113.975239, 22.814465, 114.176736, 23.103968


def ref():
    """The brute-force reference on the shipped villages (built once per process, on first use)."""
    return shipped_reference()


def ref_geoms() -> np.ndarray:
    """The villages, in the index's order (zone_id, then code)."""
    return ref().unit_geoms


def ref_locate(x, y):
    """Brute force: every point against every village."""
    return ref().locate(np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8"))


def ref_nearest(mx, my):
    """Brute force in EPSG:4547: distance to every village; nearest = smallest index among exact ties."""
    return ref().village_distances(mx, my, metric=True)


@cache
def _index() -> ZoneIndex:
    """This module's own index (not the session's), loaded on first use."""
    return ZoneIndex.load()


@cache
def _grid():
    """The index's cell grid: built on first bulk use; the strategies below need its cells."""
    return _index()._cell_grid()


@cache
def _mixed_cells() -> np.ndarray:
    return np.flatnonzero(_grid().table == -2)


@cache
def _mixed_subcells() -> np.ndarray:
    return np.flatnonzero(_grid().sub == -2)


S = 8  # subcells per side of a mixed cell (gis.lookup_grids.SUB)


def subcell_origin(k):
    """Lower-left corner, in subcell units from the grid origin, of subcell k (flat index into the grid's sub)."""
    g = _grid()
    cell = g.mixed_cells[k // (S * S)]
    return (cell % g.W) * S + k % S, (cell // g.W) * S + (k // S) % S


@pytest.fixture(scope="module")
def idx() -> ZoneIndex:
    index = _index()
    # the reference is about the same polygons, in the same order
    assert list(zip(index.units["zone_id"], index.units["unit_id"])) == ref().unit_keys
    assert all(shapely.equals_exact(a, b, tolerance=0) for a, b in zip(index._geoms, ref_geoms()))
    return index


@pytest.fixture(scope="module")
def grid(idx):
    return _grid()


def test_box_constants_match_the_data():
    assert (MINX, MINY, MAXX, MAXY) == tuple(shapely.total_bounds(ref_geoms()))


def check_locate(idx, x, y):
    """Fast path, exact path and brute force agree point for point (and in small batches)."""
    x = np.asarray(x, dtype="f8")
    y = np.asarray(y, dtype="f8")
    assert len(x) > 4  # the grid path
    unit, interior = idx.locate(x, y)
    exp_unit, exp_int = ref_locate(x, y)
    bad = np.flatnonzero((unit != exp_unit) | (interior != exp_int))
    assert len(bad) == 0, [(repr(x[i]), repr(y[i]), unit[i], exp_unit[i], interior[i], exp_int[i]) for i in bad[:10]]
    ex_unit, ex_int = idx._locate_exact(x, y)
    np.testing.assert_array_equal(unit, ex_unit)
    np.testing.assert_array_equal(interior, ex_int)
    for i in range(0, min(len(x), 12), 3):  # the small-batch path (<= 4 points)
        u, it = idx.locate(x[i:i + 3], y[i:i + 3])
        np.testing.assert_array_equal(u, exp_unit[i:i + 3])
        np.testing.assert_array_equal(it, exp_int[i:i + 3])
    return unit, interior


# --------------------------------------------------------------------------- special points

def _segments():
    for k, g in enumerate(ref_geoms()):
        for part in shapely.get_parts(g):
            for ring in [part.exterior, *part.interiors]:
                cs = np.asarray(ring.coords)
                for a, b in zip(cs[:-1], cs[1:]):
                    yield k, a, b


@cache
def segments() -> list:
    """(village index, start, end) of every edge of every village."""
    return list(_segments())


@cache
def vertices() -> np.ndarray:
    """Every vertex of the villages, once."""
    return np.unique(np.array([a for _, a, _ in segments()]), axis=0)


@cache
def edge_points() -> np.ndarray:
    """Points at simple fractions of every edge that the reference puts on a village boundary."""
    pts = []
    for _k, a, b in segments():
        for n in (2, 3, 5, 7, 16):
            for j in range(1, n):
                pts.append(a + (b - a) * (j / n))
    pts = np.array(pts)
    on = np.zeros(len(pts), dtype=bool)
    p = shapely.points(pts)
    for g in ref_geoms():
        on |= shapely.intersects(g.boundary, p)
    return pts[on]


def test_special_point_sets_are_meaningful(idx, grid):
    VERTICES, EDGE_POINTS = vertices(), edge_points()
    assert len(VERTICES) > 500
    assert len(EDGE_POINTS) > 1000  # many fractions land exactly on the edge in floating point
    u, it = ref_locate(EDGE_POINTS[:, 0], EDGE_POINTS[:, 1])
    assert (u >= 0).all() and (~it).sum() > 1000  # on a boundary, not in any interior
    for t in (grid.table, grid.sub):
        assert (t == -2).sum() > 1000 and (t == -1).sum() > 1000 and (t >= 0).sum() > 1000
        assert set(np.unique(t[t >= 0])) == set(range(len(ref_geoms())))  # every village has pure (sub)cells
    assert len(grid.sub) == S * S * (grid.table == -2).sum()


def test_vertices_and_edge_points(idx):
    VERTICES, EDGE_POINTS = vertices(), edge_points()
    unit, interior = check_locate(idx, VERTICES[:, 0], VERTICES[:, 1])
    assert (unit >= 0).all() and not interior.any()
    unit, interior = check_locate(idx, EDGE_POINTS[:, 0], EDGE_POINTS[:, 1])
    assert (unit >= 0).all()


def _grid_lines(grid):
    """Cell and subcell edges."""
    gx = grid.x0 + np.arange(grid.W * S + 1) * (grid.dx / S)
    gy = grid.y0 + np.arange(grid.H * S + 1) * (grid.dy / S)
    return gx, gy


def test_points_on_cell_edges(idx, grid):
    """Points on grid lines (and one ulp either side): the cell a point maps to must really hold it."""
    rng = np.random.default_rng(5)
    gx, gy = _grid_lines(grid)
    n = 60_000
    xs = gx[rng.integers(0, len(gx), n)]
    ys = gy[rng.integers(0, len(gy), n)]
    rx = rng.uniform(MINX, MAXX, n)
    ry = rng.uniform(MINY, MAXY, n)
    x = np.concatenate([xs, rx, xs, np.nextafter(xs, -np.inf), np.nextafter(xs, np.inf)])
    y = np.concatenate([ry, ys, ys, np.nextafter(ry, np.inf), ys])
    check_locate(idx, x, y)


def test_boundary_crossings_of_cell_edges(idx, grid):
    """Where village edges cross grid lines: points on both, as near as floating point gets."""
    gx, gy = _grid_lines(grid)
    xs, ys = [], []
    for _, a, b in segments():
        lo, hi = min(a[0], b[0]), max(a[0], b[0])
        for v in gx[(gx >= lo) & (gx <= hi)]:
            if b[0] != a[0]:
                t = (v - a[0]) / (b[0] - a[0])
                xs.append(v), ys.append(a[1] + t * (b[1] - a[1]))
        lo, hi = min(a[1], b[1]), max(a[1], b[1])
        for v in gy[(gy >= lo) & (gy <= hi)]:
            if b[1] != a[1]:
                t = (v - a[1]) / (b[1] - a[1])
                xs.append(a[0] + t * (b[0] - a[0])), ys.append(v)
    x, y = np.array(xs), np.array(ys)
    assert len(x) > 5000
    unit, interior = check_locate(idx, x, y)
    assert (~interior & (unit >= 0)).sum() > 20  # some are exactly on a boundary


def test_points_in_mixed_and_pure_cells(idx, grid):
    rng = np.random.default_rng(6)
    xs, ys = [], []
    for cls in (-2, -1, *range(len(ref_geoms()))):
        cells = np.flatnonzero(grid.table == cls)
        c = cells[rng.integers(0, len(cells), 3000 if cls == -2 else 300)]
        u = rng.choice([0.0, 1.0, 0.5, *rng.uniform(0, 1, 5)], len(c))  # corners and edges of cells too
        v = rng.uniform(0, 1, len(c))
        xs.append(grid.x0 + (c % grid.W + u) * grid.dx)
        ys.append(grid.y0 + (c // grid.W + v) * grid.dy)
        # the same for subcells of mixed cells
        subs = np.flatnonzero(grid.sub == cls)
        k = subs[rng.integers(0, len(subs), 3000 if cls == -2 else 300)]
        i, j = subcell_origin(k)
        xs.append(grid.x0 + (i + rng.choice([0.0, 1.0, 0.5, *rng.uniform(0, 1, 5)], len(k))) * (grid.dx / S))
        ys.append(grid.y0 + (j + rng.uniform(0, 1, len(k))) * (grid.dy / S))
    check_locate(idx, np.concatenate(xs), np.concatenate(ys))


def test_non_finite_and_far_points(idx):
    x = np.array([np.nan, 114.05, np.inf, -np.inf, 0.0, 179.9, 114.05, MINX - 1e-9, MAXX + 1e-9, 1e300])
    y = np.array([23.0, np.nan, 23.0, 23.0, 0.0, -89.0, np.inf, MINY, MAXY, -1e300])
    unit, interior = idx.locate(x, y)
    assert (unit == -1).all() and not interior.any()
    np.testing.assert_array_equal(unit, idx._locate_exact(x, y)[0])


# --------------------------------------------------------------------------- hypothesis

finite_in_box = st.tuples(st.floats(MINX - 0.01, MAXX + 0.01), st.floats(MINY - 0.01, MAXY + 0.01))


@st.composite
def special_point(draw):
    VERTICES, EDGE_POINTS, SEGMENTS = vertices(), edge_points(), segments()
    kind = draw(st.sampled_from(["box", "vertex", "edge", "segment", "grid", "cell", "subcell"]))
    if kind == "box":
        return draw(finite_in_box)
    if kind == "vertex":
        return tuple(VERTICES[draw(st.integers(0, len(VERTICES) - 1))])
    if kind == "edge":
        return tuple(EDGE_POINTS[draw(st.integers(0, len(EDGE_POINTS) - 1))])
    if kind == "segment":  # anywhere along an edge, on it or a rounding off it
        _, a, b = SEGMENTS[draw(st.integers(0, len(SEGMENTS) - 1))]
        t = draw(st.floats(0, 1))
        return tuple(a + (b - a) * t)
    g = _grid()
    if kind == "grid":  # on a vertical (sub)cell edge, a horizontal one, or both
        gx = g.x0 + draw(st.integers(0, g.W * S)) * (g.dx / S)
        gy = g.y0 + draw(st.integers(0, g.H * S)) * (g.dy / S)
        bx, by = draw(finite_in_box)
        return draw(st.sampled_from([(gx, gy), (gx, by), (bx, gy)]))
    if kind == "cell":  # in a mixed cell (a boundary passes near), anywhere in it including its edges
        MIXED_CELLS = _mixed_cells()
        c = MIXED_CELLS[draw(st.integers(0, len(MIXED_CELLS) - 1))]
        return (g.x0 + (c % g.W + draw(st.floats(0, 1))) * g.dx, g.y0 + (c // g.W + draw(st.floats(0, 1))) * g.dy)
    MIXED_SUBCELLS = _mixed_subcells()
    i, j = subcell_origin(MIXED_SUBCELLS[draw(st.integers(0, len(MIXED_SUBCELLS) - 1))])
    return g.x0 + (i + draw(st.floats(0, 1))) * (g.dx / S), g.y0 + (j + draw(st.floats(0, 1))) * (g.dy / S)


@settings(max_examples=300, deadline=None)
@given(pts=st.lists(special_point(), min_size=5, max_size=40))
def test_locate_matches_brute_force(idx, pts):
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    check_locate(idx, x, y)


far_point = st.tuples(st.floats(MINX - 0.3, MAXX + 0.3), st.floats(MINY - 0.3, MAXY + 0.3))


@settings(max_examples=300, deadline=None)
@given(p=st.one_of(special_point(), far_point), crs=st.sampled_from(["wgs84", "gcj02"]))
def test_single_lookup_equals_bulk(idx, p, crs):
    """lookup() answers one point in plain Python (grid cell, then shapely; nearest segment by hand);
    lookup_many() and assign() go through the numpy paths. Same answer, field for field."""
    lon, lat = p
    if crs == "gcj02":  # the same WGS-84 point, given in GCJ-02
        from gis.crs import wgs84_to_gcj02
        lon, lat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    one = idx.lookup(lon, lat, crs=crs)
    many = idx.lookup_many([lon] * 6, [lat] * 6, crs=crs)
    assert all(m == one for m in many), (one, many[0])
    row = idx.assign([lon] * 6, [lat] * 6, crs=crs).iloc[0]
    assert row["status"] == one.status and bool(row["on_boundary"]) == one.on_boundary
    assert float(row["distance_m"]) == one.distance_m
    assert (row["zone_id"] if isinstance(row["zone_id"], str) else None) == one.zone_id
    assert (row["nearest_zone_id"] if isinstance(row["nearest_zone_id"], str) else None) == one.nearest_zone_id


# --------------------------------------------------------------------------- nearest unit

def _near_outline_points(n, seed, max_r):
    """Metric points around the outer outline (up to max_r m out), around shared outline vertices, and far."""
    rng = np.random.default_rng(seed)
    outline = shapely.union_all(ref().unit_geoms_metric).boundary
    on = shapely.line_interpolate_point(outline, rng.uniform(0, outline.length, n))
    ang, r = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, max_r, n)
    mx, my = shapely.get_x(on) + r * np.cos(ang), shapely.get_y(on) + r * np.sin(ang)
    # vertices of the outline where two villages meet: both are exactly as near (the vertex itself)
    verts = shapely.get_coordinates(outline)
    owners = np.array([sum(shapely.intersects(g, shapely.Point(v)) for g in ref().unit_geoms_metric) for v in verts])
    shared = verts[owners >= 2]
    k = rng.integers(0, len(shared), n)
    ang, r = rng.uniform(0, 2 * np.pi, n), rng.uniform(1, max_r, n)
    vx, vy = shared[k, 0] + r * np.cos(ang), shared[k, 1] + r * np.sin(ang)
    return np.concatenate([mx, vx]), np.concatenate([my, vy])


def check_nearest(idx, mx, my):
    d = ref_nearest(mx, my)
    outside = d.min(axis=0) > 0
    mx, my, d = mx[outside], my[outside], d[:, outside]
    unit, dist = idx._nearest(mx, my)
    dmin = d.min(axis=0)
    np.testing.assert_allclose(dist, dmin, rtol=0, atol=1e-6)
    exact_tie = (d == dmin).sum(axis=0) >= 2
    expected = d.argmin(axis=0)  # first index at the minimum
    near_tie = (np.sort(d, axis=0)[1] - dmin) < 1e-6
    clear = ~near_tie | exact_tie
    np.testing.assert_array_equal(unit[clear], expected[clear])
    # a rounding-level near tie may go either way, but only to one of the tied units
    for i in np.flatnonzero(~clear):
        assert d[unit[i], i] - dmin[i] < 1e-6
    return exact_tie


def test_nearest_matches_brute_force(idx):
    mx, my = _near_outline_points(3000, seed=21, max_r=400)
    check_nearest(idx, mx, my)


def test_nearest_tie_goes_to_first_unit():
    """Two villages meeting at a convex corner of their outline: beyond it both are nearest (the corner
    itself), at exactly the same distance; the first in order (smallest zone_id) wins, as with GEOS."""
    lon, lat, s = 114.0, 23.0, 0.01
    a = shapely.Polygon([(lon, lat), (lon + s, lat), (lon, lat + s)])  # the corner (lon, lat + s) ends an edge
    b = shapely.Polygon([(lon, lat), (lon, lat + s), (lon - s, lat)])  # ... and starts one
    gdf = gpd.GeoDataFrame({"code": ["A", "B"], "zone_id": ["Z2", "Z1"], "name": ["a", "b"]},
                           geometry=[a, b], crs=4326)
    ix = ZoneIndex(normalize_units(gdf), None, snap_tolerance_m=0)
    assert list(ix.units["zone_id"]) == ["Z1", "Z2"]
    rng = np.random.default_rng(4)
    n = 400
    ang = rng.uniform(np.pi / 4 + 0.01, 3 * np.pi / 4 - 0.01, n)  # between the two outward normals
    r = rng.uniform(1e-5, 0.03, n)
    x, y = lon + r * np.cos(ang), lat + s + r * np.sin(ang)
    df = ix.assign(x, y)
    mx, my = _TO_M.transform(x, y)
    pts = shapely.points(mx, my)
    gm = [shapely.transform(g, lambda xy: np.column_stack(_TO_M.transform(xy[:, 0], xy[:, 1]))) for g in (a, b)]
    da, db = shapely.distance(gm[0], pts), shapely.distance(gm[1], pts)
    assert (da == db).all()  # an exact tie for GEOS too
    assert (df["nearest_zone_id"] == "Z1").all()
    assert all(ix.lookup(float(a_), float(b_)).nearest_zone_id == "Z1" for a_, b_ in zip(x[:50], y[:50]))
    np.testing.assert_allclose(df["distance_m"], np.round(da, 2), atol=0.0051)
    # and on either side of the wedge the nearer village wins
    side = ix.assign([lon + 0.006, lon - 0.006], [lat + s, lat + s])
    assert list(side["nearest_zone_id"]) == ["Z2", "Z1"]


def test_nearest_over_the_whole_box_and_beyond(idx):
    rng = np.random.default_rng(22)
    x = rng.uniform(MINX - 0.1, MAXX + 0.1, 8000)  # ~10 km beyond the grid's 5 km margin on every side
    y = rng.uniform(MINY - 0.1, MAXY + 0.1, 8000)
    mx, my = _TO_M.transform(x, y)
    near = idx._near_grid()
    fi, fj = (mx - near.X0) / near.size, (my - near.Y0) / near.size
    off = (fi < 0) | (fi >= near.nx) | (fj < 0) | (fj >= near.ny)
    assert 500 < off.sum() < 7000  # both the grid and the GEOS fallback are used
    check_nearest(idx, np.asarray(mx), np.asarray(my))


@settings(max_examples=150, deadline=None)
@given(p=st.tuples(st.floats(MINX - 0.06, MAXX + 0.06), st.floats(MINY - 0.06, MAXY + 0.06)))
def test_nearest_property(idx, p):
    mx, my = _TO_M.transform(np.array([p[0]] * 5), np.array([p[1]] * 5))
    check_nearest(idx, np.asarray(mx), np.asarray(my))


# --------------------------------------------------------------------------- assign at scale

def test_assign_200k_against_reference(idx):
    """Zone, boundary flag, status, nearest zone and distance for 200k uniform points."""
    rng = np.random.default_rng(2026)
    n = 200_000
    x = rng.uniform(MINX, MAXX, n)
    y = rng.uniform(MINY, MAXY, n)
    df = idx.assign(x, y)
    exp_unit, exp_int = ref_locate(x, y)
    covered = exp_unit >= 0
    REF_ZONE, REF_GEOMS = ref().unit_zone, ref_geoms()
    zone_ids = sorted(set(REF_ZONE))
    zones = {z: shapely.union_all(REF_GEOMS[REF_ZONE == z]) for z in zone_ids}
    got_zone = df["zone_id"].to_numpy(dtype=object)
    np.testing.assert_array_equal(got_zone[covered], REF_ZONE[exp_unit[covered]])
    # zone level: the smallest covering zone_id; on_boundary where the point is on that zone's outline
    pts = shapely.points(x[covered], y[covered])
    onb = np.zeros(n, dtype=bool)
    onb[covered] = shapely.intersects(np.array([zones[z].boundary for z in got_zone[covered]], dtype=object), pts)
    np.testing.assert_array_equal(df["on_boundary"].to_numpy(), onb)
    status = df["status"].to_numpy(dtype=object)
    assert set(status[covered]) <= {"inside", "boundary"}
    np.testing.assert_array_equal(status[covered] == "boundary", onb[covered])
    assert (df["distance_m"].to_numpy()[covered] == 0).all()
    # outside: nearest zone and its distance, against GEOS on the dissolved zones
    out = np.flatnonzero(~covered)
    assert len(out) > 0.5 * n
    mx, my = _TO_M.transform(x[out], y[out])
    zm = [shapely.transform(zones[z], lambda xy: np.column_stack(_TO_M.transform(xy[:, 0], xy[:, 1]))) for z in zone_ids]
    tree = shapely.STRtree(zm)
    (pi, zi), dz = tree.query_nearest(shapely.points(mx, my), all_matches=True, return_distance=True)
    dmin = np.full(len(out), np.inf)
    np.minimum.at(dmin, pi, dz)
    np.testing.assert_allclose(df["distance_m"].to_numpy()[out], np.round(dmin, 2), rtol=0, atol=0.0051)
    first = np.full(len(out), len(zone_ids))
    np.minimum.at(first, pi, zi)
    near = df["nearest_zone_id"].to_numpy(dtype=object)[out]
    np.testing.assert_array_equal(near, np.array(zone_ids, dtype=object)[first])  # on a tie, the smallest zone_id
    snapped = df["snapped"].to_numpy()[out]
    clear = np.abs(dmin - idx.snap_tolerance_m) > 1e-6
    np.testing.assert_array_equal(snapped[clear], (dmin <= idx.snap_tolerance_m)[clear])
    np.testing.assert_array_equal(status[out], np.where(snapped, "snapped", "outside"))
    np.testing.assert_array_equal(got_zone[out][snapped], near[snapped])
    assert all(v is None or (isinstance(v, float) and math.isnan(v)) for v in got_zone[out][~snapped])


# --------------------------------------------------------------------------- memory

def test_locate_memory_is_a_few_bytes_per_point(idx):
    """Beyond its two outputs (int32 unit + bool interior), locate works in fixed-size chunks."""
    rng = np.random.default_rng(9)
    n = 1_000_000
    x = rng.uniform(MINX, MAXX, n)
    y = rng.uniform(MINY, MAXY, n)
    idx.locate(x[:10], y[:10])  # the grid is built on first use; not counted
    tracemalloc.start()
    try:
        unit, interior = idx.locate(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert unit.dtype == np.int32 and interior.dtype == bool
    assert peak <= 6 * n + (4 << 20), peak


# --------------------------------------------------------------------------- GET /v1/lookup

def test_get_lookup_answers_as_with_query_parameters(idx):
    """GET /v1/lookup reads its query by hand and writes its JSON directly (for speed). A plain FastAPI
    endpoint declaring the same Query() parameters and response_model must answer every request alike."""
    reference = FastAPI()
    errors.install(reference)

    @reference.get("/healthz")
    def healthz():
        return {}

    @reference.get("/v1/lookup", response_model=LookupResult)
    def lookup(lon: Annotated[float, Query()], lat: Annotated[float, Query()], crs: Annotated[str, Query()] = "wgs84",
               out_crs: Annotated[str, Query()] = "wgs84", at: Annotated[str | None, Query()] = None):
        c, oc, when = _crs_param(crs), _crs_param(out_crs), _at_param(at)
        return {"query": {"lon": lon, "lat": lat, "crs": c}, **assignment_json(idx.lookup(lon, lat, crs=c, at=when), oc)}

    queries = ["", "lon=114.05", "lat=23", "lon=abc&lat=23", "lon=114,05&lat=23.06", "lon=&lat=", "LON=114&lat=2",
               "lon=114.05&lat=23.06&lon=114.06", "lon=nan&lat=23", "lon=-inf&lat=23", "lon=1e308&lat=23.06",
               "lon=23.06&lat=114.05", "lon=114.05&lat=23.06&crs=gcj02", "lon=114.05&lat=23.06&crs=nope",
               "lon=114.05&lat=23.06&crs=", "lon=114.05&lat=23.06&crs=%FF%FE", "lon=114.05&lat=23.06&at=2025-13-45",
               "lon=114.05&lat=23.06&at=2025-06-30", "lon=114.05&lat=23.06&at=", "lon=114.05&lat=23.06&out_crs=EPSG:4547",
               "lon=%20114.05%20&lat=23.06", "lon=1_14.05&lat=23.06", "lon=0x10&lat=1", "lon=114&lat=23",
               "lon=114.05&lat=23.06&extra=1", "lon=1e-400&lat=0", "lon=114.05&lat=23.06&crs=EPSG:4490",
               *(f"lon={x!r}&lat={y!r}" for x, y in vertices()[::60]), "lon=113.9&lat=22.7", "lon=0&lat=0"]
    # In-process (TestClient): both apps see the raw query string exactly as sent.
    with TestClient(create_app(index=idx)) as ours, TestClient(reference) as theirs:
        for q in queries:
            a, b = ours.get(f"/v1/lookup?{q}"), theirs.get(f"/v1/lookup?{q}")
            assert (a.status_code, a.headers["content-type"]) == (b.status_code, b.headers["content-type"]), q
            assert a.json() == b.json(), q
        assert ours.head("/v1/lookup?lon=114.05&lat=23.06").status_code == 405  # as for any FastAPI GET route


# --------------------------------------------------------------------------- nearest=False, far cells, projection

_TO_WGS = pyproj.Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True)
SAME = ["zone_id", "zone_name", "village_code", "chief_id", "status", "on_boundary", "snapped", "lon_wgs84", "lat_wgs84"]


def check_lean_equals_full(index, lon, lat):
    """assign(nearest=False) assigns exactly as assign(); it leaves out only unsnapped outside distances."""
    full = index.assign(lon, lat)
    lean = index.assign(lon, lat, nearest=False)
    pd.testing.assert_frame_equal(lean[SAME], full[SAME])
    snapped = full["snapped"].to_numpy()
    outside = (full["status"] == "outside").to_numpy()
    inside = full["status"].isin(["inside", "boundary"]).to_numpy()
    np.testing.assert_array_equal(lean["distance_m"].to_numpy()[snapped], full["distance_m"].to_numpy()[snapped])
    assert lean["nearest_zone_id"][snapped].equals(full["nearest_zone_id"][snapped])
    assert lean["distance_m"][outside].isna().all() and lean["nearest_zone_id"][outside].isna().all()
    assert (lean["distance_m"][inside] == 0).all() and lean["nearest_zone_id"][inside].isna().all()
    return full


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tol=st.sampled_from([None, 0.0, 1.0, 37.5, 250.0]))
def test_nearest_false_assigns_the_same(idx, seed, tol):
    """Around the outline up to 300 m out (where snapping is decided), on vertices and edges, and uniform."""
    index = idx if tol is None else _with_tolerance(tol)
    rng = np.random.default_rng(seed)
    mx, my = _near_outline_points(400, seed, max_r=300)
    lon, lat = _TO_WGS.transform(mx, my)
    lon = np.concatenate([lon, rng.uniform(MINX - 0.05, MAXX + 0.05, 400), vertices()[:50, 0], edge_points()[:50, 0]])
    lat = np.concatenate([lat, rng.uniform(MINY - 0.05, MAXY + 0.05, 400), vertices()[:50, 1], edge_points()[:50, 1]])
    full = check_lean_equals_full(index, lon, lat)
    assert full["snapped"].any() or index.snap_tolerance_m == 0


_TOLERANCE_INDEXES = {}


def _with_tolerance(tol):
    if tol not in _TOLERANCE_INDEXES:
        _TOLERANCE_INDEXES[tol] = ZoneIndex(_index().units, _index().roster, snap_tolerance_m=tol)
    return _TOLERANCE_INDEXES[tol]


def test_far_cells_are_beyond_the_tolerance(idx):
    """Every point of a cell marked OUT_FAR is farther than the snap tolerance from every village (brute
    force), tested on the far cells next to a searched one, where a mistake would show, corners included."""
    from gis import lookup_kernels as K

    table, g = idx._kernel_args()[1], _grid()
    cells = table[:-1].reshape(g.H, g.W)
    far = cells == K.OUT_FAR
    searched = (cells == K.OUT_NEAR) | (cells == K.MIXED) | (cells >= 0)
    edge = far & (np.roll(searched, 1, 0) | np.roll(searched, -1, 0) | np.roll(searched, 1, 1) | np.roll(searched, -1, 1))
    assert far.mean() > 0.5 and edge.sum() > 1000  # most outside cells are skipped
    rng = np.random.default_rng(5)
    r, c = np.nonzero(edge)
    pick = rng.choice(len(r), 1500, replace=False)
    fx = np.concatenate([rng.uniform(0, 1, 1500), rng.integers(0, 2, 1500)])  # inside the cells, and their corners
    fy = np.concatenate([rng.uniform(0, 1, 1500), rng.integers(0, 2, 1500)])
    cc, rr = np.tile(c[pick], 2), np.tile(r[pick], 2)
    lon, lat = g.x0 + (cc + fx) * g.dx, g.y0 + (rr + fy) * g.dy
    mx, my = _TO_M.transform(lon, lat)
    assert ref_nearest(mx, my).min(axis=0).min() > idx.snap_tolerance_m


@settings(max_examples=300, deadline=None)
@given(u=st.floats(0, 1), v=st.floats(0, 1))
def test_fitted_projection(idx, u, v):
    """The polynomial used in the compiled loop: within 1 mm of pyproj, and the same bits in Python and numba."""
    proj = idx._projection()
    lon_min, lat_min, lon_max, lat_max = proj.box
    lon, lat = lon_min + u * (lon_max - lon_min), lat_min + v * (lat_max - lat_min)
    mx, my = proj.many(np.array([lon] * 3), np.array([lat] * 3))
    assert proj.one(lon, lat) == (mx[0], my[0])
    X, Y = _TO_M.transform(lon, lat)
    assert abs(mx[0] - X) < 1e-3 and abs(my[0] - Y) < 1e-3
    assert proj.max_error_m < 1e-6  # over the shipped towns the fit is far better than needed


def test_without_the_fitted_projection_answers_the_same(monkeypatch):
    """Boundaries where the polynomial would not fit (far from the METRIC meridian) take pyproj instead."""
    from gis.lookup_projection import LocalProjection

    IDX = _index()
    assert IDX._projection().box[0] != np.inf  # fitted before the tolerance is patched: this index uses it
    monkeypatch.setattr(LocalProjection, "TOLERANCE_M", 0.0)
    plain = ZoneIndex(IDX.units, IDX.roster)
    assert plain._projection().box[0] == np.inf  # rejected: nothing is projected with it
    rng = np.random.default_rng(8)
    mx, my = _near_outline_points(500, 8, max_r=3000)
    lon, lat = _TO_WGS.transform(mx, my)
    lon = np.concatenate([lon, rng.uniform(MINX - 0.1, MAXX + 0.1, 2000)])
    lat = np.concatenate([lat, rng.uniform(MINY - 0.1, MAXY + 0.1, 2000)])
    a, b = IDX.assign(lon, lat), plain.assign(lon, lat)
    pd.testing.assert_frame_equal(a.drop(columns="distance_m"), b.drop(columns="distance_m"))
    np.testing.assert_allclose(a["distance_m"], b["distance_m"], atol=0.011)  # cm rounding of a 1e-7 m difference
    check_lean_equals_full(plain, lon, lat)
    one = [plain.lookup(float(p), float(q)) for p, q in zip(lon[::50], lat[::50])]
    assert [o.nearest_zone_id for o in one] == list(b["nearest_zone_id"].astype(object).where(b["nearest_zone_id"].notna(), None)[::50])


def test_assign_leaves_the_input_alone_and_flags_bad_points(idx):
    x = np.array([114.05, np.nan, 200.0, 114.1, np.inf] * 20000)
    y = np.array([23.0, 23.0, 23.0, 95.0, 22.9] * 20000)
    x0, y0 = x.copy(), y.copy()
    df = idx.assign(x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    bad = np.tile([False, True, True, True, True], 20000)
    assert (df["status"][bad] == "invalid").all() and (df["status"][~bad] != "invalid").all()
    assert df["lon_wgs84"][bad].isna().all() and df["problem"][~bad].isna().all()
    assert df["problem"][bad].str.contains("out of range|finite").all()
    np.testing.assert_array_equal(df["lon_wgs84"][~bad], x[~bad])
    ok_x, ok_y = x[~bad], y[~bad]  # all valid: lon_wgs84/lat_wgs84 are the input arrays, as documented
    clean = idx.assign(ok_x, ok_y)
    assert np.shares_memory(clean["lon_wgs84"].to_numpy(), ok_x) and np.shares_memory(clean["lat_wgs84"].to_numpy(), ok_y)


def test_nearest_in_cells_with_long_candidate_lists(idx):
    """Most cells keep their candidates in one row (NearGrid.inline); the rest are read from the CSR
    lists. Both kinds of cell, against brute force, and the rows hold exactly the lists."""
    near = idx._near_grid()
    over = np.flatnonzero(near.inline[:, 0] < 0)
    assert len(over) and (near.count[over] > near.inline.shape[1] - 1).all()
    some = np.flatnonzero(near.inline[:, 0] >= 0)[::997]
    for c in some:
        k = near.inline[c, 0]
        np.testing.assert_array_equal(near.inline[c, 1:1 + k], near.cand[near.start[c]:near.start[c] + k])
    rng = np.random.default_rng(11)
    cells = np.concatenate([over, rng.choice(some, 200)])
    cells = np.repeat(cells, 4)
    mx = near.X0 + (cells % near.nx + rng.uniform(0, 1, len(cells))) * near.size
    my = near.Y0 + (cells // near.nx + rng.uniform(0, 1, len(cells))) * near.size
    check_nearest(idx, mx, my)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_bulk_assign_works_in_a_forked_child(idx):
    """The thread pool of the compiled loops does not survive fork(); a child (a pre-fork server worker,
    a multiprocessing 'fork' pool) must build its own instead of waiting for threads that are not there."""
    rng = np.random.default_rng(4)
    x, y = rng.uniform(MINX, MAXX, 300_000), rng.uniform(MINY, MAXY, 300_000)
    expected = idx.assign(x, y)["zone_id"].astype(str).fillna("-").to_numpy()  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if it answers the same, within the alarm
        signal.alarm(60)
        got = idx.assign(x, y)["zone_id"].astype(str).fillna("-").to_numpy()
        os._exit(0 if (got == expected).all() else 3)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0


def test_single_lookups_do_not_import_numba():
    """numba takes ~0.3 s to import; `zonechief lookup` and the API's one-point path never need it."""
    import subprocess
    import sys

    code = ("import sys; from gis.lookup import ZoneIndex; i = ZoneIndex.load(); "
            "a = i.lookup(114.05, 23.06); b = i.lookup(113.9, 22.7); c = i.lookup(114.0, 22.9, crs='gcj02'); "
            "assert b.status == 'outside' and b.distance_m > 0, b; "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_constants_shared_with_the_kernels():
    from gis import lookup, lookup_grids, lookup_kernels, lookup_projection

    assert lookup_projection.DEGREE == lookup_kernels.DEGREE and lookup_grids.MIXED == lookup_kernels.MIXED
    assert lookup.LOOKUP_STATUSES.index("boundary") == lookup_kernels.BOUNDARY
    assert lookup.LOOKUP_STATUSES.index("snapped") == lookup_kernels.SNAPPED
    assert lookup.LOOKUP_STATUSES.index("invalid") == lookup_kernels.INVALID
