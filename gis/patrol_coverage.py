"""Patrol coverage vs demand: where patrols went, stopped and dwelt, next to where reports come from.

>>> cov = coverage(points, demand_lon, demand_lat, index, since=since, until=until)  # doctest: +SKIP
>>> cov.zones, cov.cells, cov.people, cov.teams, cov.stops, cov.windows, cov.summary   # doctest: +SKIP

``points`` is a points frame (store.patrols_repo.points_frame's layout: patrol_id, person_id,
team, t UTC, lon, lat WGS-84); demand is the reports' WGS-84 points; ``index`` a ZoneIndex.
Everything is measured in EPSG:4547 metres. Definitions (also in ``definitions()``, which the
API returns beside the numbers):

- **segment**: a patrol's fixes with no time step above ``gap_s`` (movingpandas'
  ObservationGapSplitter); distance and time are summed over steps inside segments only.
- **stop**: movingpandas' TrajectoryStopDetector (within ``stop_diameter_m`` for at least
  ``stop_min_s``), see gis.patrol_stops; placed at the median of its fixes.
- **cells**: gis.hotspots.grid (``cell_m`` squares in EPSG:4547 touching the zones). A cell is
  a **hot spot** when Gi* of the report counts calls it hot at q ≤ ``alpha`` (gis.hotspots.gi_star).
- **visit**: a run of consecutive fixes of one segment in the same cell (or zone).
- **dwell**: the time steps of segments, each counted in the cell (zone) of its first fix.
- **windows**: ``window_h``-hour windows within patrol hours ``day_start_h``–``day_end_h``
  Asia/Shanghai on every day of the period (``since``–``until``, else the days of the fixes);
  only whole windows inside the period count.
- **dose** (the Koper curve): a stop lasting ``dose_min_s``–``dose_max_s`` (10–16 min), in the
  window of its start. A hot spot is dosed in a window with at least one such stop in it;
  ``dose_share`` is dosed (hot spot, window) pairs / (hot spots × windows), i.e. the mean over
  windows of the share of hot spots dosed; a cell's ``dose_rate`` is its dosed windows / windows.
  Longer stops are counted as ``long_stops`` (Koper: no extra effect, officer tied up).
- **demand within R**: reports within ``demand_radius_m`` of any segment's line (time ignored).
- **hours since last visit**: from the end of the period (``until``, else the last fix) to the
  last fix in the cell or zone; NaN if never visited.
- **classes**: ``well covered`` (hot spot, dose_rate ≥ ``dose_target``); ``under-patrolled hot
  spot`` (hot spot, dose_rate < dose_target); ``over-patrolled quiet area`` (not a hot spot, dwell
  ≥ ``over_min_dwell_min`` and dwell share ≥ ``over_ratio`` × its share of reports); otherwise ``other``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis import hotspots
from gis.boundaries import METRIC
from gis.crs import from_wgs84, to_wgs84
from gis.localtime import LOCAL_OFFSET_S
from gis.patrol_stops import detect_stops, segments, stop_positions

CLASSES = ("well covered", "under-patrolled hot spot", "over-patrolled quiet area", "other")
POINT_COLUMNS = ("patrol_id", "person_id", "team", "t", "lon", "lat")

__all__ = ["CoverageParams", "Coverage", "coverage", "prepare_fixes", "Fixes", "patrol_windows", "CLASSES",
           "definitions"]


@dataclass(frozen=True)
class CoverageParams:
    """The knobs of the coverage computation (module docstring for what each means)."""

    cell_m: float = 250.0
    gap_s: float = 300.0
    stop_diameter_m: float = 50.0
    stop_min_s: float = 120.0
    dose_min_s: float = 600.0
    dose_max_s: float = 960.0
    window_h: float = 2.0
    day_start_h: float = 8.0
    day_end_h: float = 18.0
    demand_radius_m: float = 200.0
    permutations: int = 9999  # as /maps/hotspots: BH needs small p-values, p ≥ 2/(R+1)
    alpha: float = 0.05
    dose_target: float = 0.5
    over_ratio: float = 3.0
    over_min_dwell_min: float = 60.0

    def __post_init__(self):
        if not (self.cell_m > 0 and self.gap_s > 0 and self.stop_diameter_m > 0 and self.stop_min_s >= 0
                and 0 <= self.dose_min_s <= self.dose_max_s and self.window_h > 0 and self.demand_radius_m > 0):
            raise ValueError("coverage parameters must be positive (dose_min_s ≤ dose_max_s)")
        if not 0 <= self.day_start_h < self.day_end_h <= 24:
            raise ValueError("patrol hours need 0 ≤ day_start_h < day_end_h ≤ 24")


def definitions(params: CoverageParams | None = None) -> dict:
    """The definitions behind the numbers, with the parameters in force (for the API and notebooks)."""
    p = params or CoverageParams()
    return {
        "parameters": asdict(p),
        "segment": f"a patrol's fixes with no step over {p.gap_s:g} s (movingpandas ObservationGapSplitter)",
        "stop": f"movingpandas TrajectoryStopDetector: within {p.stop_diameter_m:g} m for ≥ {p.stop_min_s:g} s",
        "hot_spot": f"Gi* hot cell of report counts, {p.cell_m:g} m grid in EPSG:4547, q ≤ {p.alpha:g} (BH FDR), "
                    f"{p.permutations} permutations",
        "visit": "a run of consecutive fixes of one segment in the same cell (zone)",
        "dwell_min": "minutes of segment steps, each counted where its first fix lies",
        "windows": f"{p.window_h:g}-hour windows from {p.day_start_h:g}:00 to {p.day_end_h:g}:00 Asia/Shanghai on "
                   "every day of the period; whole windows only",
        "dose": f"a stop of {p.dose_min_s / 60:g}–{p.dose_max_s / 60:g} min (Koper curve), in the window of its start; "
                "dose_share = dosed (hot spot, window) pairs / (hot spots × windows)",
        "demand_within": f"reports within {p.demand_radius_m:g} m of a patrol segment's line (any time)",
        "hours_since_last_visit": "from the end of the period (until, else the last fix) to the last fix there",
        "classes": {
            "well covered": f"hot spot with dose_rate ≥ {p.dose_target:g}",
            "under-patrolled hot spot": f"hot spot with dose_rate < {p.dose_target:g}",
            "over-patrolled quiet area": f"not a hot spot, dwell ≥ {p.over_min_dwell_min:g} min and dwell share ≥ "
                                         f"{p.over_ratio:g} × its share of reports",
            "other": "none of the above",
        },
    }


# ------------------------------------------------------------------ fixes
@dataclass
class Fixes:
    """Clean fixes as arrays, sorted by (patrol, t), with their segments (gis.patrol_stops.segments).

    Who walked is kept per patrol (``patrols``, ``patrol_person``, ``patrol_team``; ``pidx`` is each
    fix's position there): a few hundred strings, not millions.
    """

    patrol: np.ndarray
    pidx: np.ndarray
    patrols: np.ndarray
    patrol_person: np.ndarray
    patrol_team: np.ndarray
    t: np.ndarray  # int64 ns UTC
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    starts: np.ndarray
    seg: np.ndarray = field(init=False)

    def __post_init__(self):
        self.seg = np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))

    def subset(self, keep: np.ndarray, gap_s: float) -> "Fixes":
        """The fixes where ``keep``, with segments recomputed."""
        return Fixes(self.patrol[keep], self.pidx[keep], self.patrols, self.patrol_person, self.patrol_team,
                     self.t[keep], self.lon[keep], self.lat[keep], self.x[keep], self.y[keep],
                     segments(self.patrol[keep], self.t[keep], gap_s))

    def __len__(self):
        return len(self.t)

    def steps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(index of each step's first fix, its seconds, its metres), for steps inside segments."""
        if not hasattr(self, "_steps"):
            i = np.flatnonzero(self.seg[1:] == self.seg[:-1]) if len(self) else np.zeros(0, dtype=np.int64)
            dt = (self.t[i + 1] - self.t[i]) / 1e9
            self._steps = (i, dt, np.hypot(self.x[i + 1] - self.x[i], self.y[i + 1] - self.y[i]))
        return self._steps


def _t_ns(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values), utc=True).to_numpy(dtype="datetime64[ns]").view("i8")


