"""Which events a change to a report makes, and what they carry: written to the outbox in the
transaction of the change (zonechief.reports), so that no change is ever told without being made,
nor made without being told.

An event carries the report as its chief and client systems need it (no reporter contact: that
stays behind a staff key) and what changed. Bulk imports of past reports make no events: they are
history, not news.
"""
from __future__ import annotations

from datetime import datetime

from store.models import OutboxEvent, Report

CREATED, ASSIGNED, STATUS_CHANGED, RATED, REASSIGNED = (
    "report.created", "report.assigned", "report.status_changed", "report.rated", "report.reassigned")
TYPES = (CREATED, ASSIGNED, STATUS_CHANGED, RATED, REASSIGNED)


def report_summary(r: Report, public_url: str) -> dict:
    """The report as events carry it (`r`: a Report, or a row with its columns)."""
    g = r.geom
    loc = r.location_input or {}
    return {"id": r.id, "status": r.status, "category": r.category, "description": r.description,
            "zone_id": r.zone_id, "village_code": r.village_code, "chief_id": r.chief_id,
            "point": None if g is None else {"lon": g.x, "lat": g.y, "crs": "wgs84"},
            "address": loc.get("address"), "service_code": loc.get("service_code"),
            "needs_review": r.needs_review, "created_at": r.created_at.isoformat(),
            "tracking_url": f"{public_url}/t/{r.tracking_token}"}


def event_values(r, type_: str, at: datetime, public_url: str, change: dict | None = None) -> dict:
    """The outbox row of an event on report `r` as column values (`r`: a Report, or a row with its columns)."""
    payload = {"type": type_, "at": at.isoformat(), "report": report_summary(r, public_url)}
    if change:
        payload["change"] = change
    return {"at": at, "type": type_, "report_id": r.id, "zone_id": r.zone_id, "chief_id": r.chief_id,
            "category": r.category, "payload": payload, "fanned_out": False}


def event(r: Report, type_: str, at: datetime, public_url: str, change: dict | None = None) -> OutboxEvent:
    """One outbox row for report `r` (flushed: it has its id)."""
    return OutboxEvent(**event_values(r, type_, at, public_url, change))


def on_created(r: Report, at: datetime, public_url: str) -> list[OutboxEvent]:
    """A new report: created, and assigned when the intake gave it a zone and chief."""
    out = [event(r, CREATED, at, public_url)]
    if r.status == "assigned":
        out.append(event(r, ASSIGNED, at, public_url, {"zone_id": r.zone_id, "chief_id": r.chief_id}))
    return out


def on_status(r: Report, before: str, at: datetime, actor: str, note: str | None, public_url: str) -> OutboxEvent:
    """A status change (r already has the new status)."""
    return event(r, STATUS_CHANGED, at, public_url, {"from": before, "to": r.status, "actor": actor, "note": note})


def on_reassigned(r, at: datetime, public_url: str, before: dict, after: dict) -> dict:
    """A report moved to another zone because the boundaries changed (zonechief.generations): row values for a bulk insert.

    `before` and `after`: zone_id, chief_id and the boundary generation, so receivers can tell both chiefs.
    """
    return event_values(r, REASSIGNED, at, public_url, {"from": before, "to": after, "reason": "boundaries"})


def on_rated(r: Report, at: datetime, public_url: str) -> OutboxEvent:
    """The citizen's answer (zonechief.feedback), with its comment: the chief acts on it."""
    return event(r, RATED, at, public_url, {"outcome": r.satisfaction, "rating": r.rating, "comment": r.rating_comment})
