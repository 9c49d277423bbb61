"""A brute-force reference lookup, to check a zone index against: slow on purpose, simple enough to trust.

`BruteForceLookup` answers "which zone holds this point, is it on the zone's edge, how far is each zone"
the obvious way: every point against every polygon, in shapely, with no grid, tree, bounding box, cache
or compiled loop in between. It reads the boundary file with plain `json` and `shapely.geometry.shape`
and imports nothing from gis, so a mistake in gis.lookup (or in gis.boundaries, which reads the files for
it) cannot hide in both. The zonechief tests check `gis.lookup.ZoneIndex` with it; use it the same way on
an index built from your own boundaries before you trust it::

    from gis.lookup import ZoneIndex
    from zonechief.testing import BruteForceLookup

    ref = BruteForceLookup.from_geojson("villages.geojson")
    idx = ZoneIndex.load("villages.geojson")
    lon, lat = ...                                   # a few thousand points over the area
    zone, on_boundary = ref.zone_and_boundary(lon, lat)
    got = idx.assign(lon, lat)["zone_id"]            # must equal `zone` wherever `zone` is not None

A query costs O(points x polygons) shapely calls: fine for thousands of points, not for serving.

The rules are the ones ZoneIndex promises:

- zone: the smallest zone_id among the zones whose polygon (the zone's villages dissolved) `covers` the
  point, so a point on an edge or vertex shared by two zones goes to the smaller id; None outside all.
- on boundary: the point lies on the outline of that zone. An edge between two villages of the same
  zone is inside the zone, not on its boundary.
- distances: metres in EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger, central meridian 114E) from the
  point to each zone (0 where the zone covers it); the nearest zone is the smallest zone_id among the
  zones at the least distance.
- villages ("units"), ordered by zone_id then code, as the index orders them: `locate` gives the first
  village whose interior holds the point, else the first that covers it (the point is on an edge),
  else -1; and whether any village's interior holds it.

Coordinates are WGS-84 longitude/latitude, as in GeoJSON, unless a method says `metric=True`. Every
query method takes scalars or arrays: two scalars give scalar answers, arrays give arrays.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyproj
import shapely
from shapely.geometry import shape

METRIC = "EPSG:4547"


class Village(NamedTuple):
    """One boundary polygon: its code, the zone it belongs to, and its geometry (WGS-84)."""

    code: str
    zone_id: str
    geometry: Any


class BruteForceLookup:
    """Zone assignment by checking every polygon for every point (see the module docstring for the rules).

    Build it with `from_geojson` (a file) or `from_features` (a parsed FeatureCollection), or directly
    from (code, zone_id, geometry) triples in WGS-84.
    """

    def __init__(self, villages: Iterable[tuple[str, str, Any]], metric_crs: str = METRIC):
        self.villages = [Village(str(c), str(z), g) for c, z, g in villages]
        if not self.villages:
            raise ValueError("no villages: a reference lookup needs at least one polygon")
        self.metric_crs = metric_crs
        self._to_metric = pyproj.Transformer.from_crs("EPSG:4326", metric_crs, always_xy=True)
        self._from_metric = pyproj.Transformer.from_crs(metric_crs, "EPSG:4326", always_xy=True)
        # Villages ordered as the index orders its units: zone_id, then code.
        self.units = sorted(self.villages, key=lambda v: (v.zone_id, v.code))
        self.unit_keys = [(v.zone_id, v.code) for v in self.units]
        self.unit_geoms = np.array([v.geometry for v in self.units], dtype=object)
        self.unit_zone = np.array([v.zone_id for v in self.units], dtype=object)
        # Zones: sorted ids, each the union of its villages (in file order).
        self.zone_ids = sorted({v.zone_id for v in self.villages})
        self.zone_array = np.array(self.zone_ids, dtype=object)
        self.zones = {z: shapely.union_all([v.geometry for v in self.villages if v.zone_id == z]) for z in self.zone_ids}
        self.zone_geoms = [self.zones[z] for z in self.zone_ids]
        self.zone_outlines = [g.boundary for g in self.zone_geoms]
        self.bounds = tuple(float(b) for b in shapely.total_bounds(self.unit_geoms))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_features(cls, collection: dict, zone_field: str = "zone_id", code_field: str = "code",
                      metric_crs: str = METRIC) -> BruteForceLookup:
        """From a parsed GeoJSON FeatureCollection of (Multi)Polygons in WGS-84, each with a zone and a code."""
        villages = []
        for i, f in enumerate(collection["features"]):
            props = f.get("properties") or {}
            if props.get(zone_field) in (None, "") or props.get(code_field) in (None, ""):
                raise ValueError(f"feature {i} has no {zone_field!r} or no {code_field!r} property")
            villages.append((props[code_field], props[zone_field], shape(f["geometry"])))
        return cls(villages, metric_crs)

    @classmethod
    def from_geojson(cls, path: str | Path, zone_field: str = "zone_id", code_field: str = "code",
                     metric_crs: str = METRIC) -> BruteForceLookup:
        """From a GeoJSON file (read with plain json), e.g. data/boundaries/villages.geojson."""
        return cls.from_features(json.loads(Path(path).read_text(encoding="utf-8")), zone_field, code_field, metric_crs)

    # ------------------------------------------------------------------ metric
    def to_metric(self, geom):
        """A WGS-84 geometry (or array of them) in the metric CRS."""
        return shapely.transform(geom, lambda xy: np.column_stack(self._to_metric.transform(xy[:, 0], xy[:, 1])))

    def to_metric_xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """WGS-84 coordinates in the metric CRS (metres)."""
        mx, my = self._to_metric.transform(np.asarray(lon, dtype="f8"), np.asarray(lat, dtype="f8"))
        return np.asarray(mx), np.asarray(my)

    def from_metric_xy(self, mx, my) -> tuple[np.ndarray, np.ndarray]:
        """Metric coordinates back in WGS-84."""
        lon, lat = self._from_metric.transform(np.asarray(mx, dtype="f8"), np.asarray(my, dtype="f8"))
        return np.asarray(lon), np.asarray(lat)

    @cached_property
    def zone_geoms_metric(self) -> list:
        """The dissolved zones in the metric CRS, in zone_ids order."""
        return [self.to_metric(g) for g in self.zone_geoms]

    @cached_property
    def unit_geoms_metric(self) -> np.ndarray:
        """The villages in the metric CRS, in units order."""
        return np.array([self.to_metric(g) for g in self.unit_geoms], dtype=object)

    # ------------------------------------------------------------------ zones
    def covers(self, lon, lat) -> np.ndarray:
        """(n_zones, n_points) booleans: zone polygon covers point (shapely `covers`, edges included)."""
        pts, _ = _points(lon, lat)
        return np.array([shapely.covers(g, pts) for g in self.zone_geoms]).reshape(len(self.zone_geoms), -1)

    def zone_and_boundary(self, lon, lat):
        """(zone, on_boundary): the smallest covering zone_id or None, and whether the point is on its outline."""
        pts, scalar = _points(lon, lat)
        cov = np.array([shapely.covers(g, pts) for g in self.zone_geoms]).reshape(len(self.zone_geoms), -1)
        hit = cov.any(axis=0)
        first = cov.argmax(axis=0)  # zone_ids are sorted: the first covering zone is the smallest zone_id
        zone = np.where(hit, self.zone_array[first], None)
        onb = np.zeros(len(pts), dtype=bool)
        for k in np.flatnonzero(hit):
            onb[k] = shapely.intersects(self.zone_outlines[first[k]], pts[k])
        return (zone[0], bool(onb[0])) if scalar else (zone, onb)

    def zone(self, lon, lat):
        """The smallest zone_id whose zone covers the point; None outside every zone."""
        return self.zone_and_boundary(lon, lat)[0]

    def on_boundary(self, lon, lat):
        """Whether the point lies on the outline of the zone it is assigned to (False outside every zone)."""
        return self.zone_and_boundary(lon, lat)[1]

    def zone_distances(self, x, y, *, metric: bool = False) -> np.ndarray:
        """(n_zones, n_points) distances in metres from each point to each zone (0 where the zone covers it).

        x, y are WGS-84 lon/lat, or metric coordinates with metric=True.
        """
        mx, my = (np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8")) if metric else self.to_metric_xy(x, y)
        pts = shapely.points(mx, my)
        return np.array([shapely.distance(g, pts) for g in self.zone_geoms_metric]).reshape(len(self.zone_geoms), -1)

    def distance(self, x, y, *, metric: bool = False):
        """Metres from the point to the nearest zone (0 inside one)."""
        d = self.zone_distances(x, y, metric=metric).min(axis=0)
        return float(d[0]) if _scalar(x, y) else d

    def nearest_zone(self, x, y, *, metric: bool = False):
        """The zone_id at the least distance (on an exact tie, the smallest zone_id)."""
        near = self.zone_array[self.zone_distances(x, y, metric=metric).argmin(axis=0)]
        return near[0] if _scalar(x, y) else near

    # ------------------------------------------------------------------ villages
    def locate(self, lon, lat):
        """(unit, interior): index into `units` of the village holding the point, -1 if none; in an interior?

        The unit is the first village whose interior holds the point, else the first that covers it.
        """
        pts, scalar = _points(lon, lat)
        inside = np.array([shapely.contains(g, pts) for g in self.unit_geoms]).reshape(len(self.unit_geoms), -1)
        cover = np.array([shapely.covers(g, pts) for g in self.unit_geoms]).reshape(len(self.unit_geoms), -1)
        unit = np.where(inside.any(axis=0), inside.argmax(axis=0), np.where(cover.any(axis=0), cover.argmax(axis=0), -1))
        interior = inside.any(axis=0)
        return (int(unit[0]), bool(interior[0])) if scalar else (unit, interior)

    def village_distances(self, x, y, *, metric: bool = False) -> np.ndarray:
        """(n_units, n_points) distances in metres from each point to each village, in `units` order.

        x, y are WGS-84 lon/lat, or metric coordinates with metric=True. The nearest village is the
        argmin (the first in order among exact ties).
        """
        mx, my = (np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8")) if metric else self.to_metric_xy(x, y)
        pts = shapely.points(mx, my)
        return np.array([shapely.distance(g, pts) for g in self.unit_geoms_metric]).reshape(len(self.unit_geoms), -1)


def _scalar(x, y) -> bool:
    return np.ndim(x) == 0 and np.ndim(y) == 0


def _points(lon, lat):
    """Flat shapely points of lon/lat, and whether both were scalars."""
    pts = shapely.points(np.asarray(lon, dtype="f8"), np.asarray(lat, dtype="f8"))
    return np.atleast_1d(pts).reshape(-1), _scalar(lon, lat)
