"""Report queries: one report, by idempotency key, a search, a chief's queue — on PostGIS or SQLite.

The queries are the same on both backends except for the bounding-box filter. PostGIS
uses the geometry and its GiST index. SQLite stores WKB, so it reads x and y through
functions that store.db registers on each connection.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import sessionmaker

from store.models import Report, ReportEvent


class ReportRepository(ABC):
    """Reading reports; the rows come back detached, with their history loaded."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    @staticmethod
    def for_db(db) -> "ReportRepository":
        """The implementation for `db`'s dialect."""
        cls = PostgisReportRepository if db.dialect == "postgresql" else SqliteReportRepository
        return cls(db.sessions)

    def get(self, report_id: int) -> Report | None:
        """The report with this id, or None."""
        with self.sessions() as s:
            return s.get(Report, report_id)

    def by_key(self, key: str) -> Report | None:
        """The report filed with this idempotency key, or None."""
        with self.sessions() as s:
            return s.scalar(select(Report).where(Report.idempotency_key == key))

    def by_token(self, token: str) -> Report | None:
        """The report with this tracking token, or None."""
        with self.sessions() as s:
            return s.scalar(select(Report).where(Report.tracking_token == token))

    def search(self, *, zone_id: str | None = None, chief_id: str | None = None, status=None,
               category: str | None = None, since: datetime | None = None, until: datetime | None = None,
               bbox: tuple[float, float, float, float] | None = None, needs_review: bool | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[Report], int]:
        """(one page of matching reports, newest first; how many match in all). `status`: one or a list."""
        conds = []
        if zone_id:
            conds.append(Report.zone_id == zone_id)
        if chief_id:
            conds.append(Report.chief_id == chief_id)
        if status:
            conds.append(Report.status.in_(status if isinstance(status, (list, tuple)) else [status]))
        if category:
            conds.append(Report.category == category)
        if since:
            conds.append(Report.created_at >= since)
        if until:
            conds.append(Report.created_at < until)
        if needs_review is not None:
            conds.append(Report.needs_review.is_(needs_review))
        if bbox:
            conds.append(self.in_bbox(*bbox))
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Report).where(*conds))
            rows = s.scalars(select(Report).where(*conds).order_by(Report.created_at.desc(), Report.id.desc())
                             .limit(limit).offset(offset)).all()
        return list(rows), int(total)

    def queue(self, chief_id: str, statuses, limit: int = 500) -> list[Report]:
        """A chief's reports in one of `statuses` (the open ones, for the caller), oldest first."""
        with self.sessions() as s:
            return list(s.scalars(select(Report).where(Report.chief_id == chief_id, Report.status.in_(statuses))
                                  .order_by(Report.created_at.asc(), Report.id.asc()).limit(limit)).all())

    def events_between(self, since: datetime, until: datetime, limit: int = 1000,
                       after: tuple[datetime, int] | None = None) -> list[ReportEvent]:
        """History steps of all reports with since <= at < until, oldest first by (at, id), at most `limit`.

        `after`: the (at, id) of the last step of the previous page; the page starts after it.
        Each step carries its report_id. (report_events.at has no index: this scans the table.)
        """
        conds = [ReportEvent.at >= since, ReportEvent.at < until]
        if after is not None:
            at, eid = after
            conds.append(or_(ReportEvent.at > at, and_(ReportEvent.at == at, ReportEvent.id > eid)))
        with self.sessions() as s:
            return list(s.scalars(select(ReportEvent).where(*conds)
                                  .order_by(ReportEvent.at.asc(), ReportEvent.id.asc()).limit(limit)).all())

    def many(self, report_ids) -> dict[int, Report]:
        """The reports with these ids (history and photos loaded), by id; unknown ids are left out."""
        ids = sorted(set(report_ids))
        out: dict[int, Report] = {}
        with self.sessions() as s:
            for i in range(0, len(ids), 500):  # keeps the IN list within every backend's parameter limit
                out.update((r.id, r) for r in s.scalars(select(Report).where(Report.id.in_(ids[i:i + 500]))))
        return out

    @abstractmethod
    def in_bbox(self, minx: float, miny: float, maxx: float, maxy: float):
        """SQL condition: the report's point lies in the box (WGS-84 degrees)."""


class PostgisReportRepository(ReportRepository):
    """PostGIS: spatial SQL on the geometry column."""

    def in_bbox(self, minx, miny, maxx, maxy):
        """ST_Intersects with the envelope, which the GiST index on geom answers."""
        return func.ST_Intersects(Report.geom, func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))


class SqliteReportRepository(ReportRepository):
    """SQLite: geometry is WKB, read with the zc_x/zc_y functions store.db registers on each connection."""

    def in_bbox(self, minx, miny, maxx, maxy):
        """x and y of the WKB point between the box's edges (no index: a scan of the other filters' rows)."""
        return and_(func.zc_x(Report.geom).between(minx, maxx), func.zc_y(Report.geom).between(miny, maxy))
