"""Compiled per-point loops for bulk lookups (numba).

One pass over the points does what the grids (gis.lookup_grids) allow without shapely:
cell class (and subcell class near a boundary), and for points outside every
unit the projection to the metric CRS (a fitted polynomial, see
gis.lookup_projection) and the nearest ring segment from the nearest-unit grid,
then snapping. Points the grids cannot decide are flagged for the exact paths in
gis.lookup.

The arithmetic is written in the same order as the plain-Python single-point
paths (CellGrid.classify_one, NearGrid.query_one, LocalProjection.one), so a
point gets the same answer, bit for bit, alone or in a batch; numba compiles
without fastmath, so nothing is reassociated or fused.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

# Cell classes besides unit indices (>= 0).
MIXED = -2
OUT_FAR = -1  # a pure outside cell; in the kernel's table only those beyond snapping reach (else OUT_NEAR)
OUT_NEAR = -3
INVALID_CLASS = -4  # the class of the extra last table entry, where classify sends bad points
LUT_SHIFT = 4
# Status codes: 0..4 as gis.lookup.LOOKUP_STATUSES; the two below are left for the exact paths.
INSIDE, BOUNDARY, SNAPPED, OUTSIDE, INVALID = 0, 1, 2, 3, 4
NEED_EXACT = 5  # in a mixed subcell: shapely decides
NEED_NEAREST = 6  # outside, but off the fitted projection or the nearest-unit grid: pyproj/GEOS decide
PENDING = 7  # within classify only
# classify modes
LOCATE, SNAP_ONLY, ALL_NEAREST = 0, 1, 2

DEGREE = 4  # 15 terms: within 1e-7 m of EPSG:4547 over the towns plus 5 km (checked when fitted)
_MAX = 1.7976931348623157e308


class Grids(NamedTuple):
    """What classify walks, built once per index (gis.lookup_grids.kernel_grids); numba takes it as one
    argument with attribute access."""

    grid: np.ndarray  # cell grid: (x0, y0, ix, iy, W, H, S)
    table: np.ndarray  # class per cell, plus a last entry INVALID_CLASS
    mixed_cells: np.ndarray  # the mixed cells, ascending
    mixed_rows: np.ndarray  # where grid row r starts in mixed_cells
    sub: np.ndarray  # class per subcell, S * S per mixed cell
    proj: np.ndarray  # fitted projection: (lon0, lat0, lon_min, lat_min, lon_max, lat_max); an empty box: never used
    coef_x: np.ndarray
    coef_y: np.ndarray
    near: np.ndarray  # nearest-unit grid: (X0, Y0, size, nx, ny); nx = 0: no grid
    start: np.ndarray  # CSR candidate lists per cell
    cand_count: np.ndarray  # candidates per cell; not `count`, which would hide tuple.count
    lower: np.ndarray  # per cell, no point nearer than this to any unit; empty: no such pruning
    cand: np.ndarray
    inline: np.ndarray  # per cell [count, candidates...], count -1 where they do not fit
    seg: np.ndarray  # (7, segments): ax, ay, dx, dy, 1 / length², bx, by
    seg_unit: np.ndarray


def lookup_tables(mode: int, units: int) -> np.ndarray:
    """Status and unit per cell class (shifted by LUT_SHIFT) for classify's first pass."""
    cls = np.arange(-LUT_SHIFT, units)
    st = np.where(cls >= 0, INSIDE, PENDING)
    st[cls == INVALID_CLASS] = INVALID
    if mode == LOCATE:
        st[(cls == OUT_NEAR) | (cls == OUT_FAR)] = OUTSIDE
    elif mode == SNAP_ONLY:
        st[cls == OUT_FAR] = OUTSIDE
    return np.stack([st, np.where(cls >= 0, cls, -1)])


@njit(cache=True, nogil=True, error_model="numpy")
def _poly(c, du, dv):
    acc = 0.0
    for i in range(DEGREE, -1, -1):
        inner = 0.0
        for j in range(DEGREE - i, -1, -1):
            inner = inner * dv + c[i, j]
        acc = acc * du + inner
    return acc


@njit(cache=True, nogil=True, error_model="numpy")
def _subcell_class(x, y, x0, y0, ix, iy, W, H, mixed_cells, mixed_rows, sub, S):
    """Class of the subcell of a point in a mixed cell (MIXED again if the subcell is mixed too): the rare path.
    mixed_rows[r] is where grid row r starts in mixed_cells: the search runs over one row's few cells."""
    fx = int(min(max((x - x0) * (ix * S), 0.0), W * S - 1))
    fy = int(min(max((y - y0) * (iy * S), 0.0), H * S - 1))
    row = fy // S
    cell = row * W + fx // S
    lo, hi = mixed_rows[row], mixed_rows[row + 1]
    block = lo + np.searchsorted(mixed_cells[lo:hi], cell)
    if block == hi or mixed_cells[block] != cell:
        return MIXED
    return sub[block * S * S + (fy % S) * S + fx % S]


