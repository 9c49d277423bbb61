"""Exact point → zone → chief lookup.

Rules (the same for one point and for a batch):
- a point in the interior of a zone gets that zone;
- a point on a zone boundary (shared edge, vertex or outer outline) is covered
  by one or more zones and gets the one with the smallest zone_id, with
  on_boundary=True;
- a point outside every zone gets no zone, plus the nearest zone and its
  distance in metres; within the snap tolerance it is attached to that zone
  and flagged snapped=True.
Semantics are those of shapely's `covers`, computed exactly on the stored
coordinates; no buffering. Batches go through precomputed grids (_CellGrid for
the zone, _NearGrid for the nearest zone), walked by compiled loops
(gis/lookup_kernels.py, numba) on all CPUs, that answer the same, point for
point (tests/test_lookup_fast.py; speed in BENCHMARKS.md). Distances are in
METRIC (EPSG:4547, CGCS2000 / 3-degree Gauss-Krüger CM 114E).
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis import crs as _crs
from gis.boundaries import METRIC, BoundaryError, id_column, load_and_validate
from gis.points import check_coordinates, coordinate_problem
from gis.roster import Person, Roster
from gis.shipped import DATA_DIR, OVERLAP_TOLERANCE_M2, SNAP_TOLERANCE_M

STATUSES = ("inside", "boundary", "snapped", "outside", "invalid")
IN_ZONE = ("inside", "boundary", "snapped")  # the statuses that put a point in a zone


class _LazyKernels:
    """gis.lookup_kernels on first use: importing numba takes ~0.3 s, which a single lookup never needs."""

    def __getattr__(self, name):
        from gis import lookup_kernels

        globals()["kernels"] = lookup_kernels
        return getattr(lookup_kernels, name)


kernels = _LazyKernels()
_DEGREE = 4  # of the fitted projection, as kernels.DEGREE (checked when it is fitted)
def _metric(x, y):
    """WGS-84 -> METRIC through gis.crs's cached transformer (scalars or arrays)."""
    return _crs._transformer("wgs84", _crs.normalize_crs(METRIC)).transform(x, y)


def _from_metric(x, y):
    return _crs._transformer(_crs.normalize_crs(METRIC), "wgs84").transform(x, y)


# Bulk batches are split over threads (the compiled loops release the GIL).
_MIN_PART = 1 << 16
_POOL = None
_POOL_LOCK = threading.Lock()


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(_threads(), thread_name_prefix="zonechief-assign")
    return _POOL


def _forget_pool():  # a forked child has none of its parent's threads
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _in_parts(n: int, fn) -> list:
    """[fn(a, b) for consecutive ranges covering 0..n], on the thread pool when n is large."""
    parts = min(_threads(), max(1, n // _MIN_PART))
    if parts == 1:
        return [fn(0, n)]
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return list(_pool().map(lambda k: fn(bounds[k], bounds[k + 1]), range(parts)))


@dataclass
class Assignment:
    """The answer for one point. Coordinates are WGS-84."""

    lon: float
    lat: float
    status: str
    zone_id: str | None = None
    zone_name: str | None = None
    village_code: str | None = None
    village_name: str | None = None
    town: str | None = None
    town_code: str | None = None
    on_boundary: bool = False
    snapped: bool = False
    distance_m: float = 0.0
    nearest_zone_id: str | None = None
    chief: Person | None = None
    inspectors: list[Person] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


# The string dtype pandas infers for str (pandas 3 with pyarrow: "str"): the categories' dtype.
_TEXT = pd.Series(np.array(["", None], dtype=object)).dtype
_STATUS_DTYPE = pd.CategoricalDtype(pd.Index(STATUSES, dtype=_TEXT))


def _code_dtype(categories: int):
    return np.int8 if categories < 127 else np.int16 if categories < 32767 else np.int32


def _col(gdf, name):
    """Column as an object array of str, with None (not "None" or NaN) where missing."""
    if name not in gdf.columns:
        return np.full(len(gdf), None, dtype=object)
    s = gdf[name]
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in s], dtype=object)


# ---------------------------------------------------------------- fast paths
# Bulk locate: a uniform grid over the units' bounds. A cell whose box, grown by
# _GROW cells on every side, touches no ring of any unit is "pure": every point
# in it has the answer of its centre (first unit whose interior holds it, or
# none). Growing the box makes the cell test robust: computing a point's cell
# is off by ~1e-10 cells at most, so a point always lies in the grown box of
# the cell it is mapped to. The other ("mixed") cells are split into subcells
# classified the same way; points in mixed subcells take the exact shapely pass.
_GRID_CELLS = 1 << 20
_GROW = 1.0 / 64
_MIXED = -2  # kernels.MIXED
_SUB = 8  # a mixed cell is split into 8 x 8 subcells: ~0.15 % of uniform points are left for shapely

# Nearest unit for outside points: a metric grid whose cells list the only ring
# segments that can be nearest to any point of the cell; distances are then
# computed on those few segments (gis/lookup_kernels.py) instead of a GEOS nearest
# search. The compiled loop projects to METRIC with a fitted polynomial
# (_LocalProjection), and, where only snapping needs a distance, skips cells
# too far from every unit to snap (_mark_far_cells).
_NEAR_MARGIN_M = 5000.0  # beyond this from the units' bounds: STRtree search
_NEAR_CELL_M = 80.0
_NO_LOWER = np.empty(0)  # classify prunes with the near grid's lower bounds only when marking far cells
_INLINE = 16  # int16 entries per cell row: a count and up to 15 candidates (99.9 % of the cells)


def _ring_coords(geoms):
    """(unit index, (n, 2) coordinates) of every ring of every polygon part."""
    for k, g in enumerate(geoms):
        for part in shapely.get_parts(g):
            for ring in (part.exterior, *part.interiors):
                yield k, shapely.get_coordinates(ring)


def _expand(starts, counts):
    """Concatenated ranges [s, s + c) for each (s, c), and which range each element came from."""
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return np.repeat(starts - first, counts) + np.arange(counts.sum()), owner


def _touched(u0, v0, u1, v1, grow, nu, nv):
    """(u, v) cell indices whose box grown by `grow` meets a segment; segments have |du| >= |dv|.

    Walks the cells along the major axis u; on each, the segment's v-range comes
    from interpolating at the cell's (grown) u-edges, with a slope of at most 1
    so rounding stays far below `grow`.
    """
    ua, ub = np.minimum(u0, u1), np.maximum(u0, u1)
    c0 = np.clip(np.floor(ua - grow), 0, nu - 1).astype(np.int64)
    c1 = np.clip(np.floor(ub + grow), 0, nu - 1).astype(np.int64)
    c, s = _expand(c0, c1 - c0 + 1)
    du, dv = (u1 - u0)[s], (v1 - v0)[s]
    lo, hi = np.maximum(c - grow, ua[s]), np.minimum(c + 1 + grow, ub[s])
    flat = du == 0  # then the segment is one point (|dv| <= |du|)
    safe = np.where(flat, 1.0, du)
    tl = np.where(flat, 0.0, np.clip((lo - u0[s]) / safe, 0, 1))
    th = np.where(flat, 1.0, np.clip((hi - u0[s]) / safe, 0, 1))
    va, vb = v0[s] + tl * dv, v0[s] + th * dv
    r0 = np.clip(np.floor(np.minimum(va, vb) - grow), 0, nv - 1).astype(np.int64)
    r1 = np.clip(np.floor(np.maximum(va, vb) + grow), 0, nv - 1).astype(np.int64)
    r, t = _expand(r0, r1 - r0 + 1)
    return c[t], r


