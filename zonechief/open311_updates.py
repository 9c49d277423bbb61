"""Open311 service request updates: mySociety's GeoReport v2 extension `GET servicerequestupdates`.

One update per step of a report's history (report_events), oldest first, within the same
start_date/end_date window as `GET requests` (zonechief.open311.window). What the public sees
of a step's note follows zonechief.tracking.note_for, as GET requests' status_notes does: every
status note but the citizen's own comments; staff see every note and, for a resolved step, its
resolution photo. No HTTP here; api/open311.py serves it.
"""
from __future__ import annotations

from datetime import datetime

from store.models import Report, ReportEvent, ReportMedia
from zonechief.open311 import MAX_RESULTS, open311_status, w3c
from zonechief.tracking import note_for
from zonechief.workflow import OPEN_STATUSES

FIELDS = ("update_id", "service_request_id", "status", "updated_datetime", "description", "media_url")


def public_note(e: ReportEvent) -> str | None:
    """The step's note if the public may read it (zonechief.tracking.note_for), else None."""
    return note_for(e, "public")


def resolution_photos(r: Report) -> dict[int, ReportMedia]:
    """For each resolved step of `r` (by event id), the first resolution photo of its round.

    A round runs from the reopening before the resolution (or the start) to the reopening after it,
    so a photo added just before or just after resolving belongs to that resolution, and a report
    resolved twice shows each time its own photo.
    """
    photos = [m for m in r.media if m.kind == "resolution"]
    out: dict[int, ReportMedia] = {}
    lo: datetime | None = None
    for i, e in enumerate(r.history):
        if e.status != "resolved":
            continue
        hi = next((h.at for h in r.history[i + 1:] if h.status in OPEN_STATUSES), None)
        m = next((m for m in photos if (lo is None or m.created_at >= lo) and (hi is None or m.created_at < hi)), None)
        if m is not None:
            out[e.id] = m
        lo = hi
    return out


def update_view(e: ReportEvent, staff: bool, media_url: str | None = None) -> dict:
    """The extension's fields for one history step; `staff` shows every note."""
    return {
        "update_id": str(e.id),
        "service_request_id": str(e.report_id),
        "status": open311_status(e.status),
        "updated_datetime": w3c(e.at),
        "description": e.note if staff else public_note(e),
        "media_url": media_url,
    }


def service_request_updates(repo, since: datetime, until: datetime, public_url: str | None = None,
                            limit: int = MAX_RESULTS) -> list[dict]:
    """Updates with since <= updated_datetime < until, oldest first, at most `limit`.

    `repo`: a store.reports_repo.ReportRepository. With `public_url` (staff callers), every note
    and the resolution photos as absolute URLs; without, public notes only and no media.
    """
    steps = repo.events_between(since, until, limit=limit)
    staff = public_url is not None
    photos: dict[int, ReportMedia] = {}
    if staff:
        resolved = {e.report_id for e in steps if e.status == "resolved"}
        for r in repo.many(resolved).values():
            photos.update(resolution_photos(r))
    out = []
    for e in steps:
        m = photos.get(e.id)
        url = f"{public_url}/v1/reports/{e.report_id}/photos/{m.id}" if m is not None else None
        out.append(update_view(e, staff, url))
    return out