@njit(cache=True, nogil=True, error_model="numpy")
def _nearest_one(mx, my, X0, Y0, size, nx, ny, start, count, cand, inline, seg, seg_unit):
    """(unit, squared distance) of the nearest segment in the point's cell; unit -1 off the grid.

    A cell's candidates are read from its row of `inline` ([count, candidates...], one cache line) or,
    where they do not fit (count -1 there), from the CSR lists start/count/cand; the same order either way.
    """
    fi, fj = (mx - X0) / size, (my - Y0) / size
    if not (0 <= fi < nx and 0 <= fj < ny):
        return -1, np.nan
    c = int(fj) * nx + int(fi)
    k = inline[c, 0]
    m = k if k >= 0 else count[c]
    best, unit = np.inf, -1
    for t in range(m):
        s = inline[c, 1 + t] if k >= 0 else cand[start[c] + t]
        ex, ey = mx - seg[0, s], my - seg[1, s]
        r = min(max((ex * seg[2, s] + ey * seg[3, s]) * seg[4, s], 0.0), 1.0)
        if r == 1.0:
            qx, qy = seg[5, s], seg[6, s]
        else:
            qx, qy = seg[0, s] + r * seg[2, s], seg[1, s] + r * seg[3, s]
        qx -= mx
        qy -= my
        d2 = qx * qx + qy * qy
        u = seg_unit[s]
        if d2 < best or (d2 == best and u < unit):
            best, unit = d2, u
    return unit, best


@njit(cache=True, nogil=True, error_model="numpy")
def _cells(x, y, grid, table, st_lut, unit_lut, check_range, unit, status):
    """classify's first pass, a function of its own so that the loop compiles tight. No data-dependent
    branch, so that the table reads overlap: the cell of every point (as in _CellGrid.classify_one), or
    the extra entry table[W * H] (INVALID_CLASS) for a bad point, and from its class the status and unit."""
    x0, y0, ix, iy, W, H = grid[0], grid[1], grid[2], grid[3], int(grid[4]), int(grid[5])
    lim_x, lim_y = (180.0, 90.0) if check_range else (_MAX, _MAX)  # NaN and inf fail `<= _MAX`
    wm, hm = W - 1.0, H - 1.0
    bad = W * H
    for i in range(len(x)):
        px, py = x[i], y[i]
        gx = (px - x0) * ix
        gy = (py - y0) * iy
        gx = gx if gx > 0.0 else 0.0  # NaN too: it goes to `bad` below
        gy = gy if gy > 0.0 else 0.0
        gx = gx if gx < wm else wm
        gy = gy if gy < hm else hm
        cell = int(gy) * W + int(gx)
        cell = cell if abs(px) <= lim_x and abs(py) <= lim_y else bad
        k = table[cell] + LUT_SHIFT
        status[i] = st_lut[k]
        unit[i] = unit_lut[k]