def prepare_fixes(points: pd.DataFrame, gap_s: float = 300.0) -> Fixes:
    """The fixes of a points frame: finite ones, sorted by (patrol_id, t), one per instant, in EPSG:4547."""
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise ValueError(f"points need columns {missing}")
    t = _t_ns(points["t"]) if len(points) else np.zeros(0, dtype=np.int64)
    lon = points["lon"].to_numpy(dtype="f8")
    lat = points["lat"].to_numpy(dtype="f8")
    pid = points["patrol_id"].to_numpy(dtype=np.int64)
    ok = np.isfinite(lon) & np.isfinite(lat) & (t != np.iinfo(np.int64).min)
    order = np.lexsort((t, pid))
    order = order[ok[order]]
    pid, t = pid[order], t[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (pid[1:] != pid[:-1]) | (t[1:] != t[:-1])  # one fix per instant, as movingpandas' time index
    order, pid, t = order[keep], pid[keep], t[keep]
    lon, lat = lon[order], lat[order]
    x, y = from_wgs84(lon, lat, METRIC) if len(order) else (lon.copy(), lat.copy())
    heads = points.drop_duplicates("patrol_id")
    patrols = heads["patrol_id"].to_numpy(dtype=np.int64)
    by_id = np.argsort(patrols, kind="stable")
    patrols = patrols[by_id]
    person = np.asarray(heads["person_id"].astype(object).to_numpy()[by_id], dtype=object)
    team = np.asarray(heads["team"].astype(object).to_numpy()[by_id], dtype=object)
    pidx = np.searchsorted(patrols, pid)
    return Fixes(pid, pidx, patrols, person, team, t, lon, lat, np.asarray(x), np.asarray(y),
                 segments(pid, t, gap_s))


# ------------------------------------------------------------------ windows
def patrol_windows(since_ns: int, until_ns: int, params: CoverageParams) -> np.ndarray:
    """Start instants (int64 ns UTC) of the whole patrol windows inside [since, until) (module docstring)."""
    day_ns = 86400 * 10**9
    off = LOCAL_OFFSET_S * 10**9
    first = (since_ns + off) // day_ns
    last = (until_ns + off) // day_ns
    w = int(round(params.window_h * 3600e9))
    per_day = np.arange(int(round(params.day_start_h * 3600e9)), int(round(params.day_end_h * 3600e9)) - w + 1, w,
                        dtype=np.int64)
    days = np.arange(first, last + 1, dtype=np.int64) * day_ns - off
    starts = (days[:, None] + per_day[None, :]).ravel()
    return starts[(starts >= since_ns) & (starts + w <= until_ns)]


def _window_of(t_ns: np.ndarray, wstarts: np.ndarray, w_ns: int) -> np.ndarray:
    """Position in ``wstarts`` of the window holding each instant; -1 outside every window."""
    k = np.searchsorted(wstarts, t_ns, side="right") - 1
    ok = (k >= 0) & (t_ns < wstarts[np.clip(k, 0, None)] + w_ns) if len(wstarts) else np.zeros(len(t_ns), bool)
    return np.where(ok, k, -1)


# ------------------------------------------------------------------ result
@dataclass
class Coverage:
    """Coverage tables: cells and stops (GeoDataFrames, WGS-84), zones, people, teams, windows, summary; tracks on demand."""

    cells: gpd.GeoDataFrame
    zones: pd.DataFrame
    people: pd.DataFrame
    teams: pd.DataFrame
    stops: gpd.GeoDataFrame
    windows: pd.DataFrame
    summary: dict
    params: CoverageParams
    fixes: Fixes

    @property
    def tracks(self) -> gpd.GeoDataFrame:
        """One simplified line per segment (WGS-84), built when first asked for (maps; not the numbers)."""
        if not hasattr(self, "_tracks"):
            self._tracks = _tracks(self.fixes)
        return self._tracks

    def definitions(self) -> dict:
        """The definitions with this computation's parameters."""
        return definitions(self.params)


def _zone_codes(index, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """(zone position in index.zones or -1, zone ids) per WGS-84 point, through ZoneIndex.locate."""
    zone_ids = index.zones["zone_id"].astype(str).to_numpy()
    if not len(lon):
        return np.zeros(0, dtype=np.int64), zone_ids
    unit, _ = index.locate(lon, lat)
    pos = pd.Series(np.arange(len(zone_ids)), index=zone_ids)
    unit_zone = pos.reindex(index.units["zone_id"].astype(str)).fillna(-1).to_numpy(dtype=np.int64)
    return np.where(unit >= 0, unit_zone[np.clip(unit, 0, None)], -1), zone_ids


def _runs(code: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """True where a fix starts a visit: a new segment, or a different code than the fix before."""
    start = np.ones(len(code), dtype=bool)
    start[1:] = (code[1:] != code[:-1]) | (seg[1:] != seg[:-1])
    return start & (code >= 0)


def _per(code: np.ndarray, n: int, weights=None) -> np.ndarray:
    ok = code >= 0
    return np.bincount(code[ok], weights=None if weights is None else weights[ok], minlength=n)[:n]


def _last(code: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    ok = code >= 0
    np.maximum.at(out, code[ok], t[ok])
    return out


def _hours_since(last: np.ndarray, ref_ns: int) -> np.ndarray:
    return np.where(last == np.iinfo(np.int64).min, np.nan, (ref_ns - last) / 3.6e12)


def _near_tracks(fx: Fixes, dx: np.ndarray, dy: np.ndarray, radius: float, chunk: int = 64) -> np.ndarray:
    """Whether each demand point lies within ``radius`` of a segment's line.

    Within ``radius`` of a fix settles most (a KD-tree of the fixes). A point within ``radius`` of a
    step of length L has a fix within √(radius² + (L/2)²); only such points are measured against
    the lines (pieces of ``chunk`` fixes in an STRtree).
    """
    from scipy.spatial import cKDTree

    hit = np.zeros(len(dx), dtype=bool)
    if not len(dx) or not len(fx):
        return hit
    tree = cKDTree(np.c_[fx.x, fx.y], balanced_tree=False, compact_nodes=False)  # builds 3× faster
    d, _ = tree.query(np.c_[dx, dy], distance_upper_bound=radius * (1 + 1e-12) + 1e-9)
    hit = d <= radius
    steps = fx.steps()[2]
    reach = float(np.hypot(radius, steps.max() / 2)) if len(steps) else radius
    if reach <= radius:
        return hit
    d2, _ = tree.query(np.c_[dx, dy], distance_upper_bound=reach * (1 + 1e-9))
    cand = np.flatnonzero(~hit & np.isfinite(d2))
    if not len(cand):
        return hit
    starts = fx.starts
    seg_len = np.diff(starts)
    pieces = np.maximum(1, -(-(seg_len - 1) // (chunk - 1)))
    first = np.concatenate([starts[s] + np.arange(k) * (chunk - 1) for s, k in enumerate(pieces)])
    end = np.minimum(first + chunk, np.repeat(starts[1:], pieces))
    lens = end - first
    multi = lens >= 2
    first, lens = first[multi], lens[multi]
    if not len(first):
        return hit
    idx = np.repeat(first, lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    lines = _lines(fx.x[idx], fx.y[idx], np.repeat(np.arange(len(first)), lens))
    got = shapely.STRtree(lines).query(shapely.points(dx[cand], dy[cand]), predicate="dwithin", distance=radius)
    hit[cand[np.unique(got[0])]] = True
    return hit


def _lines(x, y, part) -> np.ndarray:
    """One LineString per distinct (sorted) ``part`` value."""
    _, idx = np.unique(part, return_inverse=True)
    return shapely.linestrings(x, y, indices=idx)


# ------------------------------------------------------------------ the computation
def _stops_frame(fx: Fixes, params: CoverageParams) -> pd.DataFrame:
    i0, i1 = detect_stops(fx.x, fx.y, fx.t, fx.starts, params.stop_diameter_m, params.stop_min_s)
    sx, sy = stop_positions(fx.x, fx.y, i0, i1)
    dur = (fx.t[i1] - fx.t[i0]) / 1e9
    return pd.DataFrame({"patrol_id": fx.patrol[i0], "person_id": fx.patrol_person[fx.pidx[i0]],
                         "team": fx.patrol_team[fx.pidx[i0]],
                         "start_ns": fx.t[i0], "end_ns": fx.t[i1], "duration_min": dur / 60.0, "x": sx, "y": sy,
                         "dose": (dur >= params.dose_min_s) & (dur <= params.dose_max_s),
                         "long": dur > params.dose_max_s})


def _period(fx: Fixes, since, until) -> tuple[int, int]:
    """[since, until) as ns; open ends: the local days of the first and last fix."""
    day, off = 86400 * 10**9, LOCAL_OFFSET_S * 10**9
    s = int(pd.Timestamp(since).as_unit("ns").value) if since is not None else (
        ((int(fx.t.min()) + off) // day) * day - off if len(fx) else 0)
    u = int(pd.Timestamp(until).as_unit("ns").value) if until is not None else (
        ((int(fx.t.max()) + off) // day + 1) * day - off if len(fx) else s)
    if u <= s:
        raise ValueError("until must be after since")
    return s, u


def _cell_zones(cells: gpd.GeoDataFrame, index) -> np.ndarray:
    """Zone position of each cell: the zone of its centre, else the zone it overlaps most."""
    c = shapely.centroid(cells.geometry.values)
    lon, lat = to_wgs84(shapely.get_x(c), shapely.get_y(c), METRIC)
    code, _ = _zone_codes(index, lon, lat)
    miss = np.flatnonzero(code < 0)
    if len(miss):
        zg = index.zones.to_crs(METRIC).geometry.values
        for k in miss:
            a = shapely.area(shapely.intersection(zg, cells.geometry.values[k]))
            code[k] = int(np.argmax(a)) if a.max() > 0 else -1
    return code


def coverage(points: pd.DataFrame, demand_lon, demand_lat, index, *, since: datetime | None = None,
             until: datetime | None = None, params: CoverageParams | None = None,
             cells: gpd.GeoDataFrame | None = None, hot: np.ndarray | None = None) -> Coverage:
    """Coverage of the demand by the patrols in ``points`` (module docstring for every definition).

    ``index``: a ZoneIndex (zones, units and ``locate``); pass a subset's ``cells`` (gis.hotspots.grid)
    to limit the lattice; ``hot`` (bool per cell) replaces the Gi* hot spots, e.g. in tests.
    Fixes outside [since, until) are dropped here.
    """
    p = params or CoverageParams()
    fx = prepare_fixes(points, p.gap_s)
    s_ns, u_ns = _period(fx, since, until)
    if len(fx) and (fx.t.min() < s_ns or fx.t.max() >= u_ns):
        fx = fx.subset((fx.t >= s_ns) & (fx.t < u_ns), p.gap_s)
    cells = hotspots.grid(index, p.cell_m) if cells is None else cells
    n = len(cells)
    dlon = np.asarray(demand_lon, dtype="f8")
    dlat = np.asarray(demand_lat, dtype="f8")
    ok = np.isfinite(dlon) & np.isfinite(dlat)
    dlon, dlat = dlon[ok], dlat[ok]
    dx, dy = from_wgs84(dlon, dlat, METRIC) if len(dlon) else (dlon.copy(), dlat.copy())
    dcell = hotspots._cell_of(cells, dx, dy) if len(dx) else np.zeros(0, dtype=np.int64)
    demand = _per(dcell, n).astype(np.int64)
    gi_z = np.full(n, np.nan)
    if hot is None:
        pts = gpd.GeoSeries(gpd.points_from_xy(dlon, dlat), crs=4326)
        g = hotspots.gi_star(pts, index, cells=cells, permutations=p.permutations, alpha=p.alpha)
        hot = g["significant"].to_numpy() & (g["gi_z"].to_numpy() > 0)
        gi_z = g["gi_z"].to_numpy()
    hot = np.asarray(hot, dtype=bool)

    # fixes → cells and zones; steps → dwell and distance
    fcell = hotspots._cell_of(cells, fx.x, fx.y) if len(fx) else np.zeros(0, dtype=np.int64)
    fzone, zone_ids = _zone_codes(index, fx.lon, fx.lat)
    nz = len(zone_ids)
    si, sdt, sdist = fx.steps()
    dwell = _per(fcell[si], n, sdt) / 60.0
    visits = _per(np.where(_runs(fcell, fx.seg), fcell, -1), n)
    ref_ns = u_ns if until is not None or not len(fx) else int(fx.t.max())
    cell_since = _hours_since(_last(fcell, fx.t, n), ref_ns)

    # stops, windows, dose
    st = _stops_frame(fx, p)
    st["cell"] = hotspots._cell_of(cells, st["x"].to_numpy(), st["y"].to_numpy()) if len(st) else np.zeros(0, int)
    wstarts = patrol_windows(s_ns, u_ns, p)
    w_ns = int(round(p.window_h * 3600e9))
    st["window"] = _window_of(st["start_ns"].to_numpy(), wstarts, w_ns)
    q = st[st["dose"] & (st["window"] >= 0) & (st["cell"] >= 0)]
    pairs = np.unique(q["cell"].to_numpy() * max(len(wstarts), 1) + q["window"].to_numpy())
    dosed_cell, dosed_win = np.divmod(pairs, max(len(wstarts), 1))
    dosed_windows = np.bincount(dosed_cell, minlength=n)[:n]
    nw = len(wstarts)
    dose_rate = dosed_windows / nw if nw else np.full(n, np.nan)
    hot_dosed_per_window = np.bincount(dosed_win[hot[dosed_cell]], minlength=nw)[:nw] if nw else np.zeros(0)

    near = _near_tracks(fx, dx, dy, p.demand_radius_m)
    demand_near = _per(np.where(near, dcell, -1), n).astype(np.int64)

    # classes
    tot_dwell, tot_demand = dwell.sum(), demand.sum()
    dwell_share = dwell / tot_dwell if tot_dwell > 0 else np.zeros(n)
    demand_share = demand / tot_demand if tot_demand > 0 else np.zeros(n)
    rate = np.nan_to_num(dose_rate, nan=0.0)
    cls = np.full(n, "other", dtype=object)
    cls[hot & (rate >= p.dose_target)] = "well covered"
    cls[hot & (rate < p.dose_target)] = "under-patrolled hot spot"
    cls[~hot & (dwell >= p.over_min_dwell_min) & (dwell_share >= p.over_ratio * demand_share)] = \
        "over-patrolled quiet area"

    czone = _cell_zones(cells, index)
    cell_stops = _per(st["cell"].to_numpy(), n) if len(st) else np.zeros(n)
    cell_dose_stops = _per(q["cell"].to_numpy(), n) if len(q) else np.zeros(n)
    out_cells = gpd.GeoDataFrame({
        "cell_id": cells["cell_id"].to_numpy(), "zone_id": np.where(czone >= 0, zone_ids[np.clip(czone, 0, None)], None),
        "reports": demand, "reports_within": demand_near, "hot_spot": hot, "gi_z": gi_z,
        "visits": visits.astype(np.int64), "dwell_min": dwell, "stops": cell_stops.astype(np.int64),
        "dose_stops": cell_dose_stops.astype(np.int64), "dosed_windows": dosed_windows.astype(np.int64),
        "dose_rate": dose_rate, "hours_since_last_visit": cell_since, "dwell_share": dwell_share,
        "demand_share": demand_share, "class": cls,
    }, geometry=cells.geometry.to_numpy(), crs=cells.crs).to_crs(4326)

    # zones
    dzone, _ = _zone_codes(index, dlon, dlat)
    zvis = _per(np.where(_runs(fzone, fx.seg), fzone, -1), nz)
    zdwell = _per(fzone[si], nz, sdt) / 60.0
    zhot = _per(np.where(hot, czone, -1), nz)
    zdosed = _per(np.where(hot, czone, -1), nz, dosed_windows.astype("f8"))
    zdem = _per(dzone, nz)
    zdem_near = _per(np.where(near, dzone, -1), nz)
    zones = pd.DataFrame({
        "zone_id": zone_ids, "name": index.zones["name"].to_numpy(), "town": index.zones["town"].to_numpy(),
        "visits": zvis.astype(np.int64), "dwell_min": zdwell, "hot_spots": zhot.astype(np.int64),
        "dose_share": np.where((zhot > 0) & (nw > 0), zdosed / np.maximum(zhot * nw, 1), np.nan),
        "reports": zdem.astype(np.int64), "reports_within": zdem_near.astype(np.int64),
        "demand_within_share": np.where(zdem > 0, zdem_near / np.maximum(zdem, 1), np.nan),
        "hours_since_last_visit": _hours_since(_last(fzone, fx.t, nz), ref_ns),
        **{c: _per(np.where(cls == c, czone, -1), nz).astype(np.int64) for c in CLASSES[:3]},
    })

    people = _by(fx, si, sdt, sdist, fzone, zone_ids, st, "person_id", fx.patrol_person)
    teams = _by(fx, si, sdt, sdist, fzone, zone_ids, st, "team", fx.patrol_team)
    windows = pd.DataFrame({"start": pd.to_datetime(wstarts, utc=True), "end": pd.to_datetime(wstarts + w_ns, utc=True),
                            "hot_spots_dosed": hot_dosed_per_window.astype(np.int64),
                            "share": hot_dosed_per_window / hot.sum() if hot.sum() else np.full(nw, np.nan)})
    n_hot = int(hot.sum())
    summary = {
        "since": pd.Timestamp(s_ns, tz="UTC").isoformat(), "until": pd.Timestamp(u_ns, tz="UTC").isoformat(),
        "fixes": int(len(fx)), "patrols": int(len(np.unique(fx.patrol))), "segments": int(len(fx.starts) - 1),
        "people": int(len(people)), "stops": int(len(st)), "dose_stops": int(st["dose"].sum()) if len(st) else 0,
        "long_stops": int(st["long"].sum()) if len(st) else 0, "windows": nw, "cells": n, "hot_spots": n_hot,
        "dose_share": float(len(dosed_cell[hot[dosed_cell]]) / (n_hot * nw)) if n_hot and nw else None,
        "reports": int(tot_demand), "reports_within": int(near.sum()),
        "demand_within_share": float(near.mean()) if len(near) else None,
        "distance_km": float(sdist.sum() / 1000), "patrol_hours": float(sdt.sum() / 3600),
        **{c: int((cls == c).sum()) for c in CLASSES},
    }
    return Coverage(out_cells, zones, people, teams, _stops_gdf(st, cells, czone, zone_ids), windows, summary, p, fx)


def _by(fx, si, sdt, sdist, fzone, zone_ids, st, name, key) -> pd.DataFrame:
    """Distance, time on patrol, patrols, stops and zones covered per person or team."""
    cols = [name, "patrols", "distance_km", "patrol_hours", "stops", "dose_stops", "zones_covered", "zones"]
    if not len(fx):
        return pd.DataFrame(columns=cols)
    pk = pd.Series(key, dtype=object).fillna("").astype(str).to_numpy()  # per patrol
    pcodes, names = pd.factorize(pk, sort=True)
    codes = pcodes[fx.pidx]
    m = len(names)
    dist = np.bincount(codes[si], weights=sdist, minlength=m) / 1000
    hours = np.bincount(codes[si], weights=sdt, minlength=m) / 3600
    seen = np.unique(fx.pidx)
    patrols = np.bincount(pcodes[seen], minlength=m)
    nz = len(zone_ids)
    seen_z = np.zeros((m, nz), dtype=bool)
    seen_z[codes[fzone >= 0], fzone[fzone >= 0]] = True
    zl = pd.Series([",".join(sorted(zone_ids[row])) for row in seen_z])
    sk = pd.Series(st[name].fillna("").astype(str).to_numpy()) if len(st) else pd.Series([], dtype=object)
    stops = sk.value_counts().reindex(names, fill_value=0).to_numpy()
    dose = sk[st["dose"].to_numpy()].value_counts().reindex(names, fill_value=0).to_numpy() if len(st) else np.zeros(m)
    return pd.DataFrame({name: names, "patrols": patrols, "distance_km": dist, "patrol_hours": hours,
                         "stops": stops.astype(np.int64), "dose_stops": np.asarray(dose, dtype=np.int64),
                         "zones_covered": [len(z.split(",")) if z else 0 for z in zl], "zones": zl.to_numpy()},
                        columns=cols)


def _stops_gdf(st, cells, czone, zone_ids) -> gpd.GeoDataFrame:
    cell = st["cell"].to_numpy()
    cid = cells["cell_id"].to_numpy()
    zone = np.where(cell >= 0, czone[np.clip(cell, 0, None)] if len(czone) else -1, -1)
    out = pd.DataFrame({"patrol_id": st["patrol_id"], "person_id": st["person_id"], "team": st["team"],
                        "start": pd.to_datetime(st["start_ns"].to_numpy(dtype=np.int64), utc=True),
                        "end": pd.to_datetime(st["end_ns"].to_numpy(dtype=np.int64), utc=True),
                        "duration_min": st["duration_min"], "dose": st["dose"], "long": st["long"],
                        "cell_id": np.where(cell >= 0, cid[np.clip(cell, 0, None)] if len(cid) else None, None),
                        "zone_id": np.where(zone >= 0, zone_ids[np.clip(zone, 0, None)] if len(zone_ids) else None, None),
                        "window": st["window"]})
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(st["x"], st["y"]), crs=METRIC).to_crs(4326)


def _tracks(fx: Fixes, tolerance_m: float = 5.0) -> gpd.GeoDataFrame:
    """One line per segment of two or more fixes, simplified by ``tolerance_m`` (for maps), WGS-84."""
    a, b = fx.starts[:-1], fx.starts[1:]
    keep = (b - a) >= 2
    a, b = a[keep], b[keep]
    cols = {"patrol_id": fx.patrol[a], "person_id": fx.patrol_person[fx.pidx[a]], "team": fx.patrol_team[fx.pidx[a]],
            "start": pd.to_datetime(fx.t[a], utc=True), "end": pd.to_datetime(fx.t[b - 1], utc=True) if len(b) else
            pd.to_datetime(fx.t[a], utc=True), "fixes": (b - a).astype(np.int64)}
    if not len(a):
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=METRIC).to_crs(4326).values, crs=4326)
    seg_keep = np.flatnonzero(keep)
    sel = np.isin(fx.seg, seg_keep)
    lines = _lines(fx.x[sel], fx.y[sel], fx.seg[sel])
    lines = shapely.simplify(lines, tolerance_m, preserve_topology=False)  # Douglas-Peucker: a drawing, 10× faster
    return gpd.GeoDataFrame(cols, geometry=lines, crs=METRIC).to_crs(4326)
