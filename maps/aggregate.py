"""Reports → weights on a square grid, on the server, so a page carries cells and not a million points.

The grid is square in metres: a local equirectangular grid anchored at a fixed
origin south-west of the zones (at ~23°N over ~40 km the cells are square to
better than 0.1 %). On PostGIS the counting is one aggregated SQL query
(GROUP BY cell [, period]); on SQLite the points are read as WKB and counted
with numpy (np.bincount). Both give the same cells. The queries are
store.map_aggregates'.
Periods are local (Asia/Shanghai) calendar weeks starting Monday, or months.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import numpy as np

from gis.localtime import LOCAL, LOCAL_OFFSET_S
from maps.zones import MapInputError, select_zones
from store.map_aggregates import FIRST_MONDAY_S, CellCounts, report_conditions
from zonechief.workflow import STATUSES

PERIODS = ("week", "month")
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0


# ------------------------------------------------------------------ filters
@dataclass(frozen=True)
class ReportFilter:
    """Which reports a map shows. Times are aware datetimes (naive ones are taken as Asia/Shanghai)."""

    since: datetime | None = None
    until: datetime | None = None
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    town: str | None = None
    zone_ids: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("since", "until"):
            t = getattr(self, name)
            if t is None:
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=LOCAL)
            try:
                t.astimezone(timezone.utc)  # the store compares in UTC
            except OverflowError:
                t = None
            if t is None or not (1970 <= t.year <= 2200):
                raise MapInputError(f"{name} must be between 1970 and 2200")
            object.__setattr__(self, name, t)
        if self.since and self.until and self.since >= self.until:
            raise MapInputError(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")
        bad = [s for s in self.statuses if s not in STATUSES]
        if bad:
            raise MapInputError(f"unknown status {', '.join(bad)}; statuses are {', '.join(STATUSES)}")
        bad = [c for c in self.categories if not (isinstance(c, str) and len(c) == 5 and c.isdigit())]
        if bad:
            raise MapInputError(f"category {', '.join(map(str, bad))} is not a 5-digit code such as 06010")

    def zone_scope(self, index) -> list[str] | None:
        """Zone ids the town/zone filters allow (None: all reports, even those without a zone)."""
        if not self.town and not self.zone_ids:
            return None
        return list(select_zones(index, self.town, self.zone_ids).zone_id)

    def describe(self, category_names: dict | None = None) -> list[str]:
        """The filter as legend lines, one per condition set; `category_names` maps codes to names."""
        out = []
        if self.since or self.until:
            a = self.since.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if self.since else "…"
            b = self.until.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if self.until else "…"
            out.append(f"时间 Time: {a} – {b}")
        if self.categories:
            names = category_names or {}
            out.append("类别 Category: " + ", ".join(f"{c} {names.get(c, '')}".strip() for c in self.categories))
        if self.statuses:
            out.append("状态 Status: " + ", ".join(self.statuses))
        if self.town:
            out.append(f"镇街 Town: {self.town}")
        if self.zone_ids:
            out.append("片区 Zone: " + ", ".join(self.zone_ids))
        return out

    def conditions(self, index) -> list:
        """The filter as the store's SQL conditions (store.map_aggregates)."""
        return report_conditions(self.since, self.until, self.categories, self.statuses, self.zone_scope(index))


