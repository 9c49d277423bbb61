"""Boundary generations in the store: the kept imports, their villages, and the bulk moves of reports
when one takes effect (zonechief.generations decides what moves; this module writes it).

One PostGIS and one SQLite implementation: reading 100,000 report points and updating them are the
two steps whose speed differs by backend (ST_X/ST_Y and UPDATE ... FROM unnest on PostGIS).
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import shapely
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from store.deadline import Deadlines
from store.models import BoundaryGeneration, GenerationVillage, OutboxEvent, Report, ReportEvent

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # the first generation is valid since then


@dataclass
class ReportPoints:
    """Reports as columns (what a move needs to decide and to announce)."""

    id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    zone_id: np.ndarray  # object
    village_code: np.ndarray
    chief_id: np.ndarray
    status: np.ndarray
    generation_id: np.ndarray  # object (None where unknown)
    created_at: list[datetime]

    def __len__(self) -> int:
        return len(self.id)

    def where(self, keep: np.ndarray) -> "ReportPoints":
        """The rows where `keep` is true."""
        return ReportPoints(self.id[keep], self.lon[keep], self.lat[keep], self.zone_id[keep], self.village_code[keep],
                            self.chief_id[keep], self.status[keep], self.generation_id[keep],
                            [t for t, k in zip(self.created_at, keep) if k])


_COLUMNS = (Report.id, Report.zone_id, Report.village_code, Report.chief_id, Report.status, Report.generation_id,
            Report.created_at)


class GenerationRepository(ABC):
    """Reads and writes of generations; `for_db` picks the backend's implementation."""

    @staticmethod
    def for_db(db) -> "GenerationRepository":
        """The implementation for `db`'s dialect."""
        return PostgisGenerationRepository() if db.dialect == "postgresql" else SqliteGenerationRepository()

    # ------------------------------------------------------------ generations
    def all(self, session: Session) -> list[BoundaryGeneration]:
        """Every generation, oldest valid_from first (ties: by id)."""
        return list(session.scalars(select(BoundaryGeneration).order_by(BoundaryGeneration.valid_from,
                                                                         BoundaryGeneration.id)))

    @staticmethod
    def add(session: Session, villages: list[dict], **meta) -> BoundaryGeneration:
        """A new generation with its villages (rows as store.db.village_rows, plus zone_name); flushed (it has its id)."""
        g = BoundaryGeneration(**meta)
        session.add(g)
        session.flush()
        if villages:
            session.execute(insert(GenerationVillage), [{**v, "generation_id": g.id} for v in villages])
        return g

    @staticmethod
    def first(session: Session, villages: list[dict]) -> None:
        """A store without generations gets these villages as generation 1, valid since the beginning, in force."""
        if session.scalar(select(func.count()).select_from(BoundaryGeneration)):
            return
        now = datetime.now(timezone.utc)
        g = GenerationRepository.add(session, villages, valid_from=EPOCH, created_at=now, activated_at=now,
                                     actor="zonechief", source="the boundaries the store started with", sha256=None,
                                     rewrite_history=False, summary={})
        session.execute(update(Report).where(Report.generation_id.is_(None)).values(generation_id=g.id))

    def villages(self, session: Session, generation_id: int) -> list[GenerationVillage]:
        """The villages of one generation, by code."""
        return list(session.scalars(select(GenerationVillage).where(GenerationVillage.generation_id == generation_id)
                                    .order_by(GenerationVillage.code)))

    def retired(self, session: Session, in_force: int) -> list[GenerationVillage]:
        """Villages of other generations whose name the generation in force does not have (the newest of each name)."""
        current = {n for v in self.villages(session, in_force) for n in (v.name, v.short_name) if n}
        newest: dict[str, GenerationVillage] = {}
        q = (select(GenerationVillage).where(GenerationVillage.generation_id != in_force)
             .order_by(GenerationVillage.generation_id))
        for v in session.scalars(q):
            if v.name and v.name not in current and (v.short_name or v.name) not in current:
                newest[v.name] = v
        return list(newest.values())

    def due(self, session: Session, now: datetime) -> list[BoundaryGeneration]:
        """Generations whose valid_from has come but which are not in force yet, oldest first, locked for this transaction."""
        q = (select(BoundaryGeneration).where(BoundaryGeneration.activated_at.is_(None),
                                              BoundaryGeneration.valid_from <= now)
             .order_by(BoundaryGeneration.valid_from, BoundaryGeneration.id))
        return list(session.scalars(self._locked(q)))

    def _locked(self, q):
        return q

    def count_reports_since(self, session: Session, since: datetime) -> int:
        """Reports filed at or after `since` (a generation valid from then would change how they were assigned)."""
        return session.scalar(select(func.count()).select_from(Report).where(Report.created_at >= since)) or 0

    # ------------------------------------------------------------ reports
    @abstractmethod
    def report_points(self, session: Session, *, statuses=None, since: datetime | None = None) -> ReportPoints:
        """Reports with a point (not needing review), optionally only those in `statuses` or filed since `since`."""

    @abstractmethod
    def move(self, session: Session, ids, zone_id, village_code, chief_id, status, generation_id: int,
             at: datetime) -> None:
        """Set zone, village, chief, status and generation of the reports `ids` (parallel columns)."""

    def _where(self, q, statuses, since):
        q = q.where(Report.geom.is_not(None), Report.needs_review.is_(False))
        if statuses is not None:
            q = q.where(Report.status.in_(list(statuses)))
        if since is not None:
            q = q.where(Report.created_at >= since)
        return q.order_by(Report.id)

    @staticmethod
    def _points(rows, lon, lat) -> ReportPoints:
        col = lambda i: np.array([r[i] for r in rows], dtype=object)  # noqa: E731
        return ReportPoints(id=np.array([r[0] for r in rows], dtype=np.int64), lon=np.asarray(lon, float),
                            lat=np.asarray(lat, float), zone_id=col(1), village_code=col(2), chief_id=col(3),
                            status=col(4), generation_id=col(5), created_at=[r[6] for r in rows])

    def event_rows(self, session: Session, ids) -> list:
        """The columns events carry of reports `ids` (zonechief.events.report_summary, without the point), in chunks."""
        cols = (Report.id, Report.status, Report.category, Report.description, Report.zone_id, Report.village_code,
                Report.chief_id, Report.location_input, Report.needs_review, Report.created_at, Report.tracking_token)
        out: list = []
        ids = [int(i) for i in ids]
        for k in range(0, len(ids), 20_000):
            out.extend(session.execute(select(*cols).where(Report.id.in_(ids[k:k + 20_000])).order_by(Report.id)).all())
        return out

    @staticmethod
    def add_history(session: Session, rows: list[dict]) -> None:
        """History steps (report_id, status, at, actor, note), in one executemany."""
        if rows:
            session.execute(insert(ReportEvent), rows)

    @staticmethod
    def add_events(session: Session, rows: list[dict]) -> None:
        """Outbox events as rows (zonechief.events), in one executemany."""
        if rows:
            session.execute(insert(OutboxEvent), rows)


