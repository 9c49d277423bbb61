"""Tables. The schema itself is created by the Alembic migrations in store/migrations."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.tokens import new_token
from store.types import Geom, UTCDateTime

ROLES = ("public", "staff", "admin")


class Base(DeclarativeBase):
    """Declarative base: every datetime column is a UTC-aware timestamp on both backends."""

    type_annotation_map = {datetime: UTCDateTime()}


class Zone(Base):
    """A zone (片区): the villages one chief covers, dissolved into one multipolygon."""

    __tablename__ = "zones"
    zone_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    town: Mapped[str | None] = mapped_column(String(50))
    town_code: Mapped[str | None] = mapped_column(String(12))
    geometry_quality: Mapped[str | None] = mapped_column(String(20))
    geom = mapped_column(Geom("MULTIPOLYGON"), nullable=False)


class Village(Base):
    """A village or community (村/社区), the unit the boundaries are drawn for, in one zone."""

    __tablename__ = "villages"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    short_name: Mapped[str | None] = mapped_column(String(100))
    town: Mapped[str | None] = mapped_column(String(50))
    town_code: Mapped[str | None] = mapped_column(String(12))
    zone_id: Mapped[str] = mapped_column(String(32), index=True)
    geometry_quality: Mapped[str | None] = mapped_column(String(20))
    geom = mapped_column(Geom("MULTIPOLYGON"), nullable=False)


class RosterEntry(Base):
    """One roster row: a person's role in a zone from effective_from until effective_to (exclusive)."""

    __tablename__ = "roster"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(40))
    zone_id: Mapped[str] = mapped_column(String(32), index=True)
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)


class Facility(Base):
    """A facility carrying a city service code (城市服务码), e.g. a public toilet, at its point."""

    __tablename__ = "facilities"
    facility_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    service_code: Mapped[str] = mapped_column(String(64), unique=True)
    town: Mapped[str | None] = mapped_column(String(50))
    zone_id: Mapped[str] = mapped_column(String(32))
    geom = mapped_column(Geom("POINT"), nullable=False)


class Category(Base):
    """A GB/T 47678.5-2026 管理事项 code a report is filed under."""

    __tablename__ = "categories"
    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    major_code: Mapped[str] = mapped_column(String(2))
    major_name: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))


class Report(Base):
    """A citizen's report: what they gave, where it was located, the zone and chief it went to, its status."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    # category, zone_id, chief_id, idempotency_key: COLLATE "C" on PostgreSQL (migration 0004)
    category: Mapped[str] = mapped_column(String(5), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    location_input: Mapped[dict] = mapped_column(JSON)  # as received: coordinates+crs, service code or address
    geom = mapped_column(Geom("POINT"), nullable=True)  # resolved WGS-84 point
    geocode_method: Mapped[str] = mapped_column(String(32))
    geocode_confidence: Mapped[float] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    review_note: Mapped[str | None] = mapped_column(Text)
    zone_id: Mapped[str | None] = mapped_column(String(32), index=True)
    village_code: Mapped[str | None] = mapped_column(String(32))
    chief_id: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16))  # no index: see migration 0003
    reporter_name: Mapped[str | None] = mapped_column(String(100))  # personal data
    reporter_phone: Mapped[str | None] = mapped_column(String(40))  # personal data
    photo_url: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    # The citizen's handle on the report (/t/{token}); unique, unguessable (store.tokens). Migration 0006.
    tracking_token: Mapped[str | None] = mapped_column(String(32), index=True, unique=True, default=new_token)
    # The citizen's answer once resolved (zonechief.feedback): one per report, replaced within a window.
    satisfaction: Mapped[str | None] = mapped_column(String(16))  # fixed | partly_fixed | not_fixed
    rating: Mapped[int | None] = mapped_column(Integer)  # 1..5
    rating_comment: Mapped[str | None] = mapped_column(Text)  # personal data: staff only
    rated_at: Mapped[datetime | None]  # the answer in force
    first_rated_at: Mapped[datetime | None]  # the first answer since the last resolution: the window starts here
    # The boundary generation the report was (last) assigned under (migration 0010); None: no generation yet.
    generation_id: Mapped[int | None] = mapped_column(Integer)
    media: Mapped[list["ReportMedia"]] = relationship(order_by="ReportMedia.id", lazy="selectin",
                                                      cascade="all, delete-orphan")
    history: Mapped[list["ReportEvent"]] = relationship(order_by="ReportEvent.id", lazy="selectin",
                                                         cascade="all, delete-orphan")


class BoundaryGeneration(Base):
    """One boundary import, kept: its source, who, when, and from when it is valid (migration 0010).

    The generation in force at an instant is the one with the latest valid_from at or before it
    (ties: the later id). activated_at: when it was put in force (zones/villages replaced, open
    reports moved); None while it waits for its valid_from.
    """

    __tablename__ = "boundary_generations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    valid_from: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime | None]
    rewrite_history: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[dict] = mapped_column(JSON)


class GenerationVillage(Base):
    """A village of a generation, as imported (the villages table holds the generation in force)."""

    __tablename__ = "generation_villages"
    generation_id: Mapped[int] = mapped_column(ForeignKey("boundary_generations.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    short_name: Mapped[str | None] = mapped_column(String(100))
    town: Mapped[str | None] = mapped_column(String(50))
    town_code: Mapped[str | None] = mapped_column(String(12))
    zone_id: Mapped[str] = mapped_column(String(32))
    zone_name: Mapped[str | None] = mapped_column(String(200))
    geometry_quality: Mapped[str | None] = mapped_column(String(20))
    geom = mapped_column(Geom("MULTIPOLYGON"), nullable=False)


class ReportEvent(Base):
    """One step of a report's history: a status, when, by whom, with an optional note."""

    __tablename__ = "report_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(index=True)  # Open311 updates by time (migration 0008)
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class ReportMedia(Base):
    """A photo of a report: the citizen's, or the chief's of the resolution; the bytes are in the media store."""

    __tablename__ = "report_media"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # citizen | resolution
    sha256: Mapped[str] = mapped_column(String(64))  # the media store's key
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)  # bytes as stored
    created_at: Mapped[datetime]
    # Where the camera said it was (EXIF GPS, WGS-84), read before the metadata was stripped; staff only.
    exif_lon: Mapped[float | None] = mapped_column(Float)
    exif_lat: Mapped[float | None] = mapped_column(Float)
    exif_distance_m: Mapped[float | None] = mapped_column(Float)  # from the report's point


