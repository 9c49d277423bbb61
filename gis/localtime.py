"""Dongguan time: the one rule for turning a date or time someone typed into an instant.

- A bare date (``2025-07-01``) is that calendar day in Asia/Shanghai. As a start
  (since, start_date, at, the start of an interval) it is 00:00 that day; as an
  end (until, end_date, the end of an interval) it includes the whole day, i.e.
  the bound is 00:00 of the next day (exclusive).
- A date-time with an offset or ``Z`` is that instant.
- A date-time without an offset is Asia/Shanghai wall time (unless the caller's
  format demands an offset: OGC API and Open311 do).

Every entry point (/v1, /ogc, /open311, /maps, the CLI, notebooks) parses through
`parse_instant`, and the roster's "which day is it" is `local_day`. Asia/Shanghai
has had no daylight saving since 1991, so a fixed UTC+8 is exact for the data here.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pandas as pd

from gis.errors import ZonechiefError

LOCAL_NAME = "Asia/Shanghai"
LOCAL_OFFSET_S = 8 * 3600
LOCAL = timezone(timedelta(seconds=LOCAL_OFFSET_S), LOCAL_NAME)


class TimeInputError(ZonechiefError, ValueError):
    """A date or time that cannot be read; the message shows the accepted forms."""


def is_bare_date(text: str) -> bool:
    """True for text shaped like a bare date (YYYY-MM-DD), which the rule above reads as a whole day; parsing checks the date."""
    return len(text) == 10 and text[4] == "-" and text[7] == "-"


def parse_instant(text: str, *, end: bool = False, name: str = "time", require_offset: bool = False) -> datetime:
    """An aware datetime for `text` under the rule above; `end` makes a bare date cover its whole day."""
    text = text.strip()
    try:
        if is_bare_date(text):
            day = date.fromisoformat(text)
            if end and day == date.max:  # the next day does not exist: the last instant will do
                return datetime.max.replace(tzinfo=LOCAL)
            return datetime.combine(day + timedelta(days=1) if end else day, time(0), LOCAL)
        t = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise TimeInputError(f"{name}={text!r} is not an ISO 8601 date or time "
                             f"(e.g. 2025-07-01, a day in {LOCAL_NAME}, or 2025-07-01T09:30:00+08:00)") from None
    if t.tzinfo is None:
        if require_offset:
            raise TimeInputError(f"{name}={text!r} needs a timezone offset or Z, e.g. 2025-07-01T09:30:00+08:00")
        t = t.replace(tzinfo=LOCAL)
    return t


def as_local(t: datetime) -> datetime:
    """An aware datetime as is; a naive one taken as Asia/Shanghai wall time."""
    return t if t.tzinfo is not None else t.replace(tzinfo=LOCAL)


def local_day(at=None) -> date:
    """The Dongguan calendar day of `at` (today if None): the day a roster row is in force.

    Accepts a date, an aware or naive datetime (naive = local), a pandas Timestamp or
    a string under the rule above.
    """
    if at is None:
        return datetime.now(LOCAL).date()
    if isinstance(at, str):
        at = parse_instant(at, name="at")
    if isinstance(at, datetime):
        return as_local(at).astimezone(LOCAL).date()
    if isinstance(at, date):
        return at
    return local_day(pd.Timestamp(at).to_pydatetime())