class PostgisGenerationRepository(GenerationRepository):
    """ST_X/ST_Y in the query; one UPDATE ... FROM unnest(arrays) for the moves; history and events by COPY
    (executemany of 100,000 outbox rows took 15 s; COPY takes a fraction of a second)."""

    @staticmethod
    def _copy(session: Session, table: str, cols: tuple[str, ...], rows) -> None:
        conn = session.connection()
        cur = Deadlines.of(conn.engine).cursor(conn.connection.driver_connection.cursor())
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)

    @staticmethod
    def add_history(session, rows):
        """History steps by COPY."""
        cols = ("report_id", "status", "at", "actor", "note")
        PostgisGenerationRepository._copy(session, "report_events", cols, ([r[c] for c in cols] for r in rows))

    @staticmethod
    def add_events(session, rows):
        """Outbox events by COPY (payloads as JSON text)."""
        cols = ("at", "type", "report_id", "zone_id", "chief_id", "category", "payload", "fanned_out")
        PostgisGenerationRepository._copy(session, "events_outbox", cols, (
            [json.dumps(r[c], ensure_ascii=False) if c == "payload" else r[c] for c in cols] for r in rows))

    def _locked(self, q):
        return q.with_for_update(skip_locked=True)  # two processes: one activates, the other skips

    def report_points(self, session, *, statuses=None, since=None):
        """Points read as numbers by PostGIS, not as geometries."""
        q = self._where(select(*_COLUMNS, func.ST_X(Report.geom), func.ST_Y(Report.geom)), statuses, since)
        rows = session.execute(q).all()
        return self._points(rows, [r[7] for r in rows], [r[8] for r in rows])

    def move(self, session, ids, zone_id, village_code, chief_id, status, generation_id, at):
        """One statement for any number of reports."""
        if len(ids) == 0:
            return
        session.execute(text(
            "UPDATE reports AS r SET zone_id = m.zone_id, village_code = m.village_code, chief_id = m.chief_id, "
            "status = m.status, generation_id = :gen, updated_at = :at "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:zones AS text[]), CAST(:villages AS text[]), "
            "CAST(:chiefs AS text[]), CAST(:statuses AS text[])) AS m(id, zone_id, village_code, chief_id, status) "
            "WHERE r.id = m.id"),
            {"gen": generation_id, "at": at, "ids": [int(i) for i in ids], "zones": list(zone_id),
             "villages": list(village_code), "chiefs": list(chief_id), "statuses": list(status)})


class SqliteGenerationRepository(GenerationRepository):
    """Geometries are WKB here: decoded in one vectorized call; moves as one executemany."""

    def report_points(self, session, *, statuses=None, since=None):
        """WKB points decoded with shapely in bulk."""
        q = self._where(select(*_COLUMNS, Report.geom), statuses, since)
        rows = session.execute(q).all()
        pts = [r[7] for r in rows]
        xy = shapely.get_coordinates(np.array(pts, dtype=object)) if pts else np.empty((0, 2))
        return self._points(rows, xy[:, 0], xy[:, 1])

    def move(self, session, ids, zone_id, village_code, chief_id, status, generation_id, at):
        """executemany of one UPDATE."""
        if len(ids) == 0:
            return
        session.execute(update(Report).execution_options(synchronize_session=False), [
            {"id": int(i), "zone_id": z, "village_code": v, "chief_id": c, "status": s, "generation_id": generation_id,
             "updated_at": at} for i, z, v, c, s in zip(ids, zone_id, village_code, chief_id, status)])