# ------------------------------------------------------------------ grid
@dataclass(frozen=True)
class Grid:
    """Square cells of `cell_m` metres; cell (i, j) spans [x0 + i·dx, x0 + (i+1)·dx) × [y0 + j·dy, …)."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    cell_m: float

    @classmethod
    def over(cls, bounds, cell_m: float, margin_m: float = 3000.0) -> "Grid":
        """A grid of `cell_m` cells over lon/lat `bounds` plus a margin, anchored so the same area and size give the same cells."""
        if not (25 <= cell_m <= 10_000):
            raise MapInputError(f"cell size {cell_m} m is out of range (25 … 10000 m)")
        minx, miny, maxx, maxy = bounds
        lat0 = (miny + maxy) / 2
        dx = cell_m / (M_PER_DEG_LON_EQ * math.cos(math.radians(lat0)))
        dy = cell_m / M_PER_DEG_LAT
        # Anchor on multiples of the cell size so that the same area and size always give the same cells.
        x0 = math.floor((minx - margin_m / M_PER_DEG_LON_EQ) / dx) * dx
        y0 = math.floor((miny - margin_m / M_PER_DEG_LAT) / dy) * dy
        nx = int(math.ceil((maxx + margin_m / M_PER_DEG_LON_EQ - x0) / dx))
        ny = int(math.ceil((maxy + margin_m / M_PER_DEG_LAT - y0) / dy))
        return cls(x0, y0, dx, dy, nx, ny, float(cell_m))

    def coarser(self, k: int) -> "Grid":
        """The grid with cells k times as wide and tall; each of its cells is exactly k × k of ours."""
        return Grid(self.x0, self.y0, self.dx * k, self.dy * k, -(-self.nx // k), -(-self.ny // k), self.cell_m * k)

    def cell_of(self, lon, lat) -> np.ndarray:
        """Flat cell number j·nx + i per point; -1 outside the grid (or NaN)."""
        with np.errstate(invalid="ignore"):
            i = np.floor((np.asarray(lon, dtype="f8") - self.x0) / self.dx)
            j = np.floor((np.asarray(lat, dtype="f8") - self.y0) / self.dy)
            ok = (i >= 0) & (i < self.nx) & (j >= 0) & (j < self.ny)
        return np.where(ok, j * self.nx + i, -1).astype(np.int64)

    def centres(self, flat) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of the centres of flat cell numbers (as cell_of numbers them)."""
        j, i = np.divmod(np.asarray(flat, dtype=np.int64), self.nx)
        return self.x0 + (i + 0.5) * self.dx, self.y0 + (j + 0.5) * self.dy


def period_of(epoch_s, by: str) -> np.ndarray:
    """Local calendar week (Monday start) or month number of Unix times; weeks since 1970-01-05, months since 1970-01."""
    t = np.asarray(epoch_s, dtype=np.int64) + LOCAL_OFFSET_S
    if by == "week":
        return np.floor_divide(t - FIRST_MONDAY_S, 7 * 86400)
    if by == "month":
        return t.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    raise MapInputError(f"period {by!r} must be one of {', '.join(PERIODS)}")


def period_label(p: int, by: str) -> str:
    """A period number (see period_of) as a legend label: the week's Monday, or YYYY-MM."""
    if by == "week":
        monday = datetime(1970, 1, 5) + timedelta(weeks=int(p))
        return monday.strftime("%Y-%m-%d") + " 周 week"
    y, mo = divmod(int(p), 12)
    return f"{1970 + y}-{mo + 1:02d}"


