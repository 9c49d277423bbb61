"""Reports: intake, geocoding, assignment to zone and chief, status workflow, queries.

A report is located from what the citizen gave (coordinates in a named CRS, a
city service code, or address text), assigned to the zone that covers the point
and to the chief in force at that moment, and stored with a timestamped history.
An address that is ambiguous or low-confidence, or a point outside every zone,
is stored as "needs review" and never assigned to a guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from gis import geocode
from gis.crs import UnknownCRSError, normalize_crs
from gis.points import CoordinateError, check_coordinates
from store.db import Database
from store.models import OPEN_STATUSES, SOURCES, STATUSES, TRANSITIONS, Report, ReportEvent
from gis.errors import ZonechiefError


class ReportError(ZonechiefError, ValueError):
    """Input that cannot become a report; the message says why."""


class NotFound(ZonechiefError, KeyError):
    pass


class TransitionError(ZonechiefError, ValueError):
    pass


# ------------------------------------------------------------------ input models
class Location(BaseModel):
    """Exactly one of: coordinates (lon, lat, crs), a service code, or address text."""

    model_config = ConfigDict(extra="forbid")
    lon: float | None = Field(None, description="Longitude or x, in `crs`")
    lat: float | None = Field(None, description="Latitude or y, in `crs`")
    crs: str = Field("wgs84", max_length=64, description="wgs84, gcj02 (WeChat/Amap), bd09, cgcs2000, EPSG:nnnn")
    service_code: str | None = Field(None, max_length=500, description="City service code (城市服务码) or the URL in its QR code")
    address: str | None = Field(None, max_length=500, description="Address text, simplified or traditional Chinese")

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [self.lon is not None or self.lat is not None, self.service_code is not None, self.address is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of: lon and lat (with crs), service_code, or address")
        if kinds[0] and (self.lon is None or self.lat is None):
            raise ValueError("coordinates need both lon and lat")
        return self

    def as_received(self) -> dict:
        """What the client sent, for the record: the CRS only goes with coordinates."""
        d = self.model_dump(exclude_none=True)
        if self.lon is None:
            d.pop("crs", None)
        return d


class Reporter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40, pattern=r"^[0-9+\-() ]*$")


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["service_code", "gps", "address", "staff"]
    category: str = Field(pattern=r"^\d{5}$", description="GB/T 47678.5-2026 管理事项 code, e.g. 06010 (暴露垃圾)")
    description: str = Field("", max_length=2000)
    location: Location
    reporter: Reporter | None = None
    photo_url: str | None = Field(None, max_length=500)
    idempotency_key: str | None = Field(None, min_length=1, max_length=128,
                                        description="Client key: the same key twice creates one report")
    created_at: datetime | None = Field(None, description="Only for staff imports; default now")

    @field_validator("photo_url")
    @classmethod
    def _url(cls, v):
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("photo_url must be an http(s) URL")
        return v

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("created_at needs a timezone, e.g. 2025-07-01T09:30:00+08:00")
        return v


@dataclass
class Located:
    lon: float | None
    lat: float | None
    method: str
    confidence: float
    needs_review: bool
    note: str | None
    zone_id: str | None = None
    village_code: str | None = None


def report_to_dict(r: Report, personal: bool) -> dict:
    """Public view of a report; reporter contact only when `personal` (staff and admin)."""
    g = r.geom
    d = {
        "id": r.id,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "source": r.source,
        "category": r.category,
        "description": r.description,
        "location_input": r.location_input,
        "point": {"lon": g.x, "lat": g.y, "crs": "wgs84"} if g is not None else None,
        "geocode": {"method": r.geocode_method, "confidence": r.geocode_confidence,
                    "needs_review": r.needs_review, "note": r.review_note},
        "zone_id": r.zone_id,
        "village_code": r.village_code,
        "chief_id": r.chief_id,
        "status": r.status,
        "photo_url": r.photo_url,
        "history": [{"status": e.status, "at": e.at.isoformat(), "actor": e.actor, "note": e.note} for e in r.history],
    }
    if personal:
        d["reporter"] = {"name": r.reporter_name, "phone": r.reporter_phone}
    return d


class Reports:
    def __init__(self, db: Database, index, facilities, categories, gazetteer=None, provider=None,
                 min_confidence: float = 0.75):
        self.db = db
        self.index = index
        self.facilities = facilities
        self.category_codes = set(categories["code"])
        self.gazetteer = gazetteer
        self.provider = provider
        self.min_confidence = min_confidence

    # -------------------------------------------------------------- locating
    def locate(self, loc: Location, at: datetime | None = None) -> Located:
        if loc.service_code is not None:
            try:
                g = geocode.resolve_service_code(loc.service_code, self.facilities)
            except geocode.UnknownServiceCode as exc:
                raise ReportError(str(exc)) from exc
        elif loc.address is not None:
            if self.gazetteer is None:
                self.gazetteer = geocode.Gazetteer.load()
            g = geocode.geocode_address(loc.address, self.gazetteer, min_confidence=self.min_confidence,
                                        provider=self.provider)
        else:
            try:
                crs = normalize_crs(loc.crs)
                check_coordinates(loc.lon, loc.lat, crs)
            except (CoordinateError, UnknownCRSError) as exc:
                raise ReportError(str(exc)) from exc
            g = geocode.geocode_coordinates(loc.lon, loc.lat, crs)
        out = Located(g.lon, g.lat, g.method, float(g.confidence), bool(g.needs_review), g.note)
        if out.lon is None or out.needs_review:
            out.note = out.note or "needs review"
            return out
        a = self.index.lookup(out.lon, out.lat, at=at)
        if a.zone_id is None:
            out.needs_review = True
            out.note = f"outside every zone; nearest {a.nearest_zone_id} at {a.distance_m:.0f} m"
        else:
            out.zone_id, out.village_code = a.zone_id, a.village_code
            if a.snapped:
                out.note = f"attached to nearest zone {a.zone_id} ({a.distance_m:.0f} m outside)"
        return out

    def _chief(self, zone_id: str | None, at: datetime) -> str | None:
        if zone_id is None or self.index.roster is None:
            return None
        c = self.index.roster.chiefs_by_zone(at).get(zone_id)
        return c.person_id if c else None

    # -------------------------------------------------------------- writing
    def create(self, data: ReportIn, actor: str = "public", now: datetime | None = None) -> tuple[Report, bool]:
        """File a report. Returns (report, created); created is False for a repeated idempotency key."""
        if data.category not in self.category_codes:
            raise ReportError(f"unknown category {data.category!r}; GET /v1/categories lists the GB/T 47678.5 codes")
        if data.idempotency_key:
            existing = self._by_key(data.idempotency_key)
            if existing is not None:
                return existing, False
        now = now or datetime.now(timezone.utc)
        created = data.created_at or now
        loc = self.locate(data.location, at=created)
        chief = self._chief(loc.zone_id, created)
        status = "assigned" if loc.zone_id else "new"
        r = Report(created_at=created, updated_at=now, source=data.source, category=data.category,
                   description=data.description, location_input=data.location.as_received(),
                   geom=shapely.Point(loc.lon, loc.lat) if loc.lon is not None else None,
                   geocode_method=loc.method, geocode_confidence=loc.confidence, needs_review=loc.needs_review,
                   review_note=loc.note, zone_id=loc.zone_id, village_code=loc.village_code, chief_id=chief,
                   status=status, reporter_name=data.reporter.name if data.reporter else None,
                   reporter_phone=data.reporter.phone if data.reporter else None, photo_url=data.photo_url,
                   idempotency_key=data.idempotency_key)
        r.history = [ReportEvent(status="new", at=created, actor=actor, note=loc.note)]
        if status == "assigned":
            r.history.append(ReportEvent(status="assigned", at=created, actor="system", note=f"zone {loc.zone_id}, chief {chief}"))
        try:
            with self.db.sessions.begin() as s:
                s.add(r)
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its report.
            if data.idempotency_key:
                existing = self._by_key(data.idempotency_key)
                if existing is not None:
                    return existing, False
            raise
        return r, True

    def _by_key(self, key: str) -> Report | None:
        with self.db.sessions() as s:
            return s.scalar(select(Report).where(Report.idempotency_key == key))

    def transition(self, report_id: int, status: str, actor: str, note: str | None = None,
                   now: datetime | None = None) -> Report:
        if status not in STATUSES:
            raise TransitionError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
        now = now or datetime.now(timezone.utc)
        with self.db.sessions.begin() as s:
            r = s.get(Report, report_id, with_for_update=True)
            if r is None:
                raise NotFound(report_id)
            allowed = TRANSITIONS[r.status]
            if status not in allowed:
                nexts = ", ".join(sorted(allowed)) or "none (final)"
                raise TransitionError(f"report {report_id} is {r.status}; it can go to: {nexts}")
            if status == "assigned" and r.zone_id is None:
                raise TransitionError(f"report {report_id} has no zone (needs review); it cannot be assigned")
            r.status = status
            r.updated_at = now
            r.history.append(ReportEvent(status=status, at=now, actor=actor, note=note))
        return self.get(report_id)

    # -------------------------------------------------------------- reading
    def get(self, report_id: int) -> Report:
        with self.db.sessions() as s:
            r = s.get(Report, report_id)
            if r is None:
                raise NotFound(report_id)
            return r

    def search(self, *, zone_id=None, chief_id=None, status=None, category=None, since=None, until=None,
               bbox=None, needs_review=None, limit: int = 100, offset: int = 0) -> tuple[list[Report], int]:
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
            conds.append(self._bbox(bbox))
        where = and_(*conds) if conds else True
        with self.db.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Report).where(where))
            rows = s.scalars(select(Report).where(where).order_by(Report.created_at.desc(), Report.id.desc())
                             .limit(limit).offset(offset)).all()
        return list(rows), int(total)

    def _bbox(self, bbox):
        minx, miny, maxx, maxy = bbox
        if self.db.dialect == "postgresql":
            return func.ST_Intersects(Report.geom, func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))
        # SQLite: zc_x/zc_y are registered on each connection (see store.db).
        return and_(func.zc_x(Report.geom).between(minx, maxx), func.zc_y(Report.geom).between(miny, maxy))

    def queue(self, chief_id: str, limit: int = 500) -> list[Report]:
        """Open reports of a chief, oldest first."""
        with self.db.sessions() as s:
            return list(s.scalars(select(Report).where(Report.chief_id == chief_id, Report.status.in_(OPEN_STATUSES))
                                  .order_by(Report.created_at.asc(), Report.id.asc()).limit(limit)).all())


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ReportError(f"bbox {text!r} must be minlon,minlat,maxlon,maxlat (numbers)")
    if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
        raise ReportError(f"bbox {text!r} must be four finite numbers minlon,minlat,maxlon,maxlat")
    if parts[0] > parts[2] or parts[1] > parts[3]:
        raise ReportError(f"bbox {text!r}: min must not exceed max")
    return tuple(parts)


__all__ = ["ReportIn", "Location", "Reporter", "Reports", "ReportError", "NotFound", "TransitionError",
           "report_to_dict", "parse_bbox", "SOURCES", "STATUSES"]
