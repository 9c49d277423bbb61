"""Station siting on the report store: demand from the same filters as the maps, sites with their zones.

The caller builds the report filter (maps.aggregate.ReportFilter) and passes its SQL conditions
(`flt.conditions(index)`) and zone scope (`flt.zone_scope(index)`); this module reads the matching
points (store.map_aggregates, as the heat map does), counts them on a grid in EPSG:4547, takes as
candidates the grid cell centres inside the zones in scope (plus a candidate file), keeps the existing
stations (data/boundaries/stations.csv, or a file) open, and asks gis.siting.

Identifiers for a travel-time matrix (CSV origin, destination, seconds): origin is a demand cell id
``r<row>c<col>`` (row = floor(northing / cell), col = floor(easting / cell) in EPSG:4547), destination
a facility id: a station_id, a candidate-file id, or a grid candidate ``r<row>c<col>`` (same lattice).
With a travel-time matrix the radius is in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gis.boundaries import METRIC
from gis.crs import from_wgs84, to_wgs84
from gis.siting import Demand, Facilities, SitingInputError, SitingResult, demand_grid, euclidean, grid_candidates
from gis.siting import solve as solve_siting
from gis.siting import travel_times as travel_matrix

STATIONS_CSV = Path(__file__).resolve().parent.parent / "data" / "boundaries" / "stations.csv"
MAX_PAIRS = 40_000_000  # demand × facility cost matrix entries (8 bytes each): a bound on memory


@dataclass
class StationPlan:
    """A siting answer with the places behind it (WGS-84 for output)."""

    result: SitingResult
    demand: Demand
    facilities: Facilities
    sites: list[dict]  # proposed sites: id, lon, lat, zone_id, zone_name, town, demand served
    existing: list[dict]  # existing stations: id, name, lon, lat, zone_id
    uncovered: list[dict]  # demand cells beyond the radius after the plan: id, lon, lat, weight
    parameters: dict = field(default_factory=dict)
    n_reports: int = 0

    def to_dict(self) -> dict:
        """The JSON answer of GET /v1/plan/stations and `zonechief plan stations --json`."""
        r = self.result
        return {**r.to_dict(), "parameters": self.parameters, "n_reports": self.n_reports,
                "n_demand_cells": len(self.demand), "n_candidates": int((~self.facilities.existing).sum()),
                "sites": self.sites, "existing": self.existing, "uncovered_cells": len(self.uncovered)}

    def geojson(self) -> dict:
        """Existing stations, proposed sites and uncovered demand cells as one FeatureCollection (WGS-84).

        Each feature has `role`: existing | proposed | uncovered_demand; stations carry `radius` for rings.
        """
        feats = []
        radius = self.result.radius
        for s in self.existing:
            feats.append(_point(s, role="existing", radius=radius))
        for s in self.sites:
            feats.append(_point(s, role="proposed", radius=radius))
        for u in self.uncovered:
            feats.append(_point(u, role="uncovered_demand"))
        return {"type": "FeatureCollection", "features": feats,
                "properties": {k: v for k, v in self.to_dict().items() if k not in ("sites", "existing")}}


def _point(props: dict, **extra) -> dict:
    p = {k: v for k, v in props.items() if k not in ("lon", "lat")}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [props["lon"], props["lat"]]},
            "properties": {**p, **extra}}


def _metric(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    x, y = from_wgs84(np.asarray(lon, dtype="f8"), np.asarray(lat, dtype="f8"), METRIC)
    return np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8")


def _wgs(x, y) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = to_wgs84(np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8"), METRIC)
    return np.atleast_1d(np.asarray(lon, dtype="f8")), np.atleast_1d(np.asarray(lat, dtype="f8"))


def _read_csv(path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise SitingInputError(f"cannot read the {what} file {path}: {exc}") from None


def read_points(path, what: str, id_col: str) -> pd.DataFrame:
    """A CSV of points (`id_col`, lon, lat, optional crs and name) as id, name, lon, lat in WGS-84."""
    df = _read_csv(path, what)
    missing = {id_col, "lon", "lat"} - set(df.columns)
    if missing:
        raise SitingInputError(f"the {what} file {path} lacks column(s) {', '.join(sorted(missing))}")
    x = pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype="f8")
    y = pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype="f8")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise SitingInputError(f"the {what} file {path}: row {int(np.flatnonzero(bad)[0]) + 2} has no numeric lon/lat")
    lon, lat = np.empty(len(df)), np.empty(len(df))
    crs = df["crs"] if "crs" in df.columns else pd.Series(["wgs84"] * len(df))
    for c in crs.unique():
        m = (crs == c).to_numpy()
        a, b = to_wgs84(x[m], y[m], c or "wgs84")
        lon[m], lat[m] = a, b
    names = df["name"] if "name" in df.columns else df[id_col]
    return pd.DataFrame({"id": df[id_col].astype(str), "name": names.astype(str), "lon": lon, "lat": lat,
                         "kind": df.get("kind", pd.Series([""] * len(df))).astype(str)})


def plan_stations(db, index, conditions: list, zone_scope: list[str] | None, *, model: str = "mclp",
                  add: int | None = 2, radius: float | None = 1000.0, grid_m: float = 250.0,
                  candidates_path=None, travel_times_path=None, stations_path=None,
                  time_limit: float | None = 30.0, parameters: dict | None = None) -> StationPlan:
    """Answer a siting question over the reports matching `conditions` inside the zones in `zone_scope` (None: all)."""
    if not (25 <= grid_m <= 5000):
        raise SitingInputError(f"grid cell {grid_m} m is out of range (25 … 5000 m)")
    lon, lat, _ = db.map_aggregates.points(conditions)
    zones = index.zones if zone_scope is None else index.zones[index.zones.zone_id.isin(zone_scope)]
    area = shapely.union_all(zones.to_crs(METRIC).geometry.values)
    x, y = _metric(lon, lat) if len(lon) else (np.zeros(0), np.zeros(0))
    inside = shapely.contains_xy(area, x, y) if len(x) else np.zeros(0, bool)  # demand inside the area planned
    dem = demand_grid(x[inside], y[inside], grid_m)
    st = read_points(stations_path or STATIONS_CSV, "stations", "station_id")
    sx, sy = _metric(st.lon, st.lat)
    keep = shapely.contains_xy(area, sx, sy) if len(st) else np.zeros(0, bool)
    st = st[keep]
    existing = Facilities.make(st.id, sx[keep], sy[keep], existing=True, names=st.name)
    parts = [existing, grid_candidates(area, grid_m)]
    if candidates_path:
        cd = read_points(candidates_path, "candidates", "candidate_id")
        cx, cy = _metric(cd.lon, cd.lat)
        parts.append(Facilities.make(cd.id, cx, cy, names=cd.name))
    fac = Facilities.combine(*parts)
    if len(dem) * len(fac) > MAX_PAIRS:
        raise SitingInputError(f"{len(dem)} demand cells × {len(fac)} sites is too large; use a coarser grid")
    if travel_times_path:
        cost = travel_matrix(_read_csv(travel_times_path, "travel-time"), dem, fac)
    else:
        cost = euclidean(dem, fac)
    res = solve_siting(model, dem, fac, cost, add=add, radius=radius, time_limit=time_limit)
    return _plan(res, dem, fac, cost, index, st, int(inside.sum()), parameters or {})


def _plan(res: SitingResult, dem: Demand, fac: Facilities, cost, index, st, n_reports: int, params) -> StationPlan:
    """Sites and stations in WGS-84 with their zones; the demand each serves; the cells left uncovered."""
    sites: list[dict] = []
    if len(res.added):
        lon, lat = _wgs(fac.x[res.added], fac.y[res.added])
        z = index.assign(lon, lat)
        served = {}
        if res.nearest is not None:
            served = pd.Series(dem.weight).groupby(res.nearest).sum().to_dict()
        for n, j in enumerate(res.added):
            sites.append({"id": str(fac.ids[j]), "rank": n + 1, "lon": round(float(lon[n]), 6),
                          "lat": round(float(lat[n]), 6), "zone_id": _s(z.zone_id.iloc[n]),
                          "zone_name": _s(z.zone_name.iloc[n]), "town": _s(z.town.iloc[n]),
                          "chief_name": _s(z.chief_name.iloc[n]), "demand_served": float(served.get(j, 0.0))})
    existing = []
    ex = np.flatnonzero(fac.existing)
    if len(ex):
        z = index.assign(st.lon.to_numpy(), st.lat.to_numpy())
        pos = {s: k for k, s in enumerate(st.id)}
        for j in ex:
            k = pos[str(fac.ids[j])]
            existing.append({"id": str(fac.ids[j]), "name": str(st.name.iloc[k]), "kind": str(st.kind.iloc[k]),
                             "lon": round(float(st.lon.iloc[k]), 6), "lat": round(float(st.lat.iloc[k]), 6),
                             "zone_id": _s(z.zone_id.iloc[k])})
    uncovered: list[dict] = []
    if res.radius and len(res.open):
        far = ~(cost[:, res.open].min(axis=1) <= res.radius)
        if far.any():
            lon, lat = _wgs(dem.x[far], dem.y[far])
            uncovered = [{"id": str(i), "lon": round(float(a), 6), "lat": round(float(b), 6), "weight": float(w)}
                         for i, a, b, w in zip(dem.ids[far], lon, lat, dem.weight[far])]
    return StationPlan(res, dem, fac, sites, existing, uncovered, params, n_reports)


def _s(v) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v) else str(v)
