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
the zone, _NearGrid for the nearest zone) that answer the same, point for point
(tests/test_lookup_fast.py; speed in BENCHMARKS.md).
"""
from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import crs as _crs
from .boundaries import METRIC, BoundaryError, id_column, load_and_validate
from .points import check_coordinates, coordinate_problem
from .roster import Person, Roster
from .settings import get_settings

STATUSES = ("inside", "boundary", "snapped", "outside", "invalid")
_to_metric = None


def _metric(x, y):
    global _to_metric
    if _to_metric is None:
        import pyproj

        _to_metric = pyproj.Transformer.from_crs("EPSG:4326", METRIC, always_xy=True)
    return _to_metric.transform(x, y)


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


# What pandas makes of an object array of str/None here (pandas 3 with pyarrow: the arrow-backed "str").
_TEXT = pd.Series(np.array(["", None], dtype=object)).dtype


def _take_text(values, idx, valid):
    """values[idx], missing where not valid: the column pandas would infer from that object array.

    Inferring a million-row object column costs ~50 ms; an arrow take ~5x less.
    """
    values = np.asarray(values, dtype=object)
    present = np.array([v is not None for v in values], dtype=bool)
    i = np.where(valid, idx, 0)
    if isinstance(_TEXT, pd.StringDtype) and _TEXT.storage == "pyarrow" and len(values) and (np.take(present, i) & valid).any():
        import pyarrow as pa
        import pyarrow.compute as pc

        taken = pc.take(pa.array(list(values), type=pa.large_string()), pa.array(i, mask=~np.asarray(valid)))
        return pd.array(taken, dtype=_TEXT)
    out = values[i]  # all missing (pandas keeps object dtype then) or no arrow strings
    out[~valid] = None
    return out


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
_MIXED = -2
_SUB = 8  # a mixed cell is split into 8 x 8 subcells: ~0.2 % of uniform points are left for shapely
_CHUNK = 1 << 16  # points per step: temporaries stay ~2 MB whatever the batch size

# Nearest unit for outside points: a metric grid whose cells list the only ring
# segments that can be nearest to any point of the cell; distances are then
# computed in numpy on those few segments instead of a GEOS nearest search.
_NEAR_MARGIN_M = 5000.0  # beyond this from the units' bounds: STRtree search
_NEAR_CELL_M = 80.0


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

    def cells(self, x, y, bx, by):
        """Flat cell index per point (buffers bx, by as long as x); anything off the grid, NaN included, lands on the border."""
        np.subtract(x, self.x0, out=bx)
        np.multiply(bx, self.ix, out=bx)
        np.fmax(bx, 0, out=bx)  # fmax/fmin, not clip: NaN becomes 0, a border cell
        np.fmin(bx, self.W - 1, out=bx)
        np.subtract(y, self.y0, out=by)
        np.multiply(by, self.iy, out=by)
        np.fmax(by, 0, out=by)
        np.fmin(by, self.H - 1, out=by)
        cell = by.astype(np.int32)  # truncation is floor: values are >= 0
        cell *= self.W
        cell += bx.astype(np.int32)
        return cell

    def classify_one(self, x: float, y: float) -> int:
        """Class of one finite point's cell, or of its subcell if the cell is mixed: cells() and subcells() in plain Python."""
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

    def subcells(self, x, y):
        """Subcell class for points whose cell is mixed (-2 again where the subcell is mixed too)."""
        S = _SUB
        fx = np.fmin(np.fmax((x - self.x0) * (self.ix * S), 0), self.W * S - 1).astype(np.int64)
        fy = np.fmin(np.fmax((y - self.y0) * (self.iy * S), 0), self.H * S - 1).astype(np.int64)
        cell = (fy // S) * self.W + fx // S
        block = np.minimum(np.searchsorted(self.mixed_cells, cell), len(self.mixed_cells) - 1)
        cls = np.take(self.sub, block * S * S + (fy % S) * S + fx % S)
        cls[self.mixed_cells[block] != cell] = _MIXED  # not a mixed cell after all: the exact test decides
        return cls


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
            cnt, cand = self._prune(ci, cj, cnt, cand, size)
            first = np.cumsum(cnt) - cnt
        self.size, self.nx, self.ny = size, nx0 << levels, ny0 << levels
        # Store the lists in row-major cell order (CSR).
        order = np.argsort(cj * self.nx + ci)
        self.count = cnt[order].astype(np.int32)
        self.start = (np.cumsum(self.count, dtype=np.int64) - self.count)
        self.cand = cand[_expand(first[order], cnt[order])[0]].astype(np.int32)
        self.mean_candidates = float(cnt.mean())
        self.seg_lists, self.unit_list = [a.tolist() for a in self.seg], self.unit.tolist()  # for query_one

    def _prune(self, ci, cj, cnt, cand, size):
        """Keep the segments that can be nearest to some point of the cell.

        With c the cell centre and h its half diagonal, a segment s can be nearest
        to a point p of the cell only if d(c, s) - h <= d(p, s) <= d(p, s_c) <= d(c, s_c) + h.
        """
        h = size * np.sqrt(0.5)
        owner = np.repeat(np.arange(len(ci)), cnt)
        cx, cy = self.X0 + (ci + 0.5) * size, self.Y0 + (cj + 0.5) * size
        keep = np.empty(len(cand), dtype=bool)
        first = np.cumsum(cnt) - cnt
        step = 1 << 13  # cells at a time: temporaries stay in cache
        for c0 in range(0, len(ci), step):
            p0, p1 = first[c0], first[c0 + step] if c0 + step < len(ci) else len(cand)
            o = owner[p0:p1]
            dist = np.sqrt(_sq_dist(np.take(cx, o), np.take(cy, o), self.seg, cand[p0:p1]))
            dmin = np.take(np.minimum.reduceat(dist, first[c0:c0 + step] - p0), o - c0)
            keep[p0:p1] = dist <= dmin + 2 * h + 1e-6 * (1 + dmin)  # slack for rounding
        return np.bincount(owner[keep], minlength=len(ci)), cand[keep]

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
        n = len(mx)
        unit = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        for s0 in range(0, n, _CHUNK // 4):
            px, py = mx[s0:s0 + _CHUNK // 4], my[s0:s0 + _CHUNK // 4]
            fi, fj = (px - self.X0) / self.size, (py - self.Y0) / self.size
            on = np.flatnonzero((fi >= 0) & (fi < self.nx) & (fj >= 0) & (fj < self.ny))
            if not len(on):
                continue
            c = fj[on].astype(np.int64) * self.nx + fi[on].astype(np.int64)
            k = np.take(self.count, c)
            s, owner = _expand(np.take(self.start, c), k)
            s = np.take(self.cand, s)
            d2 = _sq_dist(np.take(px[on], owner), np.take(py[on], owner), self.seg, s)
            first = np.cumsum(k) - k
            best = np.minimum.reduceat(d2, first)
            tied = np.where(d2 == np.take(best, owner), np.take(self.unit, s), np.iinfo(np.int64).max)
            unit[s0 + on] = np.minimum.reduceat(tied, first)
            dist[s0 + on] = np.sqrt(best)
        return unit, dist


class ZoneIndex:
    """Index over village-level units (each belonging to one zone) plus the roster.

    >>> idx = ZoneIndex.load()
    >>> idx.lookup(114.05, 23.06).zone_id        # doctest: +SKIP
    """

    def __init__(self, units: gpd.GeoDataFrame, roster: Roster | None = None, snap_tolerance_m: float | None = None):
        if units.crs is None or units.crs.to_epsg() != 4326:
            units = units.to_crs(4326)
        s = get_settings()
        self.snap_tolerance_m = s.snap_tolerance_m if snap_tolerance_m is None else float(snap_tolerance_m)
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
        self._grid = self._near = None  # built on first bulk use
        # Per unit, as Python str: zone_id, zone_name, village_code, village_name, town, town_code.
        self._unit_text = [(str(self._zone_of_unit[k]), str(self._zone_names[self._zone_idx_of_unit[k]]),
                            *(self._unit_cols[c][k] for c in ("village_code", "village_name", "town", "town_code")))
                           for k in range(len(self.units))]
        self._build_lock = threading.Lock()

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path | None = None, roster: Roster | str | Path | None = None, *,
             id_field: str | None = None, zone_field: str = "zone_id", layer: str | None = None,
             crs: str | None = None, strict: bool = True, snap_tolerance_m: float | None = None) -> "ZoneIndex":
        """Build the index from the shipped data, or from a boundary file.

        A boundary file may hold villages (with a zone_id column grouping them)
        or zones (each feature its own zone). It is validated first: with
        strict=True, overlaps, gaps and unrepairable geometries raise
        BoundaryError with a report of what and where.
        """
        s = get_settings()
        if path is None:
            path = s.boundaries or (s.data_dir / "villages.geojson")
        if roster is None and (s.data_dir / "roster.csv").exists():
            roster = s.data_dir / "roster.csv"  # matched by zone_id; zones it does not name have no chief
        if not Path(path).exists():
            raise BoundaryError(f"{path}: no such file (set ZONECHIEF_DATA_DIR or ZONECHIEF_BOUNDARIES)")
        gdf, report = load_and_validate(path, id_field=id_field, tolerance_m2=s.overlap_tolerance_m2, layer=layer, crs=crs)
        if report.errors or (strict and not report.ok):
            raise BoundaryError(f"boundaries rejected:\n{report}", report)
        gdf = gdf[gdf.geometry.notna()]
        units = normalize_units(gdf, id_field=id_field, zone_field=zone_field)
        if isinstance(roster, (str, Path)):
            roster = Roster.read_csv(roster)
        return cls(units, roster, snap_tolerance_m)

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
        grid = self._cell_grid()
        if grid is None:
            return self._locate_exact(x, y)
        n = len(x)
        unit = np.empty(n, dtype=np.int32)  # 5 bytes a point with `interior`; the rest is per chunk
        interior = np.empty(n, dtype=bool)
        bx, by = np.empty(min(n, _CHUNK)), np.empty(min(n, _CHUNK))
        mixed = []
        for s0 in range(0, n, _CHUNK):
            s1 = min(n, s0 + _CHUNK)
            m = s1 - s0
            cls = np.take(grid.table, grid.cells(x[s0:s1], y[s0:s1], bx[:m], by[:m]))
            unit[s0:s1] = cls
            np.greater_equal(cls, 0, out=interior[s0:s1])
            mixed.append(np.flatnonzero(cls == _MIXED) + s0)
        todo = np.concatenate(mixed)
        cls = grid.subcells(x[todo], y[todo])
        unit[todo] = cls
        interior[todo] = cls >= 0
        todo = todo[cls == _MIXED]
        unit[todo] = -1
        self._pass(x, y, unit, todo, shapely.contains_xy)
        interior[todo] = unit[todo] >= 0
        self._cover_pass(x, y, unit, todo[~interior[todo]])
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

    def _nearest(self, mx, my) -> tuple[np.ndarray, np.ndarray]:
        """Nearest unit (smallest index on a tie) and distance in metres, for points in METRIC outside every unit."""
        near = self._near_grid()
        if near is not None:
            unit, dist = near.query(mx, my)
        else:
            unit, dist = np.full(len(mx), -1, dtype=np.int64), np.full(len(mx), np.nan)
        far = np.flatnonzero(unit < 0)
        if len(far):  # off the grid: a GEOS nearest search
            pts = shapely.points(mx[far], my[far])
            pi, ui = self._metric_tree.query_nearest(pts, all_matches=True)
            best = np.full(len(far), np.iinfo(np.int64).max)
            np.minimum.at(best, pi, ui)
            got = np.flatnonzero(best < len(self._metric_geoms))
            unit[far[got]] = best[got]
            dist[far[got]] = shapely.distance(pts[got], self._metric_geoms[best[got]])
        return unit, dist

    def _classify(self, x, y):
        """Unit, zone-boundary flag, snapped flag, nearest unit, distance (m), status code (STATUSES) per point."""
        n = len(x)
        unit, interior = self.locate(x, y)
        onb = np.zeros(n, dtype=bool)
        edge = np.flatnonzero((unit >= 0) & ~interior)
        if len(edge):
            zb = self._zone_boundaries[self._zone_idx_of_unit[unit[edge]]]
            onb[edge] = shapely.intersects_xy(zb, x[edge], y[edge])
        finite = np.isfinite(x) & np.isfinite(y)
        dist = np.zeros(n)
        nearest = np.full(n, -1, dtype=np.int64)
        out = np.flatnonzero((unit < 0) & finite)
        snapped = np.zeros(n, dtype=bool)
        if len(out):
            mx, my = _metric(x[out], y[out])
            nu, d = self._nearest(np.asarray(mx, dtype="f8"), np.asarray(my, dtype="f8"))
            got = nu >= 0
            nearest[out[got]] = nu[got]
            dist[out[got]] = d[got]
            near_ok = out[got][d[got] <= self.snap_tolerance_m]
            snapped[near_ok] = True
            unit[near_ok] = nearest[near_ok]
        dist[~finite] = np.nan
        status = np.full(n, STATUSES.index("outside"), dtype=np.int8)  # codes into STATUSES
        status[unit >= 0] = STATUSES.index("inside")
        status[onb] = STATUSES.index("boundary")
        status[snapped] = STATUSES.index("snapped")
        status[~finite] = STATUSES.index("invalid")
        return unit, onb, snapped, nearest, dist, status

    # ---------------------------------------------------------------- public API
    def assign(self, lons, lats=None, crs: str = "wgs84", at=None) -> pd.DataFrame:
        """Assign many points. Returns one row per input point, in input order.

        `lons, lats` are array-likes in `crs`; or pass a GeoSeries / GeoDataFrame
        as `lons` (its own CRS is used; `crs` names it when it has none, e.g.
        "gcj02"). Rows that cannot be assigned are kept, with status
        "outside" or "invalid"; nothing is dropped.
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
        xs = np.asarray(xs, dtype="f8")
        ys = np.asarray(ys, dtype="f8")
        ok = check_coordinates(xs, ys, crs, raise_error=False)
        lon, lat = _crs.to_wgs84(np.where(ok, xs, np.nan), np.where(ok, ys, np.nan), crs)
        lon = np.atleast_1d(np.asarray(lon, dtype="f8"))
        lat = np.atleast_1d(np.asarray(lat, dtype="f8"))
        unit, onb, snapped, nearest, dist, status = self._classify(lon, lat)
        df = self._frame(unit, onb, snapped, nearest, dist, status, lon, lat, at)
        df["problem"] = None
        bad = np.flatnonzero(~ok)
        df.loc[bad, "problem"] = [coordinate_problem(float(xs[i]), float(ys[i]), crs) for i in bad]
        if geo is not None:
            base = geo if isinstance(geo, gpd.GeoDataFrame) else gpd.GeoDataFrame(geometry=geo)
            # Positional, not an index join: a duplicated index label must not multiply rows.
            out = base.copy()
            for c in df.columns:
                out[c + "_zc" if c in base.columns else c] = df[c].to_numpy()
            return out
        return df

    def _frame(self, unit, onb, snapped, nearest, dist, status, lon, lat, at) -> pd.DataFrame:
        has = unit >= 0

        def pick(per_unit):
            return _take_text(per_unit, unit, has)

        chiefs = self.roster.chiefs_by_zone(at) if self.roster else {}
        insp = self.roster.inspectors_by_zone(at) if self.roster else {}
        # Per unit first, then one take per column: no Python loop over the points.
        zu = self._zone_of_unit
        return pd.DataFrame({
            "zone_id": pick(zu),
            "zone_name": pick(self._zone_names[self._zone_idx_of_unit]),
            "village_code": pick(self._unit_cols["village_code"]),
            "village_name": pick(self._unit_cols["village_name"]),
            "town": pick(self._unit_cols["town"]),
            "chief_id": pick([chiefs[z].person_id if z in chiefs else None for z in zu]),
            "chief_name": pick([chiefs[z].name if z in chiefs else None for z in zu]),
            "chief_phone": pick([chiefs[z].phone if z in chiefs else None for z in zu]),
            "inspector_ids": pick([";".join(p.person_id for p in insp.get(z, [])) for z in zu]),
            "status": _take_text(STATUSES, status, np.ones(len(status), dtype=bool)),
            "on_boundary": onb,
            "snapped": snapped,
            "distance_m": np.round(dist, 2),
            "nearest_zone_id": _take_text(zu, nearest, nearest >= 0),
            "lon_wgs84": lon,
            "lat_wgs84": lat,
        })

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
            mx, my = _metric(x, y)
            near = self._near_grid()
            found = near.query_one(float(mx), float(my)) if near is not None else None
            if found is None:  # off the grid: the same GEOS search as in bulk
                nu, d = self._nearest(np.array([mx], dtype="f8"), np.array([my], dtype="f8"))
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
        unit, onb, snapped, nearest, dist, status = self._classify(x, y)
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
