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
coordinates; no buffering.
"""
from __future__ import annotations

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
        """Unit index per WGS-84 point (-1: in no unit) and whether it is in that unit's interior."""
        x = np.ascontiguousarray(lon, dtype="f8").ravel()
        y = np.ascontiguousarray(lat, dtype="f8").ravel()
        unit = np.full(len(x), -1, dtype=np.int64)
        if len(x) <= 4:
            for i in range(len(x)):
                if np.isfinite(x[i]) and np.isfinite(y[i]):
                    for k in sorted(self._tree.query(shapely.Point(x[i], y[i]))):
                        if shapely.contains_xy(self._geoms[k], x[i], y[i]):
                            unit[i] = k
                            break
        else:
            self._pass(x, y, unit, np.arange(len(x)), shapely.contains_xy)
        interior = unit >= 0
        rest = np.flatnonzero(~interior & np.isfinite(x) & np.isfinite(y))
        if len(rest):
            # Not in any interior: closed polygons (covers), first unit in order wins.
            self._pass(x, y, unit, rest, shapely.intersects_xy)
        return unit, interior

    def _pass(self, x, y, unit, todo, predicate):
        b = self._bounds
        for k, g in enumerate(self._geoms):
            rx, ry = x[todo], y[todo]
            cand = np.flatnonzero((rx >= b[k, 0]) & (rx <= b[k, 2]) & (ry >= b[k, 1]) & (ry <= b[k, 3]))
            if len(cand):
                hit = cand[predicate(g, rx[cand], ry[cand])]
                unit[todo[hit]] = k
                todo = np.delete(todo, hit)
                if len(todo) == 0:
                    break

    def _classify(self, x, y):
        """Unit, zone-boundary flag, snapped flag, nearest unit, distance (m), status per point."""
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
            pts = shapely.points(mx, my)
            pi, ui = self._metric_tree.query_nearest(pts, all_matches=True)
            # ties: keep the smallest unit index (the smallest zone_id) per point
            best = pd.DataFrame({"p": pi, "u": ui}).groupby("p")["u"].min()
            nearest[out[best.index.to_numpy()]] = best.to_numpy()
            d = shapely.distance(pts[best.index.to_numpy()], self._metric_geoms[best.to_numpy()])
            dist[out[best.index.to_numpy()]] = d
            near_ok = out[best.index.to_numpy()][d <= self.snap_tolerance_m]
            snapped[near_ok] = True
            unit[near_ok] = nearest[near_ok]
        dist[~finite] = np.nan
        status = np.full(n, "outside", dtype=object)
        status[unit >= 0] = "inside"
        status[onb] = "boundary"
        status[snapped] = "snapped"
        status[~finite] = "invalid"
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
        u = np.where(has, unit, 0)

        def pick(arr):
            v = np.asarray(arr, dtype=object)[u]
            v[~has] = None
            return v

        zone_ids = pick(self._zone_of_unit)
        chiefs = self.roster.chiefs_by_zone(at) if self.roster else {}
        insp = self.roster.inspectors_by_zone(at) if self.roster else {}
        chief_id = np.array([chiefs[z].person_id if z in chiefs else None for z in zone_ids], dtype=object)
        chief_name = np.array([chiefs[z].name if z in chiefs else None for z in zone_ids], dtype=object)
        chief_phone = np.array([chiefs[z].phone if z in chiefs else None for z in zone_ids], dtype=object)
        insp_ids = np.array([";".join(p.person_id for p in insp.get(z, [])) if z else None for z in zone_ids], dtype=object)
        near = np.asarray(self._zone_of_unit, dtype=object)[np.where(nearest >= 0, nearest, 0)]
        near[nearest < 0] = None
        return pd.DataFrame({
            "zone_id": zone_ids,
            "zone_name": pick(self._zone_names[self._zone_idx_of_unit]),
            "village_code": pick(self._unit_cols["village_code"]),
            "village_name": pick(self._unit_cols["village_name"]),
            "town": pick(self._unit_cols["town"]),
            "chief_id": chief_id,
            "chief_name": chief_name,
            "chief_phone": chief_phone,
            "inspector_ids": insp_ids,
            "status": status,
            "on_boundary": onb,
            "snapped": snapped,
            "distance_m": np.round(dist, 2),
            "nearest_zone_id": near,
            "lon_wgs84": lon,
            "lat_wgs84": lat,
        })

    def lookup(self, lon: float, lat: float, crs: str = "wgs84", at=None) -> Assignment:
        """Answer one point. Raises CoordinateError / UnknownCRSError on bad input."""
        check_coordinates(lon, lat, crs, raise_error=True)
        return self.lookup_many([lon], [lat], crs, at)[0]

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
            a = Assignment(lon=float(x[i]), lat=float(y[i]), status=str(status[i]), on_boundary=bool(onb[i]),
                           snapped=bool(snapped[i]), distance_m=round(float(dist[i]), 2),
                           nearest_zone_id=self._zone_of_unit[nearest[i]] if nearest[i] >= 0 else None)
            k = int(unit[i])
            if k >= 0:
                z = self._zone_of_unit[k]
                a.zone_id = z
                a.zone_name = str(self._zone_names[self._zone_idx_of_unit[k]])
                a.village_code = self._unit_cols["village_code"][k]
                a.village_name = self._unit_cols["village_name"][k]
                a.town = self._unit_cols["town"][k]
                a.town_code = self._unit_cols["town_code"][k]
                a.chief = chiefs.get(z)
                a.inspectors = insp.get(z, [])
            out.append(a)
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
