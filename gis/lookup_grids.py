"""The precomputed grids behind bulk lookups, and the record of arrays the compiled loops walk.

CellGrid answers which unit holds a point for most points without shapely; NearGrid lists, per metric
cell, the only ring segments that can be nearest, so outside points need no GEOS nearest search.
Both answer the same as the exact paths, point for point (tests/test_lookup_fast.py).
"""
from __future__ import annotations

import math

import numpy as np
import shapely

# Bulk locate: a uniform grid over the units' bounds. A cell whose box, grown by
# _GROW cells on every side, touches no ring of any unit is "pure": every point
# in it has the answer of its centre (first unit whose interior holds it, or
# none). Growing the box makes the cell test robust: computing a point's cell
# is off by ~1e-10 cells at most, so a point always lies in the grown box of
# the cell it is mapped to. The other ("mixed") cells are split into subcells
# classified the same way; points in mixed subcells take the exact shapely pass.
_GRID_CELLS = 1 << 20
_GROW = 1.0 / 64
MIXED = -2  # lookup_kernels.MIXED (tests check they agree)
SUB = 8  # a mixed cell is split into 8 x 8 subcells: ~0.15 % of uniform points are left for shapely

# Nearest unit for outside points: a metric grid whose cells list the only ring
# segments that can be nearest to any point of the cell; distances are then
# computed on those few segments (gis/lookup_kernels.py) instead of a GEOS nearest
# search. The compiled loop projects to METRIC with a fitted polynomial
# (gis.lookup_projection), and, where only snapping needs a distance, skips cells
# too far from every unit to snap (mark_far_cells).
NEAR_MARGIN_M = 5000.0  # beyond this from the units' bounds: STRtree search
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
    table = np.full(len(mixed), MIXED, dtype=dtype)
    table[pure] = cls[(np.cumsum(start) - 1)[pure]]
    return table


