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
coordinates; no buffering. Batches go through precomputed grids
(gis/lookup_grids.py: CellGrid for the zone, NearGrid for the nearest zone),
walked by compiled loops (gis/lookup_kernels.py, numba) on all CPUs
(gis/parallel.py), that answer the same, point for point
(tests/test_lookup_fast.py; speed in BENCHMARKS.md); their answers become a
table in gis/lookup_frames.py. Distances are in METRIC (EPSG:4547, CGCS2000 /
3-degree Gauss-Krüger CM 114E).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis import crs as _crs
from gis.boundaries import METRIC, BoundaryError, id_column, load_and_validate
from gis.lookup_frames import IN_ZONE, LOOKUP_STATUSES, CodeMaps, code_dtype, code_maps, result_frame
from gis.lookup_grids import MIXED, NEAR_MARGIN_M, CellGrid, NearGrid, kernel_grids, mark_far_cells
from gis.lookup_projection import LocalProjection, to_metric
from gis.parallel import in_parts
from gis.points import check_coordinates, coordinate_problem
from gis.roster import Person, Roster
from gis.shipped import DATA_DIR, OVERLAP_TOLERANCE_M2, SNAP_TOLERANCE_M

if TYPE_CHECKING:
    from gis.lookup_kernels import Grids  # imports numba: for annotations only

__all__ = ["IN_ZONE", "LOOKUP_STATUSES", "Assignment", "ZoneIndex", "normalize_units"]


class _LazyKernels:
    """gis.lookup_kernels on first use: importing numba takes ~0.3 s, which a single lookup never needs."""

    def __getattr__(self, name):
        from gis import lookup_kernels

        globals()["kernels"] = lookup_kernels
        return getattr(lookup_kernels, name)


kernels = _LazyKernels()


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


