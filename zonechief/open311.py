"""Open311 GeoReport v2 vocabulary over reports: statuses, dates, the public view of a request.

No HTTP here; api/open311.py serves it.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from gis.errors import ZonechiefError
from gis.localtime import LOCAL as CST
from gis.localtime import is_bare_date, parse_instant
from store.models import Report
from zonechief.tracking import note_for
from zonechief.workflow import OPEN_STATUSES, STATUSES

DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)
CLOSED_STATUSES = tuple(s for s in STATUSES if s not in OPEN_STATUSES)
GROUPS = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES}

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class Open311Error(ZonechiefError, ValueError):
    """A request the spec says to refuse; `code` is the HTTP status (400, 403, 404)."""

    def __init__(self, code: int, description: str, headers: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.headers = code, description, headers


def open311_status(status: str) -> str:
    """A report status as the spec's open or closed."""
    return "open" if status in OPEN_STATUSES else "closed"


def statuses_for(text: str | None) -> list[str] | None:
    """`status=open,closed` → our statuses; None means all."""
    if not text:
        return None
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in wanted if s not in GROUPS]
    if bad:
        raise Open311Error(400, f"status {', '.join(bad)!s} is not open or closed")
    return [s for g in dict.fromkeys(wanted) for s in GROUPS[g]]


def w3c(dt: datetime) -> str:
    """An instant as a W3C datetime in Asia/Shanghai time."""
    return dt.astimezone(CST).isoformat(timespec="seconds")


def parse_w3c(name: str, text: str, end: bool = False) -> datetime:
    """A W3C datetime with an offset (or Z), or a bare date, under the time rule (gis.localtime).

    For an end bound the result is exclusive: a bare date covers that whole day,
    a datetime includes its own instant. A bad one raises TimeInputError (a 400).
    """
    dt = parse_instant(text, end=end, name=name, require_offset=True)
    if not EARLIEST <= dt <= LATEST:  # also keeps date arithmetic clear of datetime's limits
        raise Open311Error(400, f"{name}={text.strip()!r} is out of range ({EARLIEST.year}–{LATEST.year - 1})")
    return dt + timedelta(microseconds=1) if end and not is_bare_date(text.strip()) else dt


def window(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) from start_date/end_date; default the last 90 days; never more than 90 days."""
    since = parse_w3c("start_date", start) if start else None
    until = parse_w3c("end_date", end, end=True) if end else None
    if since is None:
        until = until or now
        since = until - DEFAULT_WINDOW
    elif until is None:
        until = since + DEFAULT_WINDOW
    if until <= since:
        raise Open311Error(400, "end_date must be after start_date")
    if until - since > DEFAULT_WINDOW + timedelta(seconds=1):
        raise Open311Error(400, "start_date to end_date may span at most 90 days")
    return since, until


def reporter_name(first: str | None, last: str | None) -> str | None:
    """first_name/last_name as one name; Chinese names are written family name first, without a space."""
    first, last = (first or "").strip(), (last or "").strip()
    if not first and not last:
        return None
    if _CJK.search(first + last):
        return last + first
    return f"{first} {last}".strip()


def latest_note(r: Report, audience: str = "public") -> str | None:
    """The newest note in a report's history `audience` may read (zonechief.tracking.note_for), as status_notes."""
    for e in reversed(r.history):
        note = note_for(e, audience)
        if note:
            return note
    return None


def request_view(r: Report, categories: dict[str, str], zone_names: dict[str, str], public_url: str | None = None) -> dict:
    """The spec's service request fields. Reporter contact is never part of it.

    With `public_url` (whoever filed the request, and staff): the tracking link in service_notice and
    the first stored photo as media_url; without, neither (the photos and the tracking page are not public).
    """
    g = r.geom
    loc = r.location_input or {}
    agency = None
    if r.zone_id:
        agency = f"{r.zone_id} {zone_names.get(r.zone_id, '')}".strip()
        agency += f" / chief {r.chief_id}" if r.chief_id else " / no chief in force"
    return {
        "service_request_id": str(r.id),
        "status": open311_status(r.status),
        "status_notes": latest_note(r, "public" if public_url is None else "staff"),
        "service_name": categories.get(r.category),
        "service_code": r.category,
        "description": r.description or None,
        "agency_responsible": agency,
        "service_notice": notice(r, public_url),
        "requested_datetime": w3c(r.created_at),
        "updated_datetime": w3c(r.updated_at),
        "expected_datetime": None,
        "address": loc.get("address"),
        "address_id": loc.get("service_code"),
        "zipcode": None,
        "lat": g.y if g is not None else None,
        "long": g.x if g is not None else None,
        "media_url": media_url(r, public_url),
    }


def media_url(r: Report, public_url: str | None) -> str | None:
    """The first stored photo (absolute, for staff), else the photo URL the client gave."""
    if public_url is not None and r.media:
        return f"{public_url}/v1/reports/{r.id}/photos/{r.media[0].id}"
    return r.photo_url


def notice(r: Report, public_url: str | None = None) -> str:
    """The service notice: the zone and chief a request went to, or why it waits for staff; with
    `public_url`, then the tracking link."""
    if r.zone_id and r.chief_id:
        text = f"Assigned to zone {r.zone_id}, chief {r.chief_id}."
    elif r.zone_id:
        text = f"In zone {r.zone_id}; no chief is in force there, staff will assign it."
    else:
        text = "The location needs review by staff before the report can be assigned."
    return text if public_url is None else f"{text} 跟踪 / Track: {public_url}/t/{r.tracking_token}"