# ------------------------------------------------------------------ counted cells
@dataclass
class HeatCells:
    """Counts per (period, cell) — period is None for a single map."""

    grid: Grid
    cell: np.ndarray                 # flat cell numbers
    count: np.ndarray                # reports per cell (int64)
    period: np.ndarray | None = None  # period numbers (see period_of), aligned with cell
    by: str | None = None
    n_reports: int = 0               # reports counted
    n_outside: int = 0               # reports with a point outside the grid (not drawn)
    notes: list[str] = field(default_factory=list)

    def __len__(self):
        return len(self.cell)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of the centre of each counted cell."""
        return self.grid.centres(self.cell)

    def periods(self) -> list[int]:
        """Every period from the first to the last (empty ones too, so the animation keeps time)."""
        if self.period is None or not len(self.period):
            return []
        return list(range(int(self.period.min()), int(self.period.max()) + 1))

    def coarsen(self, k: int) -> "HeatCells":
        """The same counts on a grid k times coarser (exact: cells nest)."""
        if k == 1:
            return self
        g = self.grid
        j, i = np.divmod(self.cell, g.nx)
        cg = g.coarser(k)
        flat = (j // k) * cg.nx + i // k
        per = self.period if self.period is not None else np.zeros(len(flat), dtype=np.int64)
        cell, period, count = _sum_by(flat, per, self.count, cg.nx * cg.ny)
        return replace(self, grid=cg, cell=cell, count=count, period=None if self.period is None else period)

    def within(self, max_cells: int) -> "HeatCells":
        """Coarsen by 2, 3, 4 … until at most `max_cells` (period, cell) pairs remain; says so in notes."""
        k = 1
        out = self
        while len(out) > max_cells:
            k += 1
            out = self.coarsen(k)
        if k > 1:
            out.notes = [*self.notes, f"网格放大至 {out.grid.cell_m:.0f} m 以控制页面大小 "
                                      f"(cells enlarged from {self.grid.cell_m:.0f} m to keep the page small)"]
        return out


def _sum_by(cell: np.ndarray, period: np.ndarray, weight: np.ndarray, ncell: int):
    """Sum weights per (period, cell) pair; returns (cell, period, sum) sorted by period, then cell."""
    if not len(cell):
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    import pandas as pd

    p0 = int(period.min())
    key = (period.astype(np.int64) - p0) * ncell + cell.astype(np.int64)  # one int64 key per pair
    sums = pd.Series(weight, copy=False).groupby(key, sort=True).sum()  # hash grouping: no full sort of 1e6 keys
    per, cel = np.divmod(sums.index.to_numpy(dtype=np.int64), ncell)
    return cel, per + p0, np.rint(sums.to_numpy()).astype(np.int64)


def aggregate_points(lon, lat, grid: Grid, epoch_s=None, by: str | None = None) -> HeatCells:
    """Count points per cell (and per period when `by` is "week" or "month") with numpy."""
    flat = grid.cell_of(lon, lat)
    inside = flat >= 0
    n_out = int((~inside).sum())
    flat = flat[inside]
    if by is None:
        counts = np.bincount(flat, minlength=0) if len(flat) else np.zeros(0, dtype=np.int64)
        cell = np.flatnonzero(counts)
        return HeatCells(grid, cell, counts[cell].astype(np.int64), None, None, int(len(flat)), n_out)
    per = period_of(np.asarray(epoch_s)[inside], by)
    cell, period, count = _sum_by(flat, per, np.ones(len(flat)), grid.nx * grid.ny)
    return HeatCells(grid, cell, count, period, by, int(len(flat)), n_out)


def map_grid(index, cell_m: float) -> Grid:
    """The grid for maps of this index: over all zones, so cells do not move with the filters."""
    return Grid.over(index.zones.total_bounds, cell_m)


# ------------------------------------------------------------------ from the store
def fetch_points(db, index, flt: ReportFilter, with_time: bool = False):
    """(lon, lat, epoch seconds or None) of the matching reports, as numpy arrays."""
    return db.map_aggregates.points(flt.conditions(index), with_time)


def aggregate_store(db, index, flt: ReportFilter, grid: Grid, by: str | None = None) -> HeatCells:
    """Counts per cell (and period) of the matching reports; one GROUP BY query on PostGIS."""
    if by is not None and by not in PERIODS:
        raise MapInputError(f"period {by!r} must be one of {', '.join(PERIODS)}")

    def count_points(lon, lat, epoch_s) -> CellCounts:  # where the store reads points back (SQLite)
        h = aggregate_points(lon, lat, grid, epoch_s, by)
        return CellCounts(h.cell, h.period, h.count, h.n_outside)

    c = db.map_aggregates.cell_counts(flt.conditions(index), grid, by, count_points)
    return HeatCells(grid, c.cell, c.count, c.period, by, int(c.count.sum()), c.n_outside)


def recent_reports(db, index, flt: ReportFilter, limit: int = 200) -> list[dict]:
    """The newest matching reports with a point, for a layer of markers with popups."""
    if limit <= 0:
        return []
    out = []
    for r in db.map_aggregates.recent(flt.conditions(index), limit):
        g = r.geom  # shapely, decoded by the column type on both backends
        out.append({"id": r.id, "created_at": r.created_at, "category": r.category, "status": r.status,
                    "description": r.description, "zone_id": r.zone_id, "lon": g.x, "lat": g.y})
    return out
