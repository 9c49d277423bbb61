"""Patrol stops and gaps: movingpandas' semantics, on flat arrays and compiled, for millions of fixes.

A *segment* is a run of fixes of one patrol with no gap longer than ``gap_s`` between
consecutive fixes (movingpandas.ObservationGapSplitter: a new segment starts where
``t[i] - t[i-1] > gap``; segments of one fix are dropped, and so, for stops, are segments
of zero length, whose fixes all coincide: the splitter keeps only segments longer than 0).

A *stop* is movingpandas.TrajectoryStopDetector's (0.23), replayed fix by fix:
a window of fixes grows at the end; while not stopped it is cut at the front to
the fixes of the last ``min_duration`` (keeping at least 2); the window is
"stopped" while the diagonal of the minimum-area rectangle around it is below
``max_diameter`` (checked only when the bounding box diagonal is below 1.5 × that);
when a stopped window stops being one, the stop is its first fix to the fix before
the current one, kept if it lasted ``min_duration`` or more. The stop's position is
the median x and y of its fixes (get_stop_points).

Why not movingpandas itself: it rebuilds a shapely MultiPoint and its rotated
rectangle at every fix (about 20 µs each: a minute per million fixes). The kernel
below decides most windows from the bounding box alone (diameter ≥ the longer box
side; rectangle diagonal ≤ √2 × diameter ≤ √2 × box diagonal) and computes the
rectangle (convex hull, rotating edges) only in between.
tests/gis/test_patrol_coverage.py checks that both give the same stops.
"""
from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
from numba import njit

__all__ = ["segments", "detect_stops", "movingpandas_stops", "stop_positions", "SQRT2"]

SQRT2 = math.sqrt(2.0)
_EPS = 1e-9  # relative margin: a bound this close to the threshold is settled by the exact rectangle


