"""The report queries behind the maps: matching points, counts per grid cell and period, the newest reports.

On PostGIS the counting is one aggregated query (GROUP BY cell [, period]). SQLite has no
spatial SQL: its points are read as WKB, decoded with numpy, and counted by the caller's
`count_points`. Cells and periods follow the caller's numbering: cell j·nx + i of a grid
anchored at (x0, y0) with steps (dx, dy); periods are local (Asia/Shanghai) calendar weeks
since Monday 1970-01-05, or months since 1970-01.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol, Sequence

import numpy as np
import shapely
from sqlalchemy import Integer, LargeBinary, and_, cast, func, literal, select, type_coerce
from sqlalchemy.engine import Engine, Row

from gis.localtime import LOCAL_OFFSET_S
from store.models import Report

FIRST_MONDAY_S = 4 * 86400  # 1970-01-05, the first Monday after the epoch: week 0


def report_conditions(since: datetime | None = None, until: datetime | None = None, categories=(), statuses=(),
                      zone_ids: list[str] | None = None) -> list:
    """SQL conditions for the reports a map shows: those with a point, filtered; zone_ids None: any zone or none."""
    t = Report.__table__.c
    conds: list = [t.geom.isnot(None)]
    if since:
        conds.append(t.created_at >= since)
    if until:
        conds.append(t.created_at < until)
    if categories:
        conds.append(t.category.in_(list(categories)))
    if statuses:
        conds.append(t.status.in_(list(statuses)))
    if zone_ids is not None:
        conds.append(t.zone_id.in_(zone_ids))
    return conds


class GridSpec(Protocol):
    """Cell (i, j) spans [x0 + i·dx, x0 + (i+1)·dx) × [y0 + j·dy, y0 + (j+1)·dy); nx × ny cells."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int


@dataclass(frozen=True)
class CellCounts:
    """Reports counted per (period, cell)."""

    cell: np.ndarray  # flat cell numbers j·nx + i, sorted (by period, then cell)
    period: np.ndarray | None  # period numbers, aligned with cell; None when not counted by period
    count: np.ndarray  # reports per (period, cell)
    n_outside: int  # matching reports outside the grid