def _fill_runs(mixed, row_len, centre, first_containing, dtype):
    """Class per cell of rows of `row_len` cells (flat, row-major): mixed cells -2, pure ones by runs.

    A run of pure cells along a row is one boundary-free region (neighbours'
    grown boxes overlap), so the centre of its first cell answers for all of it.
    """
    pure = ~mixed
    start = pure & (np.r_[True, mixed[:-1]] | (np.arange(len(mixed)) % row_len == 0))
    rep = np.flatnonzero(start)
    cls = first_containing(*centre(rep))
    table = np.full(len(mixed), _MIXED, dtype=dtype)
    table[pure] = cls[(np.cumsum(start) - 1)[pure]]
    return table


class _CellGrid:
    """Cell classes over the units' bounds plus a one-cell border: unit k (pure inside), -1 (outside all), -2 (mixed).

    Each mixed cell is split again into _SUB x _SUB subcells, classified the same way.
    """

    def __init__(self, geoms, bounds, first_containing, cells: int = _GRID_CELLS):
        minx, miny = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        w, h = float(bounds[:, 2].max()) - minx, float(bounds[:, 3].max()) - miny
        nx = max(1, int(round(np.sqrt(cells * w / h))))
        ny = max(1, int(round(cells / nx)))
        self.dx, self.dy = w / nx, h / ny
        self.W, self.H = W, H = nx + 2, ny + 2
        self.x0, self.y0 = minx - self.dx, miny - self.dy  # origin of the border column/row
        self.ix, self.iy = 1.0 / self.dx, 1.0 / self.dy
        ring = [np.column_stack(self.to_grid(xy[:, 0], xy[:, 1])) for _, xy in _ring_coords(geoms)]
        a, b = np.concatenate([r[:-1] for r in ring]), np.concatenate([r[1:] for r in ring])
        dtype = np.int8 if len(geoms) < 127 else np.int16 if len(geoms) < 32767 else np.int32

        c, r = self._touch(a, b, W, H)
        mixed = np.zeros(W * H, dtype=bool)
        mixed[r * W + c] = True
        self.table = _fill_runs(mixed, W, lambda k: (self.x0 + (k % W + 0.5) * self.dx, self.y0 + (k // W + 0.5) * self.dy),
                                first_containing, dtype)
        self.mixed_fraction = float(mixed.mean())

        # Subcells, in blocks of _SUB * _SUB per mixed cell (rows of _SUB). Scaling by a power of
        # two is exact, so a subcell's parent is exactly the cell the first level computed.
        self.mixed_cells = np.flatnonzero(mixed)
        S = _SUB
        c, r = self._touch(a * S, b * S, W * S, H * S)
        block = np.searchsorted(self.mixed_cells, (r // S) * W + c // S)
        assert (self.mixed_cells[block] == (r // S) * W + c // S).all()  # a touched subcell's cell is mixed
        sub_mixed = np.zeros(len(self.mixed_cells) * S * S, dtype=bool)
        sub_mixed[block * S * S + (r % S) * S + c % S] = True

        def centre(k):
            cell = self.mixed_cells[k // (S * S)]
            return (self.x0 + ((cell % W) * S + k % S + 0.5) * (self.dx / S),
                    self.y0 + ((cell // W) * S + (k // S) % S + 0.5) * (self.dy / S))

        self.sub = _fill_runs(sub_mixed, S, centre, first_containing, dtype)
        self.sub_mixed_fraction = float(sub_mixed.sum()) / (W * H * S * S)

    @staticmethod
    def _touch(a, b, W, H):
        """(column, row) of the cells whose box grown by _GROW meets a segment a[i]-b[i] (grid coordinates)."""
        steep = np.abs(b[:, 1] - a[:, 1]) > np.abs(b[:, 0] - a[:, 0])
        flat = ~steep
        c, r = _touched(a[flat, 0], a[flat, 1], b[flat, 0], b[flat, 1], _GROW, W, H)
        r2, c2 = _touched(a[steep, 1], a[steep, 0], b[steep, 1], b[steep, 0], _GROW, H, W)
        return np.concatenate([c, c2]), np.concatenate([r, r2])

    def to_grid(self, x, y):
        return (np.asarray(x) - self.x0) * self.ix, (np.asarray(y) - self.y0) * self.iy

    def classify_one(self, x: float, y: float) -> int:
        """Class of one finite point's cell, or of its subcell if the cell is mixed (kernels.classify in plain Python)."""
        gx = min(max((x - self.x0) * self.ix, 0.0), self.W - 1)
        gy = min(max((y - self.y0) * self.iy, 0.0), self.H - 1)
        cell = int(gy) * self.W + int(gx)
        cls = int(self.table[cell])
        if cls != _MIXED:
            return cls
        S = _SUB
        fx = int(min(max((x - self.x0) * (self.ix * S), 0.0), self.W * S - 1))
        fy = int(min(max((y - self.y0) * (self.iy * S), 0.0), self.H * S - 1))
        cell = (fy // S) * self.W + fx // S
        block = int(np.searchsorted(self.mixed_cells, cell))
        if block == len(self.mixed_cells) or self.mixed_cells[block] != cell:
            return _MIXED
        return int(self.sub[block * S * S + (fy % S) * S + fx % S])

def _sq_dist(px, py, seg, s):
    """Squared distance from points to segments seg[s]; an endpoint is used as stored, so ties are exact."""
    ax, ay, sx, sy, inv, bx, by = (np.take(a, s) for a in seg)  # np.take: several times faster than a[s] here
    ex, ey = px - ax, py - ay
    r = (ex * sx + ey * sy) * inv
    np.clip(r, 0.0, 1.0, out=r)
    end = r == 1.0
    qx = np.where(end, bx, ax + r * sx)
    qy = np.where(end, by, ay + r * sy)
    qx -= px
    qy -= py
    qx *= qx
    qy *= qy
    qx += qy
    return qx


class _NearGrid:
    """Candidate segments per metric cell for the nearest-unit search (see _NEAR_CELL_M)."""

    def __init__(self, metric_geoms, margin: float = _NEAR_MARGIN_M, cell: float = _NEAR_CELL_M):
        a, b, u = [], [], []
        for k, xy in _ring_coords(metric_geoms):
            a.append(xy[:-1]), b.append(xy[1:]), u.append(np.full(len(xy) - 1, k))
        a, b, u = np.concatenate(a), np.concatenate(b), np.concatenate(u)
        # A shared edge is stored once per unit, maybe reversed: normalise so both give the same distance.
        swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
        a[swap], b[swap] = b[swap], a[swap].copy()
        keep = (a != b).any(axis=1)
        a, b, self.unit = a[keep], b[keep], u[keep]
        d = b - a
        self.seg = (a[:, 0].copy(), a[:, 1].copy(), d[:, 0].copy(), d[:, 1].copy(), 1.0 / (d * d).sum(axis=1),
                    b[:, 0].copy(), b[:, 1].copy())
        lo, hi = np.minimum(a, b).min(axis=0) - margin, np.maximum(a, b).max(axis=0) + margin
        self.X0, self.Y0 = lo
        # Coarse square cells, halved until about `cell` m; a child only tests its parent's candidates.
        size = float((hi - lo).max()) / 8
        levels = max(0, int(np.floor(np.log2(size / cell))))
        nx0, ny0 = (int(v) for v in np.ceil((hi - lo) / size))
        ci, cj = (v.ravel() for v in np.meshgrid(np.arange(nx0), np.arange(ny0)))
        cnt = np.full(len(ci), len(self.unit))
        cand = np.tile(np.arange(len(self.unit)), len(ci))
        for level in range(levels + 1):
            if level:
                size /= 2
                ci = np.stack([2 * ci, 2 * ci + 1, 2 * ci, 2 * ci + 1], axis=1).ravel()
                cj = np.stack([2 * cj, 2 * cj, 2 * cj + 1, 2 * cj + 1], axis=1).ravel()
                cnt = np.repeat(cnt, 4)
                cand = cand[_expand(np.repeat(first, 4), cnt)[0]]
            cnt, cand, lower = self._prune(ci, cj, cnt, cand, size)
            first = np.cumsum(cnt) - cnt
        self.size, self.nx, self.ny = size, nx0 << levels, ny0 << levels
        # Store the lists in row-major cell order (CSR).
        order = np.argsort(cj * self.nx + ci)
        self.count = cnt[order].astype(np.int32)
        self.lower = lower[order]  # no point of the cell is nearer than this to any unit
        self.start = (np.cumsum(self.count, dtype=np.int64) - self.count)
        self.cand = cand[_expand(first[order], cnt[order])[0]].astype(np.int32)
        self.mean_candidates = float(cnt.mean())
        self.seg_lists, self.unit_list = [a.tolist() for a in self.seg], self.unit.tolist()  # for query_one
        self.seg_rows = np.ascontiguousarray(np.stack(self.seg))  # (7, segments), for the compiled loops
        self.unit32 = self.unit.astype(np.int32)
        self.params = np.array([self.X0, self.Y0, self.size, self.nx, self.ny], dtype="f8")
        # The lists again, one row of _INLINE per cell ([count, candidates...]) where they fit, else count -1:
        # a point's candidates then come in one cache line (half the time of the CSR lists).
        small = np.int16 if len(self.unit) < 32767 else np.int32
        self.inline = np.zeros((len(self.count), _INLINE), dtype=small)
        fits = self.count <= _INLINE - 1
        self.inline[:, 0] = np.where(fits, self.count, -1)
        cells = np.flatnonzero(fits)
        idx, owner = _expand(self.start[cells], self.count[cells].astype(np.int64))
        col = np.arange(len(idx)) - np.repeat(np.cumsum(self.count[cells]) - self.count[cells], self.count[cells]) + 1
        self.inline[cells[owner], col] = self.cand[idx]

    def _prune(self, ci, cj, cnt, cand, size):
        """Keep the segments that can be nearest to some point of the cell.

        With c the cell centre and h its half diagonal, a segment s can be nearest
        to a point p of the cell only if d(c, s) - h <= d(p, s) <= d(p, s_c) <= d(c, s_c) + h.
        """
        h = size * np.sqrt(0.5)
        owner = np.repeat(np.arange(len(ci)), cnt)
        cx, cy = self.X0 + (ci + 0.5) * size, self.Y0 + (cj + 0.5) * size
        keep = np.empty(len(cand), dtype=bool)
        lower = np.empty(len(ci))
        first = np.cumsum(cnt) - cnt
        step = 1 << 13  # cells at a time: temporaries stay in cache
        for c0 in range(0, len(ci), step):
            p0, p1 = first[c0], first[c0 + step] if c0 + step < len(ci) else len(cand)
            o = owner[p0:p1]
            dist = np.sqrt(_sq_dist(np.take(cx, o), np.take(cy, o), self.seg, cand[p0:p1]))
            cell_min = np.minimum.reduceat(dist, first[c0:c0 + step] - p0)
            lower[c0:c0 + step] = cell_min - h - 1e-6 * (1 + cell_min) - 1e-3
            dmin = np.take(cell_min, o - c0)
            keep[p0:p1] = dist <= dmin + 2 * h + 1e-6 * (1 + dmin)  # slack for rounding
        return np.bincount(owner[keep], minlength=len(ci)), cand[keep], lower

    def query_one(self, mx: float, my: float) -> tuple[int, float] | None:
        """query() for one point in plain Python, with the same arithmetic in the same order: same answer, bit for bit."""
        fi, fj = (mx - self.X0) / self.size, (my - self.Y0) / self.size
        if not (0 <= fi < self.nx and 0 <= fj < self.ny):
            return None
        c = int(fj) * self.nx + int(fi)
        s0 = int(self.start[c])
        best, unit = math.inf, -1
        ax, ay, sx, sy, inv, bx, by = self.seg_lists
        for s in self.cand[s0:s0 + int(self.count[c])].tolist():
            ex, ey = mx - ax[s], my - ay[s]
            r = min(max((ex * sx[s] + ey * sy[s]) * inv[s], 0.0), 1.0)
            qx, qy = (bx[s], by[s]) if r == 1.0 else (ax[s] + r * sx[s], ay[s] + r * sy[s])
            qx -= mx
            qy -= my
            d2 = qx * qx + qy * qy
            u = self.unit_list[s]
            if d2 < best or (d2 == best and u < unit):
                best, unit = d2, u
        return unit, math.sqrt(best)

    def query(self, mx, my):
        """Nearest unit (smallest index on a tie) and distance, for metric points; -1 where off the grid."""
        mx, my = np.ascontiguousarray(mx, dtype="f8"), np.ascontiguousarray(my, dtype="f8")
        unit, dist = np.empty(len(mx), dtype=np.int32), np.empty(len(mx))
        kernels.nearest_metric(mx, my, self.params, self.start, self.count, self.cand, self.inline, self.seg_rows, self.unit32,
                               unit, dist)
        return unit.astype(np.int64), dist


class _LocalProjection:
    """WGS-84 -> METRIC as a degree-4 polynomial fitted over a lon/lat box.

    pyproj costs ~100 ns a point and cannot be called inside the compiled loop; the
    fit is checked against pyproj when built and used only if it is within 1 mm
    everywhere in the box (over the shipped towns plus 5 km: 1e-7 m). Outside the
    box, or if the check fails (boundaries far from the METRIC CRS's meridian),
    pyproj is used.
    """

    TOLERANCE_M = 1e-3

    def __init__(self, box):
        lon_min, lat_min, lon_max, lat_max = box
        self.lon0, self.lat0 = (lon_min + lon_max) / 2, (lat_min + lat_max) / 2
        d = _DEGREE
        terms = [(i, j) for i in range(d + 1) for j in range(d + 1 - i)]

        def design(lon, lat):
            du, dv = lon - self.lon0, lat - self.lat0
            return np.column_stack([du ** i * dv ** j for i, j in terms])

        g = np.linspace(0.0, 1.0, 61)
        u, v = (a.ravel() for a in np.meshgrid(g, g))
        lon, lat = lon_min + u * (lon_max - lon_min), lat_min + v * (lat_max - lat_min)
        X, Y = _metric(lon, lat)
        A = design(lon, lat)
        self.coef_x, self.coef_y = np.zeros((d + 1, d + 1)), np.zeros((d + 1, d + 1))
        for coef, target in ((self.coef_x, X), (self.coef_y, Y)):
            sol = np.linalg.lstsq(A, np.asarray(target), rcond=None)[0]
            for (i, j), c in zip(terms, sol):
                coef[i, j] = c
        rng = np.random.default_rng(0)
        lon = np.r_[rng.uniform(lon_min, lon_max, 20000), lon_min, lon_min, lon_max, lon_max]
        lat = np.r_[rng.uniform(lat_min, lat_max, 20000), lat_min, lat_max, lat_min, lat_max]
        X, Y = _metric(lon, lat)
        mx, my = self._poly(self.coef_x, lon - self.lon0, lat - self.lat0), self._poly(self.coef_y, lon - self.lon0, lat - self.lat0)
        self.max_error_m = float(max(np.abs(mx - X).max(), np.abs(my - Y).max()))
        ok = np.isfinite(self.max_error_m) and self.max_error_m <= self.TOLERANCE_M
        self.box = (lon_min, lat_min, lon_max, lat_max) if ok else (np.inf, np.inf, -np.inf, -np.inf)
        self.params = np.array([self.lon0, self.lat0, *self.box], dtype="f8")
        self._cx, self._cy = self.coef_x.tolist(), self.coef_y.tolist()

    def covers(self, x: float, y: float) -> bool:
        return self.box[0] <= x <= self.box[2] and self.box[1] <= y <= self.box[3]

    @staticmethod
    def _poly(c, du, dv):  # kernels._poly in plain Python (floats, or numpy arrays elementwise), same order
        acc = 0.0
        for i in range(_DEGREE, -1, -1):
            inner = 0.0
            for j in range(_DEGREE - i, -1, -1):
                inner = inner * dv + c[i][j]
            acc = acc * du + inner
        return acc

    def one(self, x: float, y: float) -> tuple[float, float]:
        du, dv = x - self.lon0, y - self.lat0
        return self._poly(self._cx, du, dv), self._poly(self._cy, du, dv)

    def many(self, x, y):
        """Metric coordinates: the polynomial inside the box (as in the compiled loop), pyproj elsewhere."""
        x, y = np.ascontiguousarray(x, dtype="f8"), np.ascontiguousarray(y, dtype="f8")
        mx, my = np.empty(len(x)), np.empty(len(x))
        kernels.project(x, y, self.lon0, self.lat0, self.coef_x, self.coef_y, mx, my)
        off = np.flatnonzero(~((x >= self.box[0]) & (x <= self.box[2]) & (y >= self.box[1]) & (y <= self.box[3])))
        if len(off):
            mx[off], my[off] = _metric(x[off], y[off])
        return mx, my


class ZoneIndex:
    """Index over village-level units (each belonging to one zone) plus the roster.

    >>> idx = ZoneIndex.load()
    >>> idx.lookup(114.05, 23.06).zone_id        # doctest: +SKIP
    """

    def __init__(self, units: gpd.GeoDataFrame, roster: Roster | None = None, snap_tolerance_m: float | None = None,
                 overlap_tolerance_m2: float = OVERLAP_TOLERANCE_M2):
        if units.crs is None or units.crs.to_epsg() != 4326:
            units = units.to_crs(4326)
        self.snap_tolerance_m = SNAP_TOLERANCE_M if snap_tolerance_m is None else float(snap_tolerance_m)
        self.overlap_tolerance_m2 = float(overlap_tolerance_m2)  # for validating boundaries that replace these
        u = units.reset_index(drop=True)
        # Deterministic order: a boundary point goes to the first covering unit,
        # i.e. the smallest zone_id (then unit id).
        order = np.lexsort((u["unit_id"].astype(str).to_numpy(), u["zone_id"].astype(str).to_numpy()))
        self.units = u.iloc[order].reset_index(drop=True)
        self.roster = roster
        geoms = self.units.geometry.values
        self._geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(self._geoms)
        self._bounds = shapely.bounds(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        self._metric_geoms = np.asarray(self.units.to_crs(METRIC).geometry.values, dtype=object)
        self._metric_tree = shapely.STRtree(self._metric_geoms)
        self._zone_of_unit = self.units["zone_id"].astype(str).to_numpy()
        self.zones = self._dissolve()
        zone_pos = {z: i for i, z in enumerate(self.zones["zone_id"])}
        self._zone_idx_of_unit = np.array([zone_pos[z] for z in self._zone_of_unit])
        self._zone_boundaries = np.asarray(self.zones.geometry.boundary.values, dtype=object)
        shapely.prepare(self._zone_boundaries)
        self._unit_cols = {c: _col(self.units, c) for c in ("unit_id", "village_code", "village_name", "town", "town_code")}
        self._zone_names = self.zones["name"].to_numpy()
        self._grid = self._near = self._proj = self._kargs = None  # built on first bulk use
        # Per unit, as Python str: zone_id, zone_name, village_code, village_name, town, town_code.
        self._unit_text = [(str(self._zone_of_unit[k]), str(self._zone_names[self._zone_idx_of_unit[k]]),
                            *(self._unit_cols[c][k] for c in ("village_code", "village_name", "town", "town_code")))
                           for k in range(len(self.units))]
        self._build_lock = threading.Lock()
        self._maps_cache, self._lut_cache = {}, {}

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path | None = None, roster: Roster | str | Path | None = None, *,
             id_field: str | None = None, zone_field: str = "zone_id", layer: str | None = None,
             crs: str | None = None, strict: bool = True, snap_tolerance_m: float | None = None,
             data_dir: str | Path = DATA_DIR, overlap_tolerance_m2: float = OVERLAP_TOLERANCE_M2) -> "ZoneIndex":
        """Build the index from the shipped data, or from a boundary file.

        A boundary file may hold villages (with a zone_id column grouping them)
        or zones (each feature its own zone). It is validated first: with
        strict=True, overlaps, gaps and unrepairable geometries raise
        BoundaryError with a report of what and where.
        """
        data_dir = Path(data_dir)
        if path is None:
            path = data_dir / "villages.geojson"
        if roster is None and (data_dir / "roster.csv").exists():
            roster = data_dir / "roster.csv"  # matched by zone_id; zones it does not name have no chief
        if not Path(path).exists():
            raise BoundaryError(f"{path}: no such file (set ZONECHIEF_DATA_DIR or ZONECHIEF_BOUNDARIES)")
        gdf, report = load_and_validate(path, id_field=id_field, tolerance_m2=overlap_tolerance_m2, layer=layer, crs=crs)
        if report.errors or (strict and not report.ok):
            raise BoundaryError(f"boundaries rejected:\n{report}", report)
        gdf = gdf[gdf.geometry.notna()]
        units = normalize_units(gdf, id_field=id_field, zone_field=zone_field)
        if isinstance(roster, (str, Path)):
            roster = Roster.read_csv(roster)
        return cls(units, roster, snap_tolerance_m, overlap_tolerance_m2)

    def _dissolve(self) -> gpd.GeoDataFrame:
        rows = []
        for zid, g in self.units.groupby("zone_id", sort=True):
            names = [n for n in g["village_short_name"] if isinstance(n, str) and n]
            name = g["zone_name"].iloc[0] if "zone_name" in g and isinstance(g["zone_name"].iloc[0], str) else (
                "、".join(names) + "片区" if names else str(zid))
            rows.append({
                "zone_id": str(zid), "name": name,
                "town": g["town"].iloc[0] if "town" in g else None,
                "town_code": g["town_code"].iloc[0] if "town_code" in g else None,
                "village_codes": ",".join(str(c) for c in g["village_code"] if isinstance(c, str)),
                "geometry_quality": g["geometry_quality"].iloc[0] if "geometry_quality" in g else None,
                "geometry": shapely.union_all(g.geometry.values),
            })
        return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)

    # ---------------------------------------------------------------- core
    def locate(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Unit index per WGS-84 point (-1: in no unit) and whether it is in that unit's interior.

        Large batches go through the cell grid (see _CellGrid); the answer is the
        same as _locate_exact's, point for point.
        """
        x = np.ascontiguousarray(lon, dtype="f8").ravel()
        y = np.ascontiguousarray(lat, dtype="f8").ravel()
        if len(x) <= 4:
            unit = np.full(len(x), -1, dtype=np.int32)
            interior = np.zeros(len(x), dtype=bool)
            for i in range(len(x)):
                if np.isfinite(x[i]) and np.isfinite(y[i]):
                    unit[i], interior[i] = self._locate_small(float(x[i]), float(y[i]))
            return unit, interior
        n = len(x)
        unit = np.empty(n, dtype=np.int32)
        status = np.empty(n, dtype=np.int8)  # 6 bytes a point in all, with `interior`
        flagged = self._run_kernel(x, y, unit, status, None, None, check_range=False)
        exact = np.flatnonzero(status == kernels.NEED_EXACT) if flagged else np.empty(0, dtype=np.intp)
        interior = status == kernels.INSIDE
        del status
        if len(exact):
            unit[exact], interior[exact] = self._locate_few(x[exact], y[exact])
        return unit, interior

    def _locate_small(self, x: float, y: float) -> tuple[int, bool]:
        """locate() for one finite point: the units whose bounding box holds it, in order, as in _pass."""
        cand = sorted(self._tree.query(shapely.Point(x, y)))
        for k in cand:
            if shapely.contains_xy(self._geoms[k], x, y):
                return int(k), True
        for k in cand:  # not in any interior: closed polygons (covers), first unit in order wins
            if shapely.intersects_xy(self._geoms[k], x, y):
                return int(k), False
        return -1, False

    def _locate_exact(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """locate() without the grid: shapely on every point (the reference for the fast path)."""
        x = np.ascontiguousarray(lon, dtype="f8").ravel()
        y = np.ascontiguousarray(lat, dtype="f8").ravel()
        unit = np.full(len(x), -1, dtype=np.int32)
        self._pass(x, y, unit, np.arange(len(x)), shapely.contains_xy)
        interior = unit >= 0
        self._cover_pass(x, y, unit, np.flatnonzero(~interior & np.isfinite(x) & np.isfinite(y)))
        return unit, interior

    def _locate_few(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """_locate_exact for a few finite points (those the grids leave): bounding-box candidates from the
        tree, then one vectorized contains / intersects call over all (point, unit) pairs; smallest unit wins."""
        unit = np.full(len(x), -1, dtype=np.int32)
        interior = np.zeros(len(x), dtype=bool)
        if not len(x):
            return unit, interior
        p, u = self._tree.query(shapely.points(x, y))
        none = np.iinfo(np.int32).max
        for predicate, todo in ((shapely.contains_xy, np.ones(len(x), dtype=bool)), (shapely.intersects_xy, None)):
            if todo is None:
                todo = unit < 0
            sel = todo[p]
            pp, uu = p[sel], u[sel]
            hit = predicate(self._geoms[uu], x[pp], y[pp])
            best = np.full(len(x), none, dtype=np.int64)
            np.minimum.at(best, pp[hit], uu[hit])
            got = best < none
            unit[got] = best[got]
            if predicate is shapely.contains_xy:
                interior = got
        return unit, interior

    def _cover_pass(self, x, y, unit, todo):
        # Not in any interior: closed polygons (covers), first unit in order wins.
        if len(todo):
            self._pass(x, y, unit, todo, shapely.intersects_xy)

    def _pass(self, x, y, unit, todo, predicate):
        b = self._bounds
        rx, ry = x[todo], y[todo]
        for k, g in enumerate(self._geoms):
            cand = np.flatnonzero((rx >= b[k, 0]) & (rx <= b[k, 2]) & (ry >= b[k, 1]) & (ry <= b[k, 3]))
            if len(cand):
                hit = cand[predicate(g, rx[cand], ry[cand])]
                if len(hit):
                    unit[todo[hit]] = k
                    todo, rx, ry = np.delete(todo, hit), np.delete(rx, hit), np.delete(ry, hit)
                    if len(todo) == 0:
                        break

    def _first_containing(self, x, y) -> np.ndarray:
        unit = np.full(len(x), -1, dtype=np.int64)
        self._pass(x, y, unit, np.arange(len(x)), shapely.contains_xy)
        return unit

    def _cell_grid(self) -> _CellGrid | None:
        # Built on first bulk use, not in __init__: single lookups never need it.
        if self._grid is None:
            with self._build_lock:
                if self._grid is None:
                    b = self._bounds
                    flat = len(b) == 0 or b[:, 2].max() <= b[:, 0].min() or b[:, 3].max() <= b[:, 1].min()
                    self._grid = False if flat else _CellGrid(self._geoms, b, self._first_containing)
        return self._grid or None

    def _near_grid(self) -> _NearGrid | None:
        if self._near is None:
            with self._build_lock:
                if self._near is None:
                    ok = len(self._metric_geoms) and np.isfinite(shapely.bounds(self._metric_geoms)).all()
                    self._near = _NearGrid(self._metric_geoms) if ok else False
        return self._near or None

    def _projection(self) -> _LocalProjection | None:
        near = self._near_grid()
        if near is not None and self._proj is None:
            with self._build_lock:
                if self._proj is None:
                    # the lon/lat box around the nearest-unit grid (its outline, back from METRIC)
                    t = np.linspace(0.0, 1.0, 201)
                    X1, Y1 = near.X0 + near.nx * near.size, near.Y0 + near.ny * near.size
                    mx = np.r_[near.X0 + t * (X1 - near.X0), np.full_like(t, X1), X1 - t * (X1 - near.X0), np.full_like(t, near.X0)]
                    my = np.r_[np.full_like(t, near.Y0), near.Y0 + t * (Y1 - near.Y0), np.full_like(t, Y1), Y1 - t * (Y1 - near.Y0)]
                    lon, lat = _from_metric(mx, my)
                    self._proj = _LocalProjection((float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))))
        return self._proj if near is not None else None

    def _kernel_args(self) -> tuple:
        """The grids as the arrays kernels.classify takes; a missing grid becomes one that flags every point."""
        if self._kargs is None:
            grid, near, proj = self._cell_grid(), self._near_grid(), self._projection()
            if grid is not None:
                table = np.append(grid.table, grid.table.dtype.type(kernels.INVALID_CLASS))  # where bad points go
                table[table == kernels.OUT_FAR] = kernels.OUT_NEAR  # refined below, once the rest is ready
                mixed = grid.mixed_cells.astype(np.int64)
                g = (np.array([grid.x0, grid.y0, grid.ix, grid.iy, grid.W, grid.H, _SUB], dtype="f8"),
                     table, mixed, np.searchsorted(mixed, np.arange(grid.H + 1) * grid.W), grid.sub)
            else:  # one mixed cell and no subcells: everything goes to the exact pass
                g = (np.array([0, 0, 0, 0, 1, 1, _SUB], dtype="f8"), np.array([_MIXED, kernels.INVALID_CLASS], dtype=np.int8),
                     np.empty(0, dtype=np.int64), np.zeros(2, dtype=np.int64), np.empty(0, dtype=np.int8))
            if near is not None:
                n = (near.params, near.start, near.count, near.lower, near.cand, near.inline, near.seg_rows, near.unit32)
            else:  # nx = 0: every point is off the grid
                n = (np.array([0, 0, 1, 0, 0], dtype="f8"), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int32),
                     np.zeros(1), np.empty(0, dtype=np.int32), np.zeros((1, _INLINE), dtype=np.int16), np.empty((7, 0)),
                     np.empty(0, dtype=np.int32))
            if proj is not None:
                pr = (proj.params, proj.coef_x, proj.coef_y)
            else:
                pr = (np.array([0, 0, np.inf, np.inf, -np.inf, -np.inf]), np.zeros((5, 5)), np.zeros((5, 5)))
            self._kargs = (*g, *pr, n[0], *n[1:])
            if grid is not None and near is not None and proj is not None and self.snap_tolerance_m < _NEAR_MARGIN_M:
                self._mark_far_cells(grid, proj)
        return self._kargs

    def _mark_far_cells(self, grid, proj):
        """OUT_FAR for pure outside cells whose every point is beyond the snap tolerance: their points skip the
        distance search when only snapping needs it (assign(nearest=False)).

        A cell is far if its centre is farther than tolerance + h from every unit, h being the largest
        half-diagonal of a cell in metres; the centres are answered by the kernel itself.
        """
        table = self._kargs[1]
        out = np.flatnonzero(table == kernels.OUT_NEAR)
        W = grid.W
        cx = grid.x0 + (out % W + 0.5) * grid.dx
        cy = grid.y0 + (out // W + 0.5) * grid.dy
        corner_x = np.array([grid.x0, grid.x0, grid.x0 + W * grid.dx, grid.x0 + W * grid.dx])
        corner_y = np.array([grid.y0, grid.y0 + grid.H * grid.dy, grid.y0, grid.y0 + grid.H * grid.dy])
        p00, p11 = proj.many(corner_x, corner_y), proj.many(corner_x + grid.dx, corner_y + grid.dy)
        p10, p01 = proj.many(corner_x + grid.dx, corner_y), proj.many(corner_x, corner_y + grid.dy)
        diag = max(np.hypot(p11[0] - p00[0], p11[1] - p00[1]).max(), np.hypot(p10[0] - p01[0], p10[1] - p01[1]).max())
        reach = self.snap_tolerance_m + 0.5 * diag * 1.001 + 0.01
        unit, status = np.empty(len(out), dtype=np.int32), np.empty(len(out), dtype=np.int8)
        near_u, dist = np.empty(len(out), dtype=np.int32), np.empty(len(out))
        a = self._kargs
        kernels.classify(cx, cy, *a, reach, kernels.SNAP_ONLY, False, self._luts(kernels.SNAP_ONLY), unit, status,
                         near_u, dist)
        table[out[status == kernels.OUTSIDE]] = kernels.OUT_FAR

    def _luts(self, mode):
        if mode not in self._lut_cache:
            self._lut_cache[mode] = kernels.lookup_tables(mode, len(self._geoms))
        return self._lut_cache[mode]

    def _run_kernel(self, x, y, unit, status, nearest, dist, check_range, all_nearest=True) -> int:
        """kernels.classify over the points, in chunks on as many threads as there are CPUs; returns the flagged count.

        nearest/dist None: locate only (outside points get OUTSIDE, no nearest unit, no snapping);
        all_nearest False: nearest unit and distance only where they snap (see assign).
        """
        (g, table, mixed, rows, sub, pp, cx, cy, npar, start, count, lower, cand, inline, seg, segu) = self._kernel_args()
        with_nearest = nearest is not None
        mode = kernels.ALL_NEAREST if with_nearest and all_nearest else kernels.SNAP_ONLY if with_nearest else kernels.LOCATE
        luts = self._luts(mode)
        if not with_nearest:
            nearest, dist = np.empty(0, dtype=np.int32), np.empty(0)
        snap = float(self.snap_tolerance_m)

        def run(a, b):
            return kernels.classify(x[a:b], y[a:b], g, table, mixed, rows, sub, pp, cx, cy, npar, start, count, _NO_LOWER, cand,
                                    inline, seg, segu, snap, mode, check_range, luts, unit[a:b], status[a:b],
                                    nearest[a:b], dist[a:b])  # empty arrays stay empty when sliced

        return sum(_in_parts(len(x), run))

    def _nearest(self, mx, my) -> tuple[np.ndarray, np.ndarray]:
        """Nearest unit (smallest index on a tie) and distance in metres, for points in METRIC outside every unit."""
        near = self._near_grid()
        if near is not None:
            unit, dist = near.query(mx, my)
        else:
            unit, dist = np.full(len(mx), -1, dtype=np.int64), np.full(len(mx), np.nan)
        far = np.flatnonzero(unit < 0)
        if len(far):
            unit[far], dist[far] = self._nearest_far(mx[far], my[far])
        return unit, dist

    def _nearest_far(self, mx, my) -> tuple[np.ndarray, np.ndarray]:
        """_nearest off the grid: a GEOS nearest search (-1, NaN if there are no units)."""
        unit, dist = np.full(len(mx), -1, dtype=np.int64), np.full(len(mx), np.nan)
        pts = shapely.points(mx, my)
        pi, ui = self._metric_tree.query_nearest(pts, all_matches=True)
        best = np.full(len(mx), np.iinfo(np.int64).max)
        np.minimum.at(best, pi, ui)
        got = np.flatnonzero(best < len(self._metric_geoms))
        unit[got] = best[got]
        dist[got] = shapely.distance(pts[got], self._metric_geoms[best[got]])
        return unit, dist

    def _classify(self, x, y, check_range=False, all_nearest=True, clean=True):
        """Unit, nearest unit, distance (m), status code (STATUSES) per point.

        clean=False: nearest and dist hold garbage where not computed (kernels.clean_nearest, which
        _frame runs, tidies them).

        check_range: also treat |lon| > 180 or |lat| > 90 as invalid (input not checked before);
        all_nearest False: nearest unit and distance only for snapped points (-1 and NaN for other outside ones).
        """
        all_nearest = all_nearest or self.snap_tolerance_m >= _NEAR_MARGIN_M  # the kernel's shortcut needs tol < margin
        n = len(x)
        small = _code_dtype(len(self._geoms) + 1)  # unit indices: int8 up to 125 units, less to read and write
        unit = np.empty(n, dtype=small)
        status = np.empty(n, dtype=np.int8)
        nearest = np.empty(n, dtype=small)
        dist = np.empty(n)
        if self._run_kernel(x, y, unit, status, nearest, dist, check_range, all_nearest):
            self._settle(x, y, np.flatnonzero(status >= kernels.NEED_EXACT), unit, status, nearest, dist, all_nearest)
        if clean:
            _in_parts(n, lambda a, b: kernels.clean_nearest(status[a:b], nearest[a:b], dist[a:b], all_nearest, False))
        return unit, nearest, dist, status, all_nearest

    def _settle(self, x, y, flagged, unit, status, nearest, dist, all_nearest=True):
        """The points the kernel left: exact locate (mixed subcells), then nearest unit via pyproj/GEOS where needed."""
        exact = flagged[status[flagged] == kernels.NEED_EXACT]
        far = flagged[status[flagged] == kernels.NEED_NEAREST]
        if len(exact):
            u, interior = self._locate_few(x[exact], y[exact])
            unit[exact] = u
            status[exact] = kernels.INSIDE
            edge = np.flatnonzero((u >= 0) & ~interior)
            if len(edge):
                zb = self._zone_boundaries[self._zone_idx_of_unit[u[edge]]]
                on = shapely.intersects_xy(zb, x[exact[edge]], y[exact[edge]])
                status[exact[edge[on]]] = kernels.BOUNDARY
            far = np.concatenate([far, exact[u < 0]])
        if not len(far):
            return
        proj = self._projection()
        mx, my = proj.many(x[far], y[far]) if proj is not None else _metric(x[far], y[far])
        nu, d = self._nearest(np.asarray(mx, dtype="f8"), np.asarray(my, dtype="f8"))
        got = nu >= 0
        nearest[far] = np.where(got, nu, -1)
        dist[far] = np.where(got, d, 0.0)
        snap = got & (d <= self.snap_tolerance_m)
        unit[far] = np.where(snap, nu, -1)
        status[far] = np.where(snap, kernels.SNAPPED, kernels.OUTSIDE)
        if not all_nearest:
            nearest[far[~snap]] = -1
            dist[far[~snap]] = np.nan

    # ---------------------------------------------------------------- public API
    def assign(self, lons, lats=None, crs: str = "wgs84", at=None, nearest: bool = True) -> pd.DataFrame:
        """Assign many points. Returns one row per input point, in input order.

        `lons, lats` are array-likes in `crs`; or pass a GeoSeries / GeoDataFrame
        as `lons` (its own CRS is used; `crs` names it when it has none, e.g.
        "gcj02"). Rows that cannot be assigned are kept, with status
        "outside" or "invalid"; nothing is dropped.

        Columns: zone_id, zone_name, village_code, village_name, town, chief_id,
        chief_name, chief_phone, inspector_ids, status, on_boundary, snapped,
        distance_m, nearest_zone_id, lon_wgs84, lat_wgs84, problem. Text columns
        are pandas Categoricals (one small integer code per point). For WGS-84
        float64 input without invalid points, lon_wgs84/lat_wgs84 are the input
        arrays themselves, not copies.

        nearest=True gives every outside point its nearest zone and the distance
        in metres; nearest=False only the snapped ones (the others get no
        nearest_zone_id and distance_m NaN), which skips the distance search for
        points far from every zone: the zones, chiefs, statuses and snapping are
        the same either way.
        """
        geo = None
        if isinstance(lons, (gpd.GeoSeries, gpd.GeoDataFrame)):
            geo = lons
            gs = lons.geometry if isinstance(lons, gpd.GeoDataFrame) else lons
            if gs.crs is not None and _crs.normalize_crs(crs) == "wgs84":
                gs = gs.to_crs(4326)
                crs = "wgs84"
            empty = gs.isna() | gs.is_empty
            xs = np.where(empty, np.nan, gs.x.where(~empty))
            ys = np.where(empty, np.nan, gs.y.where(~empty))
        else:
            xs = np.asarray(lons, dtype="f8").ravel()
            ys = np.asarray(lats, dtype="f8").ravel()
            if xs.shape != ys.shape:
                raise ValueError(f"lons and lats differ in length ({len(xs)} vs {len(ys)})")
        xs = np.ascontiguousarray(xs, dtype="f8")
        ys = np.ascontiguousarray(ys, dtype="f8")
        if _crs.normalize_crs(crs) == "wgs84":
            # The kernel checks finiteness and range itself; lon_wgs84/lat_wgs84 then share the input's memory.
            lon, lat = xs, ys
            unit, near, dist, status, all_near = self._classify(lon, lat, check_range=True, all_nearest=nearest, clean=False)
        else:
            ok = check_coordinates(xs, ys, crs, raise_error=False)
            lon, lat = _crs.to_wgs84(np.where(ok, xs, np.nan), np.where(ok, ys, np.nan), crs)
            lon = np.atleast_1d(np.asarray(lon, dtype="f8"))
            lat = np.atleast_1d(np.asarray(lat, dtype="f8"))
            unit, near, dist, status, all_near = self._classify(lon, lat, all_nearest=nearest, clean=False)
        df = self._frame(unit, near, dist, status, all_near, lon, lat, at,
                         lambda bad: [coordinate_problem(float(xs[i]), float(ys[i]), crs) for i in bad])
        if geo is not None:
            base = geo if isinstance(geo, gpd.GeoDataFrame) else gpd.GeoDataFrame(geometry=geo)
            # Positional, not an index join: a duplicated index label must not multiply rows.
            out = base.copy()
            for c in df.columns:
                out[c + "_zc" if c in base.columns else c] = df[c].array
            return out
        return df

    def _code_maps(self, at):
        """Unit -> category code per text column, for the roster on `at`'s day: (maps, {column: (map row, dtype)},
        identity rows: the maps that give each unit its own category, in unit order).

        Each column's value per unit is factorized once; columns with the same unit -> code
        map share one row. maps[:, 0] is -1 (no unit). Cached per distinct set of values.
        """
        chiefs = self.roster.chiefs_by_zone(at) if self.roster else {}
        insp = self.roster.inspectors_by_zone(at) if self.roster else {}
        zu = self._zone_of_unit
        per_unit = {
            "zone_id": zu,
            "zone_name": self._zone_names[self._zone_idx_of_unit],
            "village_code": self._unit_cols["village_code"],
            "village_name": self._unit_cols["village_name"],
            "town": self._unit_cols["town"],
            "chief_id": [chiefs[z].person_id if z in chiefs else None for z in zu],
            "chief_name": [chiefs[z].name if z in chiefs else None for z in zu],
            "chief_phone": [chiefs[z].phone if z in chiefs else None for z in zu],
            "inspector_ids": [";".join(p.person_id for p in insp.get(z, [])) for z in zu],
        }
        key = tuple(tuple(v) for v in per_unit.values())
        hit = self._maps_cache.get(key)
        if hit is None:
            maps, row_of, cols = [], {}, {}
            for name, values in per_unit.items():
                codes, uniques = pd.factorize(np.asarray(values, dtype=object).reshape(-1))  # first-seen order: shared maps
                if codes.tobytes() not in row_of:
                    row_of[codes.tobytes()] = len(maps)
                    maps.append(codes)
                cols[name] = (row_of[codes.tobytes()], pd.CategoricalDtype(pd.Index(uniques, dtype=_TEXT)))
            dt = _code_dtype(max((len(d.categories) for _, d in cols.values()), default=0))
            maps = np.column_stack([np.full(len(maps), -1), np.array(maps).reshape(len(maps), len(zu))]).astype(dt)
            identity = {r for r, m in enumerate(maps) if len(m) > 1 and (m[1:] == np.arange(len(m) - 1)).all()}
            hit = (maps, cols, identity)
            if len(self._maps_cache) > 16:  # a roster change per day; keep it bounded
                self._maps_cache.clear()
            self._maps_cache[key] = hit
        return hit

    def _frame(self, unit, nearest, dist, status, all_nearest, lon, lat, at, problems_of) -> pd.DataFrame:
        """The result table. Text columns are Categoricals: a code per point (int8 up to 126 values), no strings.

        problems_of(indices of invalid points) gives their problem messages; those points get NaN lon/lat.
        """
        n = len(unit)
        maps, cats, identity = self._code_maps(at)
        zone_row, zone_dtype = cats["zone_id"]
        # A map that is the identity (one category per unit, in unit order) needs no pass: the unit
        # indices are its codes.
        ident = identity if maps.dtype == unit.dtype else set()
        rows = [r for r in range(len(maps)) if r not in ident]
        codes = np.empty((len(rows) + 1, n), dtype=maps.dtype)
        onb, snapped = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        invalid = _in_parts(n, lambda a, b: kernels.finish(unit[a:b], nearest[a:b], status[a:b], dist[a:b], all_nearest,
                                                          maps[rows], maps[zone_row], codes[:, a:b], onb[a:b], snapped[a:b]))
        code_of = {r: unit if r in ident else codes[rows.index(r)] for r in range(len(maps))}
        cols = {name: pd.Categorical.from_codes(code_of[row], dtype=dtype, validate=False) for name, (row, dtype) in cats.items()}
        cols["status"] = pd.Categorical.from_codes(status, dtype=_STATUS_DTYPE, validate=False)
        cols["on_boundary"] = onb
        cols["snapped"] = snapped
        cols["distance_m"] = dist
        cols["nearest_zone_id"] = pd.Categorical.from_codes(codes[-1], dtype=zone_dtype, validate=False)
        cols["lon_wgs84"] = lon
        cols["lat_wgs84"] = lat
        bad = np.flatnonzero(status == kernels.INVALID) if sum(invalid) else np.empty(0, dtype=np.intp)
        if len(bad):  # not the input's values (lon/lat may be the input arrays themselves)
            cols["lon_wgs84"], cols["lat_wgs84"] = lon.copy(), lat.copy()
            cols["lon_wgs84"][bad] = cols["lat_wgs84"][bad] = np.nan
        pcodes, puniques = pd.factorize(np.asarray(problems_of(bad), dtype=object), sort=True)
        p = np.full(n, -1, dtype=_code_dtype(len(puniques)))
        p[np.asarray(bad, dtype=np.intp)] = pcodes
        cols["problem"] = pd.Categorical.from_codes(p, categories=pd.Index(puniques, dtype=_TEXT), validate=False)
        return pd.DataFrame(cols, copy=False)

    def lookup(self, lon: float, lat: float, crs: str = "wgs84", at=None) -> Assignment:
        """Answer one point. Raises CoordinateError / UnknownCRSError on bad input."""
        if (type(lon) in (float, int) and type(lat) in (float, int) and math.isfinite(lon) and math.isfinite(lat)
                and abs(lon) <= 180 and abs(lat) <= 90 and _crs.normalize_crs(crs) == "wgs84"):
            return self._lookup_one(float(lon), float(lat), at)  # the common case, without numpy
        check_coordinates(lon, lat, crs, raise_error=True)
        x, y = _crs.to_wgs84(np.array([lon], dtype="f8"), np.array([lat], dtype="f8"), crs)
        return self._lookup_one(float(np.ravel(x)[0]), float(np.ravel(y)[0]), at)

    def _lookup_one(self, x: float, y: float, at) -> Assignment:
        """_classify for one valid WGS-84 point, in plain Python: per-call numpy overhead would dominate."""
        grid = self._cell_grid()
        cls = grid.classify_one(x, y) if grid is not None else _MIXED
        unit, interior = (cls, cls >= 0) if cls != _MIXED else self._locate_small(x, y)
        onb = unit >= 0 and not interior and bool(
            shapely.intersects_xy(self._zone_boundaries[self._zone_idx_of_unit[unit]], x, y))
        nearest, dist, snapped = -1, 0.0, False
        if unit < 0:
            proj = self._projection()
            mx, my = proj.one(x, y) if proj is not None and proj.covers(x, y) else _metric(x, y)
            near = self._near_grid()
            found = near.query_one(float(mx), float(my)) if near is not None else None
            if found is None:  # off the grid: the same GEOS search as in bulk
                nu, d = self._nearest_far(np.array([mx], dtype="f8"), np.array([my], dtype="f8"))
                found = (int(nu[0]), float(d[0])) if nu[0] >= 0 else (-1, 0.0)
            nearest, dist = found
            if nearest >= 0 and dist <= self.snap_tolerance_m:
                snapped, unit = True, nearest
        status = "snapped" if snapped else "boundary" if onb else "inside" if unit >= 0 else "outside"
        chief, inspectors = self.roster.staff(self._unit_text[unit][0], at) if self.roster and unit >= 0 else (None, [])
        return self._assignment(x, y, unit, status, onb, snapped, nearest, dist, chief, inspectors)

    def _assignment(self, x, y, k, status, onb, snapped, nearest, dist, chief, inspectors) -> Assignment:
        a = Assignment(lon=float(x), lat=float(y), status=status, on_boundary=bool(onb), snapped=bool(snapped),
                       distance_m=round(float(dist), 2),
                       nearest_zone_id=self._unit_text[nearest][0] if nearest >= 0 else None)
        if k >= 0:
            a.zone_id, a.zone_name, a.village_code, a.village_name, a.town, a.town_code = self._unit_text[k]
            a.chief = chief
            a.inspectors = inspectors
        return a

    def lookup_many(self, lons, lats, crs: str = "wgs84", at=None) -> list[Assignment]:
        """Like lookup() for many points, vectorized; invalid points get status "invalid"."""
        xs, ys = np.asarray(lons, dtype="f8").ravel(), np.asarray(lats, dtype="f8").ravel()
        ok = check_coordinates(xs, ys, crs, raise_error=False)
        x, y = _crs.to_wgs84(np.where(ok, xs, np.nan), np.where(ok, ys, np.nan), crs)
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        unit, nearest, dist, status, _ = self._classify(x, y)
        onb, snapped = status == kernels.BOUNDARY, status == kernels.SNAPPED
        chiefs = self.roster.chiefs_by_zone(at) if self.roster else {}
        insp = self.roster.inspectors_by_zone(at) if self.roster else {}
        out = []
        for i in range(len(x)):
            k = int(unit[i])
            z = self._zone_of_unit[k] if k >= 0 else None
            out.append(self._assignment(x[i], y[i], k, STATUSES[status[i]], onb[i], snapped[i], int(nearest[i]), dist[i],
                                        chiefs.get(z), insp.get(z, [])))
        return out

    def zone(self, zone_id: str) -> gpd.GeoDataFrame:
        z = self.zones[self.zones.zone_id == zone_id]
        if z.empty:
            raise KeyError(zone_id)
        return z


def normalize_units(gdf: gpd.GeoDataFrame, id_field: str | None = None, zone_field: str = "zone_id") -> gpd.GeoDataFrame:
    """Map a boundary layer's columns to the index schema.

    Recognized: code/village_code, name/village_name, short_name, town,
    town_code, zone_id (missing: each feature is its own zone), zone_name.
    """
    col = id_column(gdf, id_field)
    out = gpd.GeoDataFrame(geometry=gdf.geometry.values, crs=gdf.crs)
    out["unit_id"] = gdf[col].astype(str).to_numpy()
    out["zone_id"] = (gdf[zone_field] if zone_field in gdf.columns else gdf[col]).astype(str).to_numpy()
    for dst, srcs in {"village_code": ("village_code", "code"), "village_name": ("village_name", "name"),
                      "village_short_name": ("short_name", "village_short_name"), "town": ("town",),
                      "town_code": ("town_code",), "zone_name": ("zone_name",),
                      "geometry_quality": ("geometry_quality",)}.items():
        src = next((s for s in srcs if s in gdf.columns), None)
        out[dst] = gdf[src].where(gdf[src].notna(), None).astype(object).to_numpy() if src else None
    each_own_zone = zone_field not in gdf.columns or zone_field == col
    if each_own_zone and "name" in gdf.columns and "zone_name" not in gdf.columns:
        out["zone_name"] = gdf["name"].astype(str).to_numpy()
    return out