def _jit(fn):
    """njit with numba's disk cache where it is writable (see gis.hotspot_kernels)."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return njit(nogil=True)(fn)


def segments(track: np.ndarray, t_ns: np.ndarray, gap_s: float) -> np.ndarray:
    """Start offsets of the segments (plus the end offset) of fixes sorted by (track, t).

    A segment ends where the track changes or the time step exceeds ``gap_s``;
    the result may contain one-fix segments (callers skip them, as movingpandas drops them).
    """
    n = len(t_ns)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    brk = np.ones(n, dtype=bool)
    brk[1:] = (track[1:] != track[:-1]) | (np.diff(t_ns) > int(round(gap_s * 1e9)))
    return np.append(np.flatnonzero(brk), n).astype(np.int64)


@_jit
def _cross(x, y, o, a, b):  # pragma: no cover - compiled
    return (x[a] - x[o]) * (y[b] - y[o]) - (y[a] - y[o]) * (x[b] - x[o])


@_jit
def _hull(x, y, cand, nc, out, tmp):  # pragma: no cover - compiled
    """Convex hull (Andrew's monotone chain, counter-clockwise, not closed) of the fixes cand[:nc]
    into ``out``; returns its size. Collinear and repeated points are left out."""
    c = cand[:nc].copy()
    order = np.argsort(x[c], kind="mergesort")
    c = c[order]
    for s in range(1, nc):  # ties in x by y (numba has no lexsort); nearly sorted, so insertion is cheap
        i = c[s]
        j = s - 1
        while j >= 0 and x[c[j]] == x[i] and y[c[j]] > y[i]:
            c[j + 1] = c[j]
            j -= 1
        c[j + 1] = i
    k = 0
    for s in range(nc):
        while k >= 2 and _cross(x, y, tmp[k - 2], tmp[k - 1], c[s]) <= 0:
            k -= 1
        tmp[k] = c[s]
        k += 1
    lo = k + 1
    for s in range(nc - 2, -1, -1):
        while k >= lo and _cross(x, y, tmp[k - 2], tmp[k - 1], c[s]) <= 0:
            k -= 1
        tmp[k] = c[s]
        k += 1
    m = max(k - 1, 1)
    out[:m] = tmp[:m]
    return m


@_jit
def _rect_diagonals(x, y, h, m):  # pragma: no cover - compiled
    """Least and greatest diagonal of the minimum-area rectangles around the hull h[:m] (rotating its
    edges; areas within rounding of the least count as ties); a degenerate hull: its length twice."""
    if m < 3:  # a point or a line: movingpandas measures the line, its diameter
        diam = 0.0
        for i in range(m):
            for j in range(i + 1, m):
                diam = max(diam, math.hypot(x[h[i]] - x[h[j]], y[h[i]] - y[h[j]]))
        return diam, diam
    areas = np.empty(m)
    diags = np.empty(m)
    for e in range(m):
        p = h[e]
        q = h[(e + 1) % m]
        ux = x[q] - x[p]
        uy = y[q] - y[p]
        ln = math.hypot(ux, uy)
        areas[e] = np.inf
        diags[e] = 0.0
        if ln == 0.0:
            continue
        ux /= ln
        uy /= ln
        u0 = np.inf
        u1 = -np.inf
        v0 = np.inf
        v1 = -np.inf
        for j in range(m):
            du = (x[h[j]] - x[p]) * ux + (y[h[j]] - y[p]) * uy
            dv = -(x[h[j]] - x[p]) * uy + (y[h[j]] - y[p]) * ux
            u0 = min(u0, du)
            u1 = max(u1, du)
            v0 = min(v0, dv)
            v1 = max(v1, dv)
        areas[e] = (u1 - u0) * (v1 - v0)
        diags[e] = math.hypot(u1 - u0, v1 - v0)
    best = areas.min()
    lo = np.inf
    hi = 0.0
    for e in range(m):  # every rectangle GEOS could pick: area equal to the least up to rounding
        if areas[e] <= best * (1 + 1e-7) + 1e-12:
            lo = min(lo, diags[e])
            hi = max(hi, diags[e])
    return lo, hi


@_jit
def _decide(x, y, h, m, n, w, hh, dmax):  # pragma: no cover - compiled
    """movingpandas' test for a window of n ≥ 2 fixes with box w × hh: 1 stopped, 0 not, 2 too close to call.

    Stopped: box diagonal < 1.5·dmax and the diagonal of GEOS's minimum rectangle < dmax. That
    rectangle is not unique (equal areas, other diagonals), so this decides only when every
    minimum-area rectangle agrees; the longer box side bounds the diameter (≤ the diagonal) and
    √2 × the box diagonal bounds every such rectangle (sides are widths ≤ the diameter).
    With m < 0 it answers from the box alone, or -1 when that needs the hull h[:m].
    """
    box = math.hypot(w, hh)
    if not box < 1.5 * dmax:
        return 0
    hi = dmax * (1 + 1e-9)
    lo = dmax * (1 - 1e-9)
    if max(w, hh) > hi:  # the diameter alone is too long
        return 0
    if n == 2:
        return 1 if box < lo else (0 if box > hi else 2)
    if 1.4142135623730951 * box < lo:
        return 1
    if m < 0:
        return -1
    dlo, dhi = _rect_diagonals(x, y, h, m)
    if dlo > hi:
        return 0
    if dhi < lo:
        return 1
    return 2


@_jit
def _stops_kernel(x, y, t, starts, use, dmax, min_ns, st, out0, out1, decided):  # pragma: no cover - compiled
    """Replay TrajectoryStopDetector._process_traj per segment, from the state ``st``.

    st = [segment, fix, window start, stopped, previously stopped, stops found]. Returns 0 when
    done, or 1 with ``st`` at a window (st[2]..st[1]) this cannot decide: the caller decides it
    (GEOS, as movingpandas does), puts 0/1 in decided[0] and calls again. While a window only
    grows, its hull is updated from the previous hull and the new fix.
    """
    s, i, ws, stopped, prev, k = st[0], st[1], st[2], st[3] == 1, st[4] == 1, st[5]
    cap = 64
    hull = np.empty(cap, dtype=np.int64)
    cand = np.empty(cap, dtype=np.int64)
    tmp = np.empty(2 * cap + 2, dtype=np.int64)
    hm = 0
    h_ws = -1  # the hull is that of fixes h_ws..h_end
    h_end = -1
    b_ws = -1  # the box bx0..by1 is that of fixes b_ws..b_end
    b_end = -1
    bx0 = bx1 = by0 = by1 = 0.0
    while s < len(starts) - 1:
        a = starts[s]
        b = starts[s + 1]
        if b - a >= 2 and use[s]:
            if i < 0:  # a fresh segment
                i = a
                ws = a
                stopped = False
                prev = False
            while i < b:
                if not stopped:
                    while i - ws + 1 > 2 and t[i] - t[ws] >= min_ns:
                        ws += 1
                n = i - ws + 1
                now = False
                if n > 1:
                    if decided[0] >= 0:
                        r = decided[0]
                        decided[0] = -1
                    else:
                        if b_ws == ws and b_end == i - 1:  # the window grew by one fix
                            bx0 = min(bx0, x[i])
                            bx1 = max(bx1, x[i])
                            by0 = min(by0, y[i])
                            by1 = max(by1, y[i])
                        else:
                            bx0 = x[ws]
                            bx1 = x[ws]
                            by0 = y[ws]
                            by1 = y[ws]
                            for j in range(ws + 1, i + 1):
                                bx0 = min(bx0, x[j])
                                bx1 = max(bx1, x[j])
                                by0 = min(by0, y[j])
                                by1 = max(by1, y[j])
                        b_ws = ws
                        b_end = i
                        r = _decide(x, y, hull, -1, n, bx1 - bx0, by1 - by0, dmax)
                        if r == -1:
                            grown = h_ws == ws and h_end == i - 1
                            nc = hm + 1 if grown else n
                            if nc > cap:
                                while cap < nc:
                                    cap *= 2
                                c2 = np.empty(cap, dtype=np.int64)
                                c2[:hm] = hull[:hm]
                                hull = c2
                                cand = np.empty(cap, dtype=np.int64)
                                tmp = np.empty(2 * cap + 2, dtype=np.int64)
                            if grown:
                                cand[:hm] = hull[:hm]
                                cand[hm] = i
                            else:
                                for j in range(n):
                                    cand[j] = ws + j
                            hm = _hull(x, y, cand, nc, hull, tmp)
                            h_ws = ws
                            h_end = i
                            r = _decide(x, y, hull, hm, n, bx1 - bx0, by1 - by0, dmax)
                    if r == 2:
                        st[0], st[1], st[2], st[3], st[4], st[5] = s, i, ws, int(stopped), int(prev), k
                        return 1
                    now = r == 1
                stopped = now
                if not stopped and prev and n > 1:
                    if t[i - 1] - t[ws] >= min_ns:
                        out0[k] = ws
                        out1[k] = i - 1
                        k += 1
                        ws = i
                prev = stopped
                i += 1
            if stopped and t[b - 1] - t[ws] >= min_ns:
                out0[k] = ws
                out1[k] = b - 1
                k += 1
        stopped = False
        i = -1  # the next segment starts afresh
        s += 1
    st[0], st[1], st[2], st[3], st[4], st[5] = s, i, ws, int(stopped), int(prev), k
    return 0


def detect_stops(x, y, t_ns, starts, max_diameter: float, min_duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last fix (indices, inclusive) of each stop, over all segments at once.

    ``x, y`` metric coordinates; ``t_ns`` int64 nanoseconds, sorted within segments;
    ``starts`` from :func:`segments`. Windows the bounds cannot settle go to GEOS
    (shapely's minimum_rotated_rectangle, through movingpandas' own mrr_diagonal rule).
    """
    if not max_diameter > 0 or not min_duration_s >= 0:
        raise ValueError("max_diameter must be positive and min_duration_s not negative")
    x = np.ascontiguousarray(x, dtype="f8")
    y = np.ascontiguousarray(y, dtype="f8")
    t = np.ascontiguousarray(t_ns, dtype=np.int64)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    st = np.array([0, -1, 0, 0, 0, 0], dtype=np.int64)
    out0 = np.empty(len(t) // 2 + 1, dtype=np.int64)
    out1 = np.empty_like(out0)
    decided = np.array([-1], dtype=np.int64)
    dmax, min_ns = float(max_diameter), np.int64(round(min_duration_s * 1e9))
    use = _moving(x, y, starts)
    while _stops_kernel(x, y, t, starts, use, dmax, min_ns, st, out0, out1, decided):
        decided[0] = int(_geos_diagonal(x[st[2]:st[1] + 1], y[st[2]:st[1] + 1]) < dmax)
    return out0[:st[5]].copy(), out1[:st[5]].copy()


def _moving(x, y, starts) -> np.ndarray:
    """Per segment: whether it has any length. movingpandas' splitter keeps only segments longer than
    the collection's min_length (0), so a segment whose fixes all coincide has no stops there either."""
    if len(starts) < 2 or not len(x):
        return np.zeros(max(len(starts) - 1, 0), dtype=bool)
    a = starts[:-1]
    ok = a < len(x)
    out = np.zeros(len(a), dtype=bool)
    for v in (x, y):
        hi = np.maximum.reduceat(v, a[ok])
        lo = np.minimum.reduceat(v, a[ok])
        out[ok] |= hi > lo
    return out


def _geos_diagonal(x, y) -> float:
    """movingpandas.geometry_utils.mrr_diagonal for planar points (GEOS's minimum rotated rectangle)."""
    import shapely

    if len(x) == 2:
        return float(shapely.Point(x[0], y[0]).distance(shapely.Point(x[1], y[1])))
    r = shapely.MultiPoint(np.c_[x, y]).minimum_rotated_rectangle
    if isinstance(r, shapely.Point):
        return 0.0
    if isinstance(r, shapely.Polygon):
        c = r.exterior.coords
        return float(shapely.Point(c[0]).distance(shapely.Point(c[2])))
    c = r.coords
    return float(shapely.Point(c[0]).distance(shapely.Point(c[-1])))


@_jit
def _medians(v, i0, i1):  # pragma: no cover - compiled
    out = np.empty(len(i0))
    for k in range(len(i0)):
        out[k] = np.median(v[i0[k]:i1[k] + 1])
    return out


def stop_positions(x, y, i0, i1) -> tuple[np.ndarray, np.ndarray]:
    """Median x and y of the fixes of each stop (movingpandas' stop point)."""
    x = np.ascontiguousarray(x, dtype="f8")
    y = np.ascontiguousarray(y, dtype="f8")
    return _medians(x, i0, i1), _medians(y, i0, i1)


def movingpandas_stops(x, y, t_ns, track, gap_s: float, max_diameter: float, min_duration_s: float,
                       crs: str = "EPSG:4547") -> pd.DataFrame:
    """The reference: movingpandas' ObservationGapSplitter and TrajectoryStopDetector on the same fixes.

    Returns (start, end) as int64 nanoseconds, one row per stop, sorted. Slow: for tests and benchmarks.
    """
    import geopandas as gpd
    import movingpandas as mpd

    df = pd.DataFrame({"track": np.asarray(track), "t": pd.to_datetime(np.asarray(t_ns, dtype=np.int64))})
    gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=crs)
    rows: list[tuple[int, int]] = []
    if len(gdf):
        tc = mpd.TrajectoryCollection(gdf, "track", t="t")
        tc = mpd.ObservationGapSplitter(tc).split(gap=timedelta(seconds=gap_s))
        if len(tc.trajectories):
            ranges = mpd.TrajectoryStopDetector(tc).get_stop_time_ranges(
                max_diameter=max_diameter, min_duration=timedelta(seconds=min_duration_s))
            rows = [(pd.Timestamp(r.t_0).value, pd.Timestamp(r.t_n).value) for r in ranges]
    return pd.DataFrame(sorted(rows), columns=["start", "end"], dtype=np.int64)