class ApiKey(Base):
    """An API key, stored as a hash, with its role (public, staff, admin) and, for staff, its chief."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # shown in lists, never the secret
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    chief_id: Mapped[str | None] = mapped_column(String(32))  # a staff key may belong to a chief
    created_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# Geometry columns get GiST indexes on PostGIS only; the migration creates them.
GIST_INDEXES = {"reports": "ix_reports_geom", "zones": "ix_zones_geom", "villages": "ix_villages_geom",
                "facilities": "ix_facilities_geom"}


class AuditEntry(Base):
    """One audit_log row: when, who (actor), which action, and a JSON summary of the change."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[dict] = mapped_column(JSON)


class RateLimitBucket(Base):
    """A token bucket of the public submission limit, per client address (store/rate_limits.py, migration 0005)."""

    __tablename__ = "rate_limit_buckets"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # COLLATE "C" on PostgreSQL
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is 64-bit already (and only it autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    """A change to a report, written in the transaction of the change (zonechief.events) and delivered from here.

    The id is the event's stable id: receivers de-duplicate by it, streams resume after it.
    """

    __tablename__ = "events_outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(32))
    report_id: Mapped[int] = mapped_column(Integer, index=True)
    zone_id: Mapped[str | None] = mapped_column(String(32))
    chief_id: Mapped[str | None] = mapped_column(String(32), index=True)
    category: Mapped[str | None] = mapped_column(String(5))
    payload: Mapped[dict] = mapped_column(JSON)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)  # its deliveries exist
    __table_args__ = (Index("ix_events_outbox_pending", "fanned_out", "id"),)


class Webhook(Base):
    """A subscriber: where to POST events (a generic JSON webhook or a WeCom group robot), which ones, signed how."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(16))  # json | wecom
    secret: Mapped[str] = mapped_column(String(200))  # HMAC key of X-Zonechief-Signature
    filter: Mapped[dict] = mapped_column(JSON)  # {"zones": [...], "chiefs": [...], "categories": [...], "types": [...]}
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class WebhookDelivery(Base):
    """One event for one subscriber: pending (its next attempt at next_at), delivered, or dead (given up)."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigId,
                                          ForeignKey("events_outbox.id", ondelete="CASCADE"))
    report_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime]  # due (pending), or the end of the lease of the attempt under way
    leased_until: Mapped[datetime | None]  # an attempt is under way until then (else: waiting, or done)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
                      Index("ix_webhook_deliveries_due", "status", "webhook_id", "next_at"),
                      Index("ix_webhook_deliveries_report", "webhook_id", "report_id", "event_id"))


class StaffSession(Base):
    """A signed-in staff page (/chief): a key exchanged for a cookie; stored by hash, revocable, expiring."""

    __tablename__ = "staff_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the cookie's value
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# ---------------------------------------------------------------- patrols (issue 17; migration 0009, store/patrols_repo.py)
class PatrolTeam(Base):
    """A patrol team: the town's inspectors (巡查员), the women's enforcement team (女子执法队)..."""

    __tablename__ = "patrol_teams"
    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # inspectors | womens_team | other text
    town: Mapped[str | None] = mapped_column(String(50))


class PatrolPerson(Base):
    """Someone who patrols: their team and, where they have one, their zone."""

    __tablename__ = "patrol_people"
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    team_id: Mapped[str | None] = mapped_column(String(32))
    zone_id: Mapped[str | None] = mapped_column(String(32))


class PairedShop(Base):
    """A shop paired with a team (门前三包 pairing): where it is (WGS-84) and who looks after it."""

    __tablename__ = "paired_shops"
    shop_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(32), index=True)
    person_id: Mapped[str | None] = mapped_column(String(32))
    zone_id: Mapped[str | None] = mapped_column(String(32))
    geom = mapped_column(Geom("POINT"), nullable=False)


class Patrol(Base):
    """One patrol: a person's fixes with no gap over 30 min, as a WGS-84 line; its fixes are in patrol_points."""

    __tablename__ = "patrols"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    town: Mapped[str | None] = mapped_column(String(50))
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime]
    n_points: Mapped[int] = mapped_column(Integer)
    length_m: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(String(64))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    imported_at: Mapped[datetime]
    imported_by: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geom("LINESTRING"), nullable=False)


# A fix's time: timestamptz on PostGIS; Unix epoch microseconds on SQLite (text timestamps cost seconds per million).
PointTime = DateTime(timezone=True).with_variant(BigInteger(), "sqlite")


class PatrolPoint(Base):
    """One GPS fix of a patrol: time and WGS-84 degrees as plain floats (read and written in bulk, never searched)."""

    __tablename__ = "patrol_points"
    patrol_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # no foreign key: its check costs 15 s a million fixes
    t = mapped_column(PointTime, primary_key=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)


GIST_INDEXES.update({"patrols": "ix_patrols_geom", "paired_shops": "ix_paired_shops_geom"})