def _col(gdf, name):
    """Column as an object array of str, with None (not "None" or NaN) where missing."""
    if name not in gdf.columns:
        return np.full(len(gdf), None, dtype=object)
    s = gdf[name]
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in s], dtype=object)


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
        self.generation: int | None = None  # the store's boundary generation these units are (zonechief.generations)
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
        # Built on first bulk use; False: this geometry has none.
        self._grid: CellGrid | Literal[False] | None = None
        self._near: NearGrid | Literal[False] | None = None
        self._proj: LocalProjection | None = None
        self._kargs: Grids | None = None
        # Per unit, as Python str: zone_id, zone_name, village_code, village_name, town, town_code.
        self._unit_text = [(str(self._zone_of_unit[k]), str(self._zone_names[self._zone_idx_of_unit[k]]),
                            *(self._unit_cols[c][k] for c in ("village_code", "village_name", "town", "town_code")))
                           for k in range(len(self.units))]
        self._build_lock = threading.Lock()
        self._maps_cache: dict[tuple, CodeMaps] = {}
        self._lut_cache: dict[int, np.ndarray] = {}

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

        Large batches go through the cell grid (see CellGrid); the answer is the
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

    def locate_once(self, lon, lat) -> np.ndarray:
        """Unit index per WGS-84 point (-1: in no unit), as locate() answers, without building its grids:
        for a one-off batch on an index that may never see another (a new boundary generation's moves)."""
        x = np.ascontiguousarray(lon, dtype="f8").ravel()
        y = np.ascontiguousarray(lat, dtype="f8").ravel()
        unit = np.full(len(x), -1, dtype=np.int32)
        ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        unit[ok] = self._locate_few(x[ok], y[ok])[0]
        return unit

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

    def _cell_grid(self) -> CellGrid | None:
        # Built on first bulk use, not in __init__: single lookups never need it.
        if self._grid is None:
            with self._build_lock:
                if self._grid is None:
                    b = self._bounds
                    flat = len(b) == 0 or b[:, 2].max() <= b[:, 0].min() or b[:, 3].max() <= b[:, 1].min()
                    self._grid = False if flat else CellGrid(self._geoms, b, self._first_containing)
        return self._grid or None

    def _near_grid(self) -> NearGrid | None:
        if self._near is None:
            with self._build_lock:
                if self._near is None:
                    ok = len(self._metric_geoms) and np.isfinite(shapely.bounds(self._metric_geoms)).all()
                    self._near = NearGrid(self._metric_geoms) if ok else False
        return self._near or None

    def _projection(self) -> LocalProjection | None:
        near = self._near_grid()
        if near is not None and self._proj is None:
            with self._build_lock:
                if self._proj is None:  # over the nearest-unit grid
                    self._proj = LocalProjection.around(near.X0, near.Y0, near.X0 + near.nx * near.size, near.Y0 + near.ny * near.size)
        return self._proj if near is not None else None

    def _kernel_args(self):
        """The grids as the record kernels.classify walks (lookup_kernels.Grids), built on first bulk use."""
        if self._kargs is None:
            grid, near, proj = self._cell_grid(), self._near_grid(), self._projection()
            self._kargs = kernel_grids(grid, near, proj)
            if grid is not None and near is not None and proj is not None and self.snap_tolerance_m < NEAR_MARGIN_M:
                mark_far_cells(self._kargs, grid, near, proj, self.snap_tolerance_m, self._luts(kernels.SNAP_ONLY))
        return self._kargs

    def _luts(self, mode):
        if mode not in self._lut_cache:
            self._lut_cache[mode] = kernels.lookup_tables(mode, len(self._geoms))
        return self._lut_cache[mode]

    def _run_kernel(self, x, y, unit, status, nearest, dist, check_range, all_nearest=True) -> int:
        """kernels.classify over the points, in chunks on as many threads as there are CPUs; returns the flagged count.

        nearest/dist None: locate only (outside points get OUTSIDE, no nearest unit, no snapping);
        all_nearest False: nearest unit and distance only where they snap (see assign).
        """
        grids = self._kernel_args()
        with_nearest = nearest is not None
        mode = kernels.ALL_NEAREST if with_nearest and all_nearest else kernels.SNAP_ONLY if with_nearest else kernels.LOCATE
        luts = self._luts(mode)
        if not with_nearest:
            nearest, dist = np.empty(0, dtype=np.int32), np.empty(0)
        snap = float(self.snap_tolerance_m)

        def run(a, b):
            return kernels.classify(x[a:b], y[a:b], grids, snap, mode, check_range, luts, unit[a:b], status[a:b],
                                    nearest[a:b], dist[a:b])  # empty arrays stay empty when sliced

        return sum(in_parts(len(x), run))

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
        """Unit, nearest unit, distance (m), status code (LOOKUP_STATUSES) per point.

        clean=False: nearest and dist hold garbage where not computed (kernels.clean_nearest, which
        result_frame runs, tidies them).

        check_range: also treat |lon| > 180 or |lat| > 90 as invalid (input not checked before);
        all_nearest False: nearest unit and distance only for snapped points (-1 and NaN for other outside ones).
        """
        all_nearest = all_nearest or self.snap_tolerance_m >= NEAR_MARGIN_M  # the kernel's shortcut needs tol < margin
        n = len(x)
        small = code_dtype(len(self._geoms) + 1)  # unit indices: int8 up to 125 units, less to read and write
        unit = np.empty(n, dtype=small)
        status = np.empty(n, dtype=np.int8)
        nearest = np.empty(n, dtype=small)
        dist = np.empty(n)
        if self._run_kernel(x, y, unit, status, nearest, dist, check_range, all_nearest):
            self._settle(x, y, np.flatnonzero(status >= kernels.NEED_EXACT), unit, status, nearest, dist, all_nearest)
        if clean:
            in_parts(n, lambda a, b: kernels.clean_nearest(status[a:b], nearest[a:b], dist[a:b], all_nearest, False))
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
        mx, my = proj.many(x[far], y[far]) if proj is not None else to_metric(x[far], y[far])
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
        df = result_frame(self._code_maps(at), unit, near, dist, status, all_near, lon, lat,
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
        """The result's text columns per unit, with the roster on `at`'s day, as category codes (lookup_frames.CodeMaps)."""
        chiefs = self.roster.chiefs_by_zone(at) if self.roster else {}
        insp = self.roster.inspectors_by_zone(at) if self.roster else {}
        zu = self._zone_of_unit
        return code_maps({
            "zone_id": zu,
            "zone_name": self._zone_names[self._zone_idx_of_unit],
            "village_code": self._unit_cols["village_code"],
            "village_name": self._unit_cols["village_name"],
            "town": self._unit_cols["town"],
            "chief_id": [chiefs[z].person_id if z in chiefs else None for z in zu],
            "chief_name": [chiefs[z].name if z in chiefs else None for z in zu],
            "chief_phone": [chiefs[z].phone if z in chiefs else None for z in zu],
            "inspector_ids": [";".join(p.person_id for p in insp.get(z, [])) for z in zu],
        }, self._maps_cache)

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
        cls = grid.classify_one(x, y) if grid is not None else MIXED
        unit, interior = (cls, cls >= 0) if cls != MIXED else self._locate_small(x, y)
        onb = unit >= 0 and not interior and bool(
            shapely.intersects_xy(self._zone_boundaries[self._zone_idx_of_unit[unit]], x, y))
        nearest, dist, snapped = -1, 0.0, False
        if unit < 0:
            proj = self._projection()
            mx, my = proj.one(x, y) if proj is not None and proj.covers(x, y) else to_metric(x, y)
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
            chief, inspectors = (chiefs.get(z), insp.get(z, [])) if z is not None else (None, [])
            out.append(self._assignment(x[i], y[i], k, LOOKUP_STATUSES[status[i]], onb[i], snapped[i], int(nearest[i]), dist[i],
                                        chief, inspectors))
        return out

    def zone(self, zone_id: str) -> gpd.GeoDataFrame:
        """The zone's row of self.zones (KeyError if there is none)."""
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