class CellGrid:
    """Cell classes over the units' bounds plus a one-cell border: unit k (pure inside), -1 (outside all), -2 (mixed).

    Each mixed cell is split again into SUB x SUB subcells, classified the same way.
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

        # Subcells, in blocks of SUB * SUB per mixed cell (rows of SUB). Scaling by a power of
        # two is exact, so a subcell's parent is exactly the cell the first level computed.
        self.mixed_cells = np.flatnonzero(mixed)
        S = SUB
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
        """Grid coordinates (in cells, from the border's origin) of lon/lat points."""
        return (np.asarray(x) - self.x0) * self.ix, (np.asarray(y) - self.y0) * self.iy

    def classify_one(self, x: float, y: float) -> int:
        """Class of one finite point's cell, or of its subcell if the cell is mixed (kernels.classify in plain Python)."""
        gx = min(max((x - self.x0) * self.ix, 0.0), self.W - 1)
        gy = min(max((y - self.y0) * self.iy, 0.0), self.H - 1)
        cell = int(gy) * self.W + int(gx)
        cls = int(self.table[cell])
        if cls != MIXED:
            return cls
        S = SUB
        fx = int(min(max((x - self.x0) * (self.ix * S), 0.0), self.W * S - 1))
        fy = int(min(max((y - self.y0) * (self.iy * S), 0.0), self.H * S - 1))
        cell = (fy // S) * self.W + fx // S
        block = int(np.searchsorted(self.mixed_cells, cell))
        if block == len(self.mixed_cells) or self.mixed_cells[block] != cell:
            return MIXED
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


class NearGrid:
    """Candidate segments per metric cell for the nearest-unit search (see _NEAR_CELL_M)."""

    def __init__(self, metric_geoms, margin: float = NEAR_MARGIN_M, cell: float = _NEAR_CELL_M):
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        units: list[np.ndarray] = []
        for k, xy in _ring_coords(metric_geoms):
            starts.append(xy[:-1])
            ends.append(xy[1:])
            units.append(np.full(len(xy) - 1, k))
        a, b, u = np.concatenate(starts), np.concatenate(ends), np.concatenate(units)
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
        first = np.cumsum(cnt) - cnt  # where each cell's list starts in cand
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
        from gis import lookup_kernels as kernels  # here, not at the top: single lookups never import numba

        mx, my = np.ascontiguousarray(mx, dtype="f8"), np.ascontiguousarray(my, dtype="f8")
        unit, dist = np.empty(len(mx), dtype=np.int32), np.empty(len(mx))
        kernels.nearest_metric(mx, my, self.params, self.start, self.count, self.cand, self.inline, self.seg_rows, self.unit32,
                               unit, dist)
        return unit.astype(np.int64), dist


def kernel_grids(grid: CellGrid | None, near: NearGrid | None, proj):
    """The grids (and the fitted projection `proj`) as the record lookup_kernels.classify walks; a missing
    one becomes one that flags every point. `lower` is left empty: see mark_far_cells."""
    from gis import lookup_kernels as kernels  # here, not at the top: single lookups never import numba

    if grid is not None:
        table = np.append(grid.table, grid.table.dtype.type(kernels.INVALID_CLASS))  # where bad points go
        table[table == kernels.OUT_FAR] = kernels.OUT_NEAR  # refined by mark_far_cells, once the rest is ready
        mixed = grid.mixed_cells.astype(np.int64)
        cells = dict(grid=np.array([grid.x0, grid.y0, grid.ix, grid.iy, grid.W, grid.H, SUB], dtype="f8"), table=table,
                     mixed_cells=mixed, mixed_rows=np.searchsorted(mixed, np.arange(grid.H + 1) * grid.W), sub=grid.sub)
    else:  # one mixed cell and no subcells: everything goes to the exact pass
        cells = dict(grid=np.array([0, 0, 0, 0, 1, 1, SUB], dtype="f8"),
                     table=np.array([MIXED, kernels.INVALID_CLASS], dtype=np.int8), mixed_cells=np.empty(0, dtype=np.int64),
                     mixed_rows=np.zeros(2, dtype=np.int64), sub=np.empty(0, dtype=np.int8))
    if near is not None:
        nearest = dict(near=near.params, start=near.start, cand_count=near.count, cand=near.cand, inline=near.inline,
                       seg=near.seg_rows, seg_unit=near.unit32)
    else:  # nx = 0: every point is off the grid
        nearest = dict(near=np.array([0, 0, 1, 0, 0], dtype="f8"), start=np.zeros(1, dtype=np.int64),
                       cand_count=np.zeros(1, dtype=np.int32), cand=np.empty(0, dtype=np.int32),
                       inline=np.zeros((1, _INLINE), dtype=np.int16), seg=np.empty((7, 0)), seg_unit=np.empty(0, dtype=np.int32))
    if proj is not None:
        projection = dict(proj=proj.params, coef_x=proj.coef_x, coef_y=proj.coef_y)
    else:  # an empty box: never used
        projection = dict(proj=np.array([0, 0, np.inf, np.inf, -np.inf, -np.inf]), coef_x=np.zeros((5, 5)),
                          coef_y=np.zeros((5, 5)))
    return kernels.Grids(**cells, **projection, **nearest, lower=_NO_LOWER)


def mark_far_cells(grids, grid: CellGrid, near: NearGrid, proj, snap_tolerance_m: float, luts) -> None:
    """OUT_FAR in grids.table for pure outside cells whose every point is beyond the snap tolerance: their
    points skip the distance search when only snapping needs it (assign(nearest=False)).

    A cell is far if its centre is farther than tolerance + h from every unit, h being the largest
    half-diagonal of a cell in metres; the centres are answered by the kernel itself, pruning with the near
    grid's lower bounds. luts: lookup_kernels.lookup_tables(SNAP_ONLY, units).
    """
    from gis import lookup_kernels as kernels

    table = grids.table
    out = np.flatnonzero(table == kernels.OUT_NEAR)
    W = grid.W
    cx = grid.x0 + (out % W + 0.5) * grid.dx
    cy = grid.y0 + (out // W + 0.5) * grid.dy
    corner_x = np.array([grid.x0, grid.x0, grid.x0 + W * grid.dx, grid.x0 + W * grid.dx])
    corner_y = np.array([grid.y0, grid.y0 + grid.H * grid.dy, grid.y0, grid.y0 + grid.H * grid.dy])
    p00, p11 = proj.many(corner_x, corner_y), proj.many(corner_x + grid.dx, corner_y + grid.dy)
    p10, p01 = proj.many(corner_x + grid.dx, corner_y), proj.many(corner_x, corner_y + grid.dy)
    diag = max(np.hypot(p11[0] - p00[0], p11[1] - p00[1]).max(), np.hypot(p10[0] - p01[0], p10[1] - p01[1]).max())
    reach = snap_tolerance_m + 0.5 * diag * 1.001 + 0.01
    unit, status = np.empty(len(out), dtype=np.int32), np.empty(len(out), dtype=np.int8)
    near_u, dist = np.empty(len(out), dtype=np.int32), np.empty(len(out))
    kernels.classify(cx, cy, grids._replace(lower=near.lower), reach, kernels.SNAP_ONLY, False, luts, unit, status, near_u, dist)
    table[out[status == kernels.OUTSIDE]] = kernels.OUT_FAR