@njit(cache=True, nogil=True, error_model="numpy")
def classify(x, y, g, snap_m, mode, check_range, luts, unit, status, nearest, dist):
    """Fill unit, status, nearest, dist for every point (see the module doc); returns how many are flagged.

    g: the Grids. mode LOCATE: outside points get OUTSIDE only (nearest, dist unused); SNAP_ONLY: nearest
    and dist only for snapped points (-1, NaN for other outside points; cells whose `lower` bound exceeds
    snap_m, or whose table class is OUT_FAR, are not searched); ALL_NEAREST: for every outside point.
    check_range: a point beyond [-180, 180] x [-90, 90] is INVALID too. luts = lookup_tables(mode, units).
    """
    grid, table, mixed_cells, mixed_rows, sub = g.grid, g.table, g.mixed_cells, g.mixed_rows, g.sub
    proj, coef_x, coef_y, near = g.proj, g.coef_x, g.coef_y, g.near
    start, count, lower, cand, inline, seg, seg_unit = g.start, g.cand_count, g.lower, g.cand, g.inline, g.seg, g.seg_unit
    x0, y0, ix, iy, W, H, S = grid[0], grid[1], grid[2], grid[3], int(grid[4]), int(grid[5]), int(grid[6])
    X0, Y0, size, nx, ny = near[0], near[1], near[2], int(near[3]), int(near[4])
    wm, hm = W - 1.0, H - 1.0
    # Pass 1: the cell class of every point gives its status (PENDING where the cell alone cannot tell)
    # and unit. nearest and dist are written only where computed (see clean_nearest).
    _cells(x, y, grid, table, luts[0].astype(np.int8), luts[1].astype(unit.dtype), check_range, unit, status)
    # Pass 2: the pending points (near a boundary, or within snapping reach, or all outside ones).
    flagged = 0
    for i in range(len(x)):
        if status[i] != PENDING:
            continue
        px, py = x[i], y[i]
        gx = min(max((px - x0) * ix, 0.0), wm)
        gy = min(max((py - y0) * iy, 0.0), hm)
        cls = table[int(gy) * W + int(gx)]
        if cls == MIXED:
            cls = _subcell_class(px, py, x0, y0, ix, iy, W, H, mixed_cells, mixed_rows, sub, S)
            if cls >= 0:
                unit[i] = cls
                status[i] = INSIDE
                continue
            if cls == MIXED:
                status[i] = NEED_EXACT
                flagged += 1
                continue
        if mode == LOCATE:
            status[i] = OUTSIDE
            continue
        if not (proj[2] <= px <= proj[4] and proj[3] <= py <= proj[5]):
            status[i] = NEED_NEAREST
            flagged += 1
            continue
        du, dv = px - proj[0], py - proj[1]
        mx, my = _poly(coef_x, du, dv), _poly(coef_y, du, dv)
        if mode == SNAP_ONLY:
            fi, fj = (mx - X0) / size, (my - Y0) / size
            if not (0 <= fi < nx and 0 <= fj < ny) or (len(lower) and lower[int(fj) * nx + int(fi)] > snap_m):
                status[i] = OUTSIDE  # off the grid (beyond its margin) or too far from every unit to snap
                continue
        k, d2 = _nearest_one(mx, my, X0, Y0, size, nx, ny, start, count, cand, inline, seg, seg_unit)
        if k < 0:
            status[i] = NEED_NEAREST
            flagged += 1
            continue
        d = math.sqrt(d2)
        if d <= snap_m:
            unit[i] = k
            status[i] = SNAPPED
            nearest[i] = k
            dist[i] = d
        else:
            status[i] = OUTSIDE
            if mode == ALL_NEAREST:
                nearest[i] = k
                dist[i] = d
    return flagged


@njit(cache=True, nogil=True, error_model="numpy")
def project(x, y, lon0, lat0, coef_x, coef_y, mx, my):
    """The fitted polynomial (LocalProjection) for every point, into mx, my."""
    for i in range(len(x)):
        du, dv = x[i] - lon0, y[i] - lat0
        mx[i] = _poly(coef_x, du, dv)
        my[i] = _poly(coef_y, du, dv)


@njit(cache=True, nogil=True, error_model="numpy")
def nearest_metric(mx, my, near, start, count, cand, inline, seg, seg_unit, unit, dist):
    """Nearest unit (-1 off the grid) and distance for points already in the metric CRS."""
    X0, Y0, size, nx, ny = near[0], near[1], near[2], int(near[3]), int(near[4])
    for i in range(len(mx)):
        k, d2 = _nearest_one(mx[i], my[i], X0, Y0, size, nx, ny, start, count, cand, inline, seg, seg_unit)
        unit[i] = k
        dist[i] = math.sqrt(d2) if k >= 0 else np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def clean_nearest(status, nearest, dist, all_nearest, round_cm):
    """nearest and dist where classify did not compute them: -1, and 0 inside or NaN outside.

    Computed: for snapped points, and for all outside ones with all_nearest. round_cm: also round
    distances to the cm, as np.round(d, 2).
    """
    for i in range(len(status)):
        st = status[i]
        computed = (st == SNAPPED) | (all_nearest & (st == OUTSIDE))
        nearest[i] = nearest[i] if computed else -1
        d = dist[i] if computed else (0.0 if st <= BOUNDARY else np.nan)
        dist[i] = np.round(d * 100.0) / 100.0 if round_cm else d


@njit(cache=True, nogil=True, error_model="numpy")
def finish(unit, nearest, status, dist, all_nearest, maps, zone_map, codes, on_boundary, snapped):
    """The result columns: clean_nearest with distances to the cm, codes[r] = maps[r, unit + 1] (maps[:, 0]
    is -1, no unit), the nearest zone's codes (zone_map[nearest + 1]) in codes[-1], the flags from the status. Returns the number
    of invalid points. Simple loops, one per column: numba vectorizes those."""
    clean_nearest(status, nearest, dist, all_nearest, True)
    R = maps.shape[0]
    for r in range(R):
        m, c = maps[r], codes[r]
        for i in range(len(unit)):
            c[i] = m[unit[i] + 1]
    m, c = zone_map, codes[R]
    for i in range(len(nearest)):
        c[i] = m[nearest[i] + 1]
    invalid = 0
    for i in range(len(status)):
        st = status[i]
        on_boundary[i] = st == BOUNDARY
        snapped[i] = st == SNAPPED
        invalid += st == INVALID
    return invalid
