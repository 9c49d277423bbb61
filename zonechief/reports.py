"""Reports one at a time: what a client sends, filing it, changing its status, reading it back.

A report is located from what the citizen gave (coordinates in a named CRS, a
city service code, or address text), then placed by the intake rule
(zonechief.intake), moved along the workflow (zonechief.workflow) and read
through the store's report repository.
An address that is ambiguous or low-confidence, or a point outside every zone,
is stored as "needs review" and never assigned to a guess.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError

from gis.crs import normalize_crs
from gis.errors import ZonechiefError
from gis.gazetteer import Gazetteer, geocode_address
from gis.points import CoordinateError, check_placed, geocode_coordinates
from gis.service_codes import UnknownServiceCode, resolve_service_code
from store.db import Database
from store.media import MediaStore
from store.models import Report, ReportEvent, ReportMedia
from store.tokens import looks_like_token
from zonechief import events
from zonechief.feedback import REOPENS, FeedbackConflict, FeedbackIn, answer_state, reopen_note
from zonechief.intake import Located, Placed, intake, utc_times
from zonechief.photos import Photo, exif_distance_m
from zonechief.tracking import last_resolved_at, note_for
from zonechief.workflow import OPEN_STATUSES, check_status, check_transition

EXIF_NOTE_M = 1000.0  # a photo taken farther than this from the report's point is pointed out to staff
MEDIA_KINDS = ("citizen", "resolution")


class ReportError(ZonechiefError, ValueError):
    """Input that cannot become a report; the message says why."""


class NotFound(ZonechiefError, KeyError):
    """No report with that id (args[0])."""


class KeyReused(ZonechiefError, ValueError):
    """An idempotency key sent again with another report (409): not a retry. Answering with the first
    report would hand its tracking link to whoever guesses the key."""


def same_report(r: Report, data: "ReportIn") -> bool:
    """Whether `data` is what report `r` was filed with (a retry of it)."""
    who = data.reporter
    return (r.category, r.description or "", r.location_input, r.reporter_name, r.reporter_phone, r.photo_url) == (
        data.category, data.description or "", data.location.as_received(), who.name if who else None,
        who.phone if who else None, data.photo_url)


class TokenNotFound(ZonechiefError, KeyError):
    """No report has this tracking token (or it is not one); the same answer for both, by design."""

    def __str__(self) -> str:
        return "no report has this tracking link / 没有找到这个问题的跟踪链接"


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
    """Who filed the report (personal data: shown to staff only)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40, pattern=r"^[0-9+\-() ]*$")


class ReportIn(BaseModel):
    """A report as filed: what, where and (for staff imports) when."""

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


def media_path(r: Report, m: ReportMedia) -> str:
    """The staff URL path of a report's photo (the citizen's is zonechief.tracking.photo_path)."""
    return f"/v1/reports/{r.id}/photos/{m.id}"


def photo_notes(r: Report) -> list[str]:
    """Notes for staff about the photos: those taken far from the report's point (EXIF GPS)."""
    return [f"photo {i} ({m.kind}) was taken {m.exif_distance_m / 1000:.1f} km from the report's point (its EXIF GPS); "
            "the report keeps the position the citizen gave"
            for i, m in enumerate(r.media, start=1)
            if m.exif_distance_m is not None and m.exif_distance_m > EXIF_NOTE_M]


def report_to_dict(r: Report, personal: bool, public_url: str | None = None, tracking: bool = False) -> dict:
    """A report as JSON. Reporter contact, photos, the citizen's answer and the tracking link only when
    `personal` (staff and admin); the tracking link also with `tracking` (the answer to whoever filed it).
    `public_url` makes the tracking link absolute."""
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
        "boundary_generation": r.generation_id,  # the boundaries it was (last) assigned under: GET /v1/boundaries/generations
        "status": r.status,
        "photo_url": r.photo_url,
        "history": [{"status": e.status, "at": e.at.isoformat(), "actor": e.actor,
                     "note": note_for(e, "staff" if personal else "public")} for e in r.history],
    }
    if personal or tracking:
        d["tracking_url"] = f"{public_url or ''}/t/{r.tracking_token}"
    if personal:
        d["reporter"] = {"name": r.reporter_name, "phone": r.reporter_phone}
        d["photos"] = [{"id": m.id, "kind": m.kind, "url": media_path(r, m), "content_type": m.content_type,
                        "width": m.width, "height": m.height,
                        "exif_position": None if m.exif_lon is None else
                        {"lon": m.exif_lon, "lat": m.exif_lat, "distance_m": m.exif_distance_m}}
                       for m in r.media]
        d["photo_notes"] = photo_notes(r)
        d["feedback"] = None if r.satisfaction is None else {
            "outcome": r.satisfaction, "rating": r.rating, "comment": r.rating_comment,
            "at": r.rated_at.isoformat() if r.rated_at else None}
    else:
        d["photo_count"] = len(r.media)
    return d


