"""FastAPI dependencies: the app's services, the zone index, the caller, and the parameters
every face reads alike (bbox, date/time under the one time rule of gis.localtime).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, Query, Request

from api.auth import ANONYMOUS, Caller, caller_for_key, request_key
from api.errors import Problem
from api.middleware import check_submission_rate
from gis.localtime import LOCAL_NAME, parse_instant
from gis.lookup import ZoneIndex
from store.sessions import StaffSessions
from zonechief.services import Services


# ------------------------------------------------------------------ services
def services_of(request: Request) -> Services:
    """The app's Services (set by create_app). Also for plain Starlette routes, which have no Depends."""
    return request.app.state.services


def get_index(services: Annotated[Services, Depends(services_of)]) -> ZoneIndex:
    """The zone index in force."""
    return services.index


ServicesDep = Annotated[Services, Depends(services_of)]
IndexDep = Annotated[ZoneIndex, Depends(get_index)]


# ------------------------------------------------------------------ the caller
SESSION_COOKIE = "zc_staff"  # the chief's page's session (api/chief.py, store/sessions.py)
COOKIE_METHODS = ("GET", "HEAD")  # /v1 changes need a key: the cookie reads (streams, photos), the pages' forms change


def caller_for_session(services: Services, token: str) -> Caller | None:
    """The caller of a staff session token (the cookie); None when it is unknown, expired or revoked, or its key is.

    A session acts as staff at most: an admin key signed in to the chief's page is an unbound staff there.
    """
    row = StaffSessions(services.db.sessions).resolve(token, datetime.now(timezone.utc))
    if row is None:
        return None
    return Caller("staff" if row.role == "admin" else row.role, row.name, row.prefix, row.chief_id)


def get_caller(request: Request, services: ServicesDep) -> Caller:
    """The caller of the key in X-API-Key (or Authorization: Bearer); public without one, unless keys are required.

    Without a key, a GET may be signed in by the chief's page's session cookie instead.
    """
    key = request_key(request)
    token = request.cookies.get(SESSION_COOKIE) if key is None and request.method in COOKIE_METHODS else None
    if token:
        caller = caller_for_session(services, token)
        if caller is not None:
            return caller
    if key is None:
        if services.settings.require_public_key:
            raise Problem(401, "an API key is required: send it in the X-API-Key header", title="Unauthorized")
        return ANONYMOUS
    caller = caller_for_key(services, key)
    if caller is None:
        raise Problem(401, "the API key is unknown or revoked", title="Unauthorized")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(role: str):
    """A dependency admitting callers of `role` or above."""
    def dep(caller: CallerDep) -> Caller:
        if caller.key_prefix is None and not caller.at_least(role):  # no credentials at all: ask for them
            raise Problem(401, f"this needs a {role} API key: send it in the X-API-Key header", title="Unauthorized")
        if not caller.at_least(role):
            raise Problem(403, f"this needs a {role} API key; yours has the {caller.role} role", title="Forbidden")
        return caller

    return dep


def limit_public_submissions(request: Request, caller: CallerDep) -> None:
    """For submission endpoints: the per-IP limit of anonymous and public callers."""
    check_submission_rate(request, caller)


# ------------------------------------------------------------------ bbox
BBOX_DOC = "minlon,minlat,maxlon,maxlat in WGS-84 (or 6 numbers with heights, which are ignored)"


def parse_bbox(text: str, status: int = 422) -> tuple[float, float, float, float]:
    """minlon,minlat,maxlon,maxlat (or OGC's 6 numbers with heights), WGS-84/CRS84.

    `status` for a bad one: /v1 answers 422 for any invalid value, OGC API requires 400.
    """
    try:
        p = [float(v) for v in text.split(",")]
    except ValueError:
        raise Problem(status, f"bbox={text!r} must be numbers: minlon,minlat,maxlon,maxlat") from None
    if len(p) == 6:
        p = [p[0], p[1], p[3], p[4]]
    if len(p) != 4 or not all(math.isfinite(v) for v in p):
        raise Problem(status, f"bbox={text!r} must be four finite numbers minlon,minlat,maxlon,maxlat (or six, with heights)")
    if not (-90 <= p[1] <= p[3] <= 90) or abs(p[0]) > 180 or abs(p[2]) > 180:
        raise Problem(status, f"bbox={text!r}: latitudes must be within ±90 with min ≤ max, longitudes within ±180")
    if p[0] > p[2]:
        raise Problem(status, f"bbox={text!r} crosses the antimeridian (min lon > max lon), which this service does not support")
    return tuple(p)


def bbox_param(bbox: Annotated[str | None, Query(description=BBOX_DOC)] = None) -> tuple | None:
    """The bbox query parameter of /v1, parsed; None without one."""
    return parse_bbox(bbox) if bbox else None


BboxDep = Annotated[tuple | None, Depends(bbox_param)]


# ------------------------------------------------------------------ date and time
RULE_DOC = (f"ISO 8601. A bare date (2025-07-01) is that calendar day in {LOCAL_NAME}; "
            f"a date-time without an offset is {LOCAL_NAME} wall time.")
AT_DOC = f"Roster date or time, default now. {RULE_DOC}"
SINCE_DOC = f"From this date or time (inclusive). {RULE_DOC}"
UNTIL_DOC = f"Before this date-time; a bare date includes that whole day. {RULE_DOC}"


def instant(text: str | None, name: str, end: bool = False) -> datetime | None:
    """A query parameter under the time rule; None when absent. A bad one is a 400 naming `name`."""
    return None if text is None else parse_instant(text, end=end, name=name)


def at_param(at: Annotated[str | None, Query(description=AT_DOC)] = None) -> datetime | None:
    """The at query parameter (a roster date or time); None means now."""
    return instant(at, "at")


AtDep = Annotated[datetime | None, Depends(at_param)]


def index_as_of(services: Annotated[Services, Depends(services_of)], at: AtDep) -> ZoneIndex:
    """The zone index of the boundaries in force at `at` (zonechief.generations; default now)."""
    return services.index_at(at)


IndexAtDep = Annotated[ZoneIndex, Depends(index_as_of)]


@dataclass(frozen=True)
class TimeRange:
    """[since, until): either may be open."""

    since: datetime | None = None
    until: datetime | None = None


def time_range(since: Annotated[str | None, Query(description=SINCE_DOC)] = None,
               until: Annotated[str | None, Query(description=UNTIL_DOC)] = None) -> TimeRange:
    """The since/until query parameters as [since, until)."""
    return TimeRange(instant(since, "since"), instant(until, "until", end=True))


TimeRangeDep = Annotated[TimeRange, Depends(time_range)]