class MapAggregates(ABC):
    """Reading the reports a map shows, filtered by `report_conditions`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @staticmethod
    def for_db(db) -> "MapAggregates":
        """The implementation for `db`'s dialect."""
        return (PostgisMapAggregates if db.dialect == "postgresql" else SqliteMapAggregates)(db.engine)

    @abstractmethod
    def points(self, conds: list, with_time: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(lon, lat, Unix seconds or None) of the reports matching `conds`, as numpy arrays."""

    @abstractmethod
    def cell_counts(self, conds: list, grid: GridSpec, by: str | None,
                    count_points: Callable[[np.ndarray, np.ndarray, np.ndarray | None], CellCounts]) -> CellCounts:
        """Reports matching `conds` per cell of `grid` (and per "week" or "month" period when `by`).

        `count_points(lon, lat, seconds)` counts points read back, where the database cannot count them itself.
        """

    def recent(self, conds: list, limit: int) -> Sequence[Row]:
        """The newest `limit` matching reports as rows (id, created_at, category, status, description, zone_id, geom)."""
        t = Report.__table__.c
        with self.engine.connect() as c:
            return c.execute(select(t.id, t.created_at, t.category, t.status, t.description, t.zone_id, t.geom)
                             .where(and_(*conds)).order_by(t.created_at.desc(), t.id.desc()).limit(limit)).all()


class PostgisMapAggregates(MapAggregates):
    """PostGIS: coordinates, times and counts computed by the server."""

    def points(self, conds, with_time=False):
        """ST_X, ST_Y and the epoch of created_at, as doubles."""
        t = Report.__table__.c
        cols = [func.ST_X(t.geom), func.ST_Y(t.geom)]
        if with_time:
            cols.append(func.floor(func.date_part("epoch", t.created_at)))  # date_part: double, not numeric
        with self.engine.connect() as c:
            rows = c.execute(select(*cols).where(and_(*conds))).all()
        arr = np.asarray(rows, dtype="f8").reshape(-1, len(cols))
        return arr[:, 0], arr[:, 1], (arr[:, 2].astype(np.int64) if with_time else None)

    def cell_counts(self, conds, grid, by, count_points):
        """One GROUP BY cell [, period] query, and one count of the points outside the grid."""
        t = Report.__table__.c
        i = func.floor((func.ST_X(t.geom) - literal(grid.x0)) / literal(grid.dx))
        j = func.floor((func.ST_Y(t.geom) - literal(grid.y0)) / literal(grid.dy))
        inside = and_(i >= 0, i < grid.nx, j >= 0, j < grid.ny)
        cols = [cast(j * grid.nx + i, Integer).label("cell")]
        if by == "week":
            # date_part gives double precision; EXTRACT gives numeric since PostgreSQL 14, several times slower.
            cols.append(cast(func.floor((func.date_part("epoch", t.created_at) + LOCAL_OFFSET_S - FIRST_MONDAY_S)
                                        / (7 * 86400)), Integer).label("period"))
        elif by == "month":
            local = func.timezone("Asia/Shanghai", t.created_at)
            cols.append(cast((func.date_part("year", local) - 1970) * 12 + func.date_part("month", local) - 1,
                             Integer).label("period"))
        stmt = (select(*cols, func.count().label("n")).where(and_(*conds), inside)
                .group_by(*[c.name for c in cols]))
        outside = select(func.count()).where(and_(*conds), ~inside)
        with self.engine.connect() as c:
            rows = c.execute(stmt).all()
            n_out = int(c.execute(outside).scalar_one())
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, len(cols) + 1)
        order = np.lexsort((arr[:, 0], arr[:, 1])) if by else np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        return CellCounts(arr[:, 0], arr[:, 1] if by else None, arr[:, -1], n_out)


class SqliteMapAggregates(MapAggregates):
    """SQLite: the WKB and the stored UTC times are read back and decoded with numpy."""

    def points(self, conds, with_time=False):
        """The WKB, decoded in one go (not per row), and strftime('%s') of created_at."""
        t = Report.__table__.c
        cols = [type_coerce(t.geom, LargeBinary)]  # the WKB itself: decoded below in one go, not per row
        if with_time:
            cols.append(cast(func.strftime("%s", t.created_at), Integer))  # stored as naive UTC text
        with self.engine.connect() as c:
            rows = c.execute(select(*cols).where(and_(*conds))).all()
        if not rows:
            e = np.zeros(0)
            return e, e, (np.zeros(0, dtype=np.int64) if with_time else None)
        cols_ = list(zip(*rows))
        lon, lat = _wkb_points_xy(cols_[0])
        return lon, lat, (np.asarray(cols_[1], dtype=np.int64) if with_time else None)

    def cell_counts(self, conds, grid, by, count_points):
        """No spatial SQL here: the points, counted by `count_points`."""
        return count_points(*self.points(conds, with_time=by is not None))


_WKB_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])  # 21 bytes


def _wkb_points_xy(blobs) -> tuple[np.ndarray, np.ndarray]:
    """x, y of WKB points: one numpy view when all are little-endian 2D points (what the store writes)."""
    raw = b"".join(blobs)
    if len(raw) == len(blobs) * _WKB_POINT.itemsize:
        a = np.frombuffer(raw, dtype=_WKB_POINT)
        if np.all(a["order"] == 1) and np.all(a["type"] == 1):
            return a["x"].astype("f8"), a["y"].astype("f8")
    pts = shapely.from_wkb(np.asarray(blobs, dtype=object))  # anything else: let GEOS read it
    return shapely.get_x(pts), shapely.get_y(pts)