class Reports:
    """Filing, changing and reading reports: the application over the zone index and the report store."""

    def __init__(self, db: Database, index, facilities, categories, gazetteer=None, provider=None,
                 min_confidence: float = 0.75, media: MediaStore | None = None, public_url: str = "",
                 gazetteer_of=None):
        self.db = db
        self.media = media
        self.public_url = public_url  # tracking links in events (zonechief.events)
        self.on_events: list = []  # called after a commit that wrote events (the dispatcher wakes up)
        self.index = index
        self.facilities = facilities
        self.category_codes = set(categories["code"])
        self.gazetteer = gazetteer
        self._gazetteer_of = gazetteer_of  # builds the gazetteer of the boundaries in force (Services.gazetteer)
        self.provider = provider
        self.min_confidence = min_confidence

    # -------------------------------------------------------------- locating
    def locate(self, loc: Location) -> Located:
        """Geocode a location, then look its point up (unless the geocoder wants a review first)."""
        if loc.service_code is not None:
            try:
                g = resolve_service_code(loc.service_code, self.facilities)
            except UnknownServiceCode as exc:
                raise ReportError(str(exc)) from exc
        elif loc.address is not None:
            if self.gazetteer is None:
                self.gazetteer = self._gazetteer_of() if self._gazetteer_of else Gazetteer.load()
            g = geocode_address(loc.address, self.gazetteer, min_confidence=self.min_confidence,
                                provider=self.provider)
        else:
            crs = normalize_crs(loc.crs)  # an unusable CRS is a 400 (UnknownCRSError), as wherever a CRS is given
            try:
                g = geocode_coordinates(loc.lon, loc.lat, crs)
                check_placed(self.index, loc.lon, loc.lat, crs, g.lon, g.lat)  # degrees sent as metres
            except CoordinateError as exc:
                raise ReportError(str(exc)) from exc
        found = None if g.lon is None or g.needs_review else self.index.lookup(g.lon, g.lat)
        return Located(g.lon, g.lat, g.method, float(g.confidence), g.note, found)

    # -------------------------------------------------------------- writing
    def create(self, data: ReportIn, actor: str = "public", now: datetime | None = None,
               photos: Sequence[Photo] = ()) -> tuple[Report, bool]:
        """File a report, with its photos (zonechief.photos, already checked) stored in the media store.

        Returns (report, created); created is False for a repeated idempotency key (its photos are not added again).
        """
        if data.category not in self.category_codes:
            raise ReportError(f"unknown category {data.category!r}; GET /v1/categories lists the GB/T 47678.5 codes")
        if data.idempotency_key:
            existing = self._replayed(data)
            if existing is not None:
                return existing, False
        now = now or datetime.now(timezone.utc)
        created = data.created_at or now
        loc = self.locate(data.location)
        got = intake(Placed.of([loc]), utc_times([created]), self.index.roster, actor, event_notes=True)
        r = Report(created_at=created, updated_at=now, source=data.source, category=data.category,
                   description=data.description, location_input=data.location.as_received(),
                   geom=shapely.Point(loc.lon, loc.lat) if loc.lon is not None else None,
                   geocode_method=loc.method, geocode_confidence=loc.confidence,
                   needs_review=bool(got.needs_review[0]), review_note=got.review_note[0], zone_id=got.zone_id[0],
                   village_code=got.village_code[0], chief_id=got.chief_id[0], status=got.status[0],
                   reporter_name=data.reporter.name if data.reporter else None,
                   reporter_phone=data.reporter.phone if data.reporter else None, photo_url=data.photo_url,
                   idempotency_key=data.idempotency_key, generation_id=self.index.generation)
        ev = got.events  # numpy columns (Placed.of); every first event is at created_at, kept as given
        r.history = [ReportEvent(status=st, at=created, actor=a, note=n) for st, a, n in zip(ev["status"], ev["actor"], ev["note"])]
        r.media = self._stored_media(photos, "citizen", loc.lon, loc.lat, now)
        try:
            with self.db.sessions.begin() as s:
                s.add(r)
                s.flush()  # the id, which the events name
                s.add_all(events.on_created(r, now, self.public_url))
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its report.
            if data.idempotency_key:
                existing = self._replayed(data)
                if existing is not None:
                    return existing, False
            raise
        self._told()
        return r, True

    def _stored_media(self, photos: Sequence[Photo], kind: str, lon: float | None, lat: float | None,
                      now: datetime) -> list[ReportMedia]:
        """Put the photos' bytes in the media store (before the rows that name them are committed:
        a crash between leaves an unreferenced file, never a row without its file)."""
        if photos and self.media is None:
            raise ReportError("this server has no media store; photos cannot be kept")
        rows = []
        for p in photos:
            key = self.media.put(p.data)  # type: ignore[union-attr]
            far = None if lon is None or lat is None else exif_distance_m(p, lon, lat)
            rows.append(ReportMedia(kind=kind, sha256=key, content_type=p.content_type, width=p.width,
                                    height=p.height, size=len(p.data), created_at=now, exif_lon=p.exif_lon,
                                    exif_lat=p.exif_lat, exif_distance_m=far))
        return rows

    def add_photos(self, report_id: int, photos: Sequence[Photo], kind: str = "resolution",
                   now: datetime | None = None) -> Report:
        """Add photos to a report (a resolution photo, or a citizen's later one)."""
        if kind not in MEDIA_KINDS:
            raise ReportError(f"unknown photo kind {kind!r}; kinds are {', '.join(MEDIA_KINDS)}")
        now = now or datetime.now(timezone.utc)
        r = self.get(report_id)
        g = r.geom
        rows = self._stored_media(photos, kind, g.x if g is not None else None, g.y if g is not None else None, now)
        with self.db.sessions.begin() as s:
            for m in rows:
                m.report_id = report_id
                s.add(m)
        return self.get(report_id)

    def photo(self, report_id: int, media_id: int) -> tuple[ReportMedia, bytes]:
        """A report's photo and its bytes; NotFound if the report has no such photo."""
        r = self.get(report_id)
        m = next((m for m in r.media if m.id == media_id), None)
        if m is None or self.media is None:
            raise NotFound(report_id)
        return m, self.media.get(m.sha256)

    # -------------------------------------------------------------- the citizen's side
    def by_token(self, token: str) -> Report:
        """The report with this tracking token; TokenNotFound otherwise (also for text that is not a token)."""
        r = self.db.report_repo.by_token(token) if looks_like_token(token) else None
        if r is None:
            raise TokenNotFound(token)
        return r

    def give_feedback(self, token: str, fb: FeedbackIn, now: datetime | None = None) -> Report:
        """Store the citizen's answer (zonechief.feedback decides if it is taken); "not fixed" reopens."""
        now = now or datetime.now(timezone.utc)
        report_id = self.by_token(token).id
        with self.db.sessions.begin() as s:
            r = s.get(Report, report_id, with_for_update=True)
            if r is None:
                raise TokenNotFound(token)
            state = answer_state(r.status, last_resolved_at(r), r.first_rated_at, now)
            if not state.open:
                raise FeedbackConflict(state.reason)
            r.satisfaction, r.rating, r.rating_comment, r.rated_at = fb.outcome, fb.rating, fb.comment or None, now
            if not state.replaces:
                r.first_rated_at = now
            r.updated_at = now
            s.add(events.on_rated(r, now, self.public_url))
            if fb.outcome == REOPENS and r.status == "resolved":
                check_transition(r.id, r.status, "in_progress", has_zone=r.zone_id is not None)
                r.status = "in_progress"
                note = reopen_note(fb)
                r.history.append(ReportEvent(status="in_progress", at=now, actor="citizen", note=note))
                s.add(events.on_status(r, "resolved", now, "citizen", note, self.public_url))
        self._told()
        return self.get(report_id)

    def _replayed(self, data: "ReportIn") -> Report | None:
        """The report filed before with this idempotency key, if any; KeyReused if it was another report."""
        existing = self._by_key(data.idempotency_key)  # type: ignore[arg-type]
        if existing is not None and not same_report(existing, data):
            raise KeyReused(f"idempotency key {data.idempotency_key!r} was used for another report; "
                            "send a new key for a new report")
        return existing

    def _by_key(self, key: str) -> Report | None:
        return self.db.report_repo.by_key(key)

    def transition(self, report_id: int, status: str, actor: str, note: str | None = None,
                   now: datetime | None = None) -> Report:
        """Move a report to `status` (zonechief.workflow decides if it may), with a history event."""
        check_status(status)
        now = now or datetime.now(timezone.utc)
        with self.db.sessions.begin() as s:
            r = s.get(Report, report_id, with_for_update=True)
            if r is None:
                raise NotFound(report_id)
            check_transition(report_id, r.status, status, has_zone=r.zone_id is not None)
            before, r.status = r.status, status
            r.updated_at = now
            r.history.append(ReportEvent(status=status, at=now, actor=actor, note=note))
            s.add(events.on_status(r, before, now, actor, note, self.public_url))
        self._told()
        return self.get(report_id)

    def _told(self) -> None:
        """After a commit that wrote events: wake whoever delivers them (never fails the change)."""
        for fn in self.on_events:
            try:
                fn()
            except Exception:  # the dispatcher's poll picks the events up anyway
                pass

    # -------------------------------------------------------------- reading
    def get(self, report_id: int) -> Report:
        """The report with its history; NotFound if there is none with this id."""
        r = self.db.report_repo.get(report_id)
        if r is None:
            raise NotFound(report_id)
        return r

    def search(self, *, zone_id=None, chief_id=None, status=None, category=None, since=None, until=None,
               bbox=None, needs_review=None, limit: int = 100, offset: int = 0) -> tuple[list[Report], int]:
        """(a page of matching reports, newest first; how many match in all)."""
        return self.db.report_repo.search(zone_id=zone_id, chief_id=chief_id, status=status, category=category,
                                          since=since, until=until, bbox=bbox, needs_review=needs_review,
                                          limit=limit, offset=offset)

    def queue(self, chief_id: str, limit: int = 500) -> list[Report]:
        """Open reports of a chief, oldest first."""
        return self.db.report_repo.queue(chief_id, OPEN_STATUSES, limit)


__all__ = ["ReportIn", "Location", "Reporter", "Reports", "ReportError", "NotFound", "TokenNotFound", "KeyReused",
           "report_to_dict"]
