"""The one time rule (gis.localtime): a bare date is a calendar day in Asia/Shanghai (UTC+8), everywhere.

As a start bound it is 00:00 local that day; as an end bound it includes that whole day. So the same bare
date must select the same reports through /v1/reports, /ogc, /open311 and /maps/heatmap. The reports here
are seeded at instants where a UTC reading and an Asia/Shanghai reading of the date disagree (local times
between 00:00 and 08:00 are the previous day in UTC), and every endpoint is checked against the exact set
the rule gives, by id. The expected sets are worked out here with a plain UTC+8 offset, not with the code
under test.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from gis.errors import ZonechiefError
from gis.localtime import LOCAL, TimeInputError, local_day, parse_instant
from tests.helpers import inner
from zonechief.reports import ReportIn

UTC = timezone.utc
CST = timezone(timedelta(hours=8))  # Asia/Shanghai; no daylight saving since 1991
US = timedelta(microseconds=1)


def cst(*args) -> datetime:
    return datetime(*args, tzinfo=CST)


def day_of(t: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware instant (independent of gis.localtime)."""
    return (t.astimezone(UTC) + timedelta(hours=8)).date()


# ================================================================== gis.localtime
def test_local_is_a_fixed_utc_plus_8():
    assert LOCAL.utcoffset(None) == timedelta(hours=8) and LOCAL.dst(None) is None
    assert datetime(2025, 1, 15, tzinfo=LOCAL).utcoffset() == datetime(2025, 7, 15, tzinfo=LOCAL).utcoffset()


@pytest.mark.parametrize("text,start,end", [
    ("2025-07-01", cst(2025, 7, 1), cst(2025, 7, 2)),
    ("2025-06-30", cst(2025, 6, 30), cst(2025, 7, 1)),
    ("2025-12-31", cst(2025, 12, 31), cst(2026, 1, 1)),  # end of a year
    ("2024-02-28", cst(2024, 2, 28), cst(2024, 2, 29)),  # into a leap day
    ("2024-02-29", cst(2024, 2, 29), cst(2024, 3, 1)),
    (" 2025-07-01 ", cst(2025, 7, 1), cst(2025, 7, 2)),  # surrounding spaces are ignored
])
def test_bare_date_as_start_and_end(text, start, end):
    s, e = parse_instant(text), parse_instant(text, end=True)
    assert s == start and e == end
    assert s.utcoffset() == e.utcoffset() == timedelta(hours=8)
    assert e - s == timedelta(days=1)
    # The start of 2025-07-01 is 16:00 UTC the day before, not midnight UTC.
    if text.strip() == "2025-07-01":
        assert s == datetime(2025, 6, 30, 16, tzinfo=UTC) and e == datetime(2025, 7, 1, 16, tzinfo=UTC)


def test_bare_date_is_allowed_even_where_date_times_need_an_offset():
    assert parse_instant("2025-07-01", require_offset=True) == cst(2025, 7, 1)
    assert parse_instant("2025-07-01", end=True, require_offset=True) == cst(2025, 7, 2)


@pytest.mark.parametrize("text,instant", [
    ("2025-07-01T09:30:00+08:00", cst(2025, 7, 1, 9, 30)),
    ("2025-07-01T01:30:00Z", cst(2025, 7, 1, 9, 30)),
    ("2025-07-01T01:30:00+00:00", cst(2025, 7, 1, 9, 30)),
    ("2025-06-30T21:30:00-04:00", cst(2025, 7, 1, 9, 30)),
    ("2025-06-30T16:00:00Z", cst(2025, 7, 1)),
    ("2025-07-01T09:30:00.250000+08:00", cst(2025, 7, 1, 9, 30, 0, 250000)),
])
def test_date_time_with_offset_is_that_instant(text, instant):
    for kw in ({}, {"end": True}, {"require_offset": True}, {"end": True, "require_offset": True}):
        t = parse_instant(text, **kw)
        assert t == instant and t.tzinfo is not None, kw


@pytest.mark.parametrize("text,instant", [
    ("2025-07-01T09:30:00", cst(2025, 7, 1, 9, 30)),
    ("2025-07-01T09:30", cst(2025, 7, 1, 9, 30)),
    ("2025-07-01T00:00:00", cst(2025, 7, 1)),
    ("2025-07-01 07:59:59", cst(2025, 7, 1, 7, 59, 59)),  # still 2025-06-30 in UTC
])
def test_naive_date_time_is_shanghai_wall_time(text, instant):
    t = parse_instant(text)
    assert t == instant and t.utcoffset() == timedelta(hours=8)
    assert parse_instant(text, end=True) == instant  # end widens only a bare date


@pytest.mark.parametrize("text", ["2025-07-01T09:30:00", "2025-07-01T00:00", "2025-07-01 09:30"])
def test_require_offset_refuses_naive_date_times(text):
    with pytest.raises(TimeInputError) as exc:
        parse_instant(text, name="start_date", require_offset=True)
    msg = str(exc.value)
    assert "start_date" in msg and text in msg and "offset" in msg


@pytest.mark.parametrize("text", ["yesterday", "", "2025/07/01", "2025-13-01", "2025-02-30", "2025-07-1",
                                  "01-07-2025", "2025-07-01T25:00:00+08:00", "2025-07-01T09:30:00+99:00",
                                  "2025-07-01 and more", "9999999999"])
def test_junk_is_refused_naming_the_parameter(text):
    with pytest.raises(TimeInputError) as exc:
        parse_instant(text, name="until")
    assert "until=" in str(exc.value)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, ZonechiefError)
    with pytest.raises(TimeInputError, match="since="):
        parse_instant(text, name="since", end=True)


@pytest.mark.parametrize("at,day", [
    (datetime(2025, 6, 30, 15, 59, 59, 999999, tzinfo=UTC), date(2025, 6, 30)),  # 23:59:59.999999 local
    (datetime(2025, 6, 30, 16, 0, tzinfo=UTC), date(2025, 7, 1)),                # local midnight
    (datetime(2025, 6, 30, 16, 30, tzinfo=UTC), date(2025, 7, 1)),               # 00:30 local, 06-30 in UTC
    (datetime(2025, 7, 1, 15, 30, tzinfo=UTC), date(2025, 7, 1)),                # 23:30 local
    (datetime(2025, 7, 1, 16, 0, tzinfo=UTC), date(2025, 7, 2)),
    (cst(2025, 7, 1, 0, 0), date(2025, 7, 1)),
    (cst(2025, 6, 30, 23, 59, 59), date(2025, 6, 30)),
    (datetime(2025, 6, 30, 12, 30, tzinfo=timezone(timedelta(hours=-4))), date(2025, 7, 1)),  # 00:30 local
    (datetime(2025, 7, 1, 0, 30, tzinfo=timezone(timedelta(hours=9))), date(2025, 6, 30)),    # 23:30 local
    (datetime(2025, 12, 31, 16, 0, tzinfo=UTC), date(2026, 1, 1)),
    (datetime(2025, 7, 1, 0, 30), date(2025, 7, 1)),  # naive: local wall time
    (datetime(2025, 7, 1, 23, 30), date(2025, 7, 1)),
    (date(2025, 7, 1), date(2025, 7, 1)),
    ("2025-07-01", date(2025, 7, 1)),
    ("2025-06-30T16:30:00Z", date(2025, 7, 1)),
    ("2025-07-01T07:59:59", date(2025, 7, 1)),
    (pd.Timestamp("2025-06-30T16:30:00Z"), date(2025, 7, 1)),
    (pd.Timestamp("2025-06-30T15:30:00Z"), date(2025, 6, 30)),
])
def test_local_day_around_local_midnight(at, day):
    assert local_day(at) == day


def test_local_day_today():
    before = datetime.now(CST).date()
    today = local_day()
    assert today in {before, datetime.now(CST).date()}  # either side of a midnight passing meanwhile
    assert local_day(None) == today or local_day(None) == today + timedelta(days=1)


@settings(max_examples=200, deadline=None, database=None)
@given(t=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 31),
                      timezones=st.sampled_from([UTC, CST, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))])),
       d=st.dates(min_value=date(1971, 1, 2), max_value=date(2199, 12, 30)))
def test_a_date_covers_exactly_the_instants_of_its_local_day(t, d):
    assert local_day(t) == day_of(t)
    start, end = parse_instant(d.isoformat()), parse_instant(d.isoformat(), end=True)
    assert (start <= t < end) == (day_of(t) == d)


# ================================================================== the endpoints
D = "2025-07-01"
D2 = "2025-07-02"

# Local wall times (+08:00). The comment gives the UTC instant: the ones marked * are on a different UTC day.
SEEDS = {
    "jun01": cst(2025, 6, 1, 12),              # 04:00Z 06-01, far before
    "a": cst(2025, 6, 30, 23, 30),            # 15:30Z 06-30; 06-30 local
    "b": cst(2025, 7, 1, 0, 0),               # 16:00Z 06-30 *; exactly local midnight
    "c": cst(2025, 7, 1, 0, 30),              # 16:30Z 06-30 *
    "d": cst(2025, 7, 1, 12, 0),              # 04:00Z 07-01
    "e": cst(2025, 7, 1, 23, 30),             # 15:30Z 07-01
    "f": cst(2025, 7, 1, 23, 59, 59, 999000),  # 15:59:59.999Z 07-01; the last moment of 07-01
    "g": cst(2025, 7, 2, 0, 0),               # 16:00Z 07-01 *; exactly the next local midnight
    "h": cst(2025, 7, 2, 0, 30),              # 16:30Z 07-01 *
    "k": cst(2025, 7, 2, 7, 59),              # 23:59Z 07-01 *
    "i": cst(2025, 7, 2, 23, 30),             # 15:30Z 07-02
    "j": cst(2025, 7, 3, 0, 30),              # 16:30Z 07-02 *
    "aug01": cst(2025, 8, 1, 12),             # far after (within Open311's 90 days of 07-01)
}

# (start date, end date): either may be open. Both bounds inclusive days.
CASES = {
    "day": (D, D),
    "day_before": ("2025-06-30", "2025-06-30"),
    "next_day": (D2, D2),
    "two_days": (D, D2),
    "three_days": ("2025-06-30", D2),
    "from_day": (D, None),
    "up_to_day": (None, D),
}


def expected(seeded: dict[str, int], start: str | None, end: str | None) -> set[int]:
    lo = date.fromisoformat(start) if start else date.min
    hi = date.fromisoformat(end) if end else date.max
    return {seeded[name] for name, t in SEEDS.items() if lo <= day_of(t) <= hi}


def test_the_seeds_tell_utc_and_local_apart():
    utc_day = {n: t.astimezone(UTC).date() for n, t in SEEDS.items()}
    local = {n: day_of(t) for n, t in SEEDS.items()}
    assert {n for n in SEEDS if utc_day[n] != local[n]} == {"b", "c", "g", "h", "k", "j"}
    assert {n for n, d in local.items() if d == date(2025, 7, 1)} == {"b", "c", "d", "e", "f"}
    assert {n for n, d in utc_day.items() if d == date(2025, 7, 1)} == {"d", "e", "f", "g", "h", "k"}


def seed(services, zone_index, instants: dict[str, datetime], zone="QS-04") -> dict[str, int]:
    lon, lat = inner(zone_index, zone)
    out = {}
    for name, t in instants.items():
        r, created = services.reports.create(ReportIn(source="gps", category="06010",
                                                      location={"lon": lon, "lat": lat}, created_at=t))
        assert created and r.geom is not None
        out[name] = r.id
    return out


class Failed(str):
    """What an endpoint answered instead of a list: shown in the assertion message."""


def _fail(r: httpx.Response) -> Failed:
    return Failed(f"HTTP {r.status_code}: {r.text[:300]}")


def v1_ids(c: httpx.Client, start: str | None, end: str | None, **extra) -> set[int] | Failed:
    params = {k: v for k, v in (("since", start), ("until", end)) if v is not None}
    got, offset = [], 0
    while True:
        r = c.get("/v1/reports", params={**params, **extra, "limit": 1000, "offset": offset})
        if r.status_code != 200:
            return _fail(r)
        body = r.json()
        got += [x["id"] for x in body["items"]]
        if body["next_offset"] is None:
            break
        offset = body["next_offset"]
    assert len(got) == len(set(got)) == body["total"]
    return set(got)


def ogc_datetime(start: str | None, end: str | None) -> str:
    return start if start == end else f"{start or '..'}/{end or '..'}"


def ogc_ids(c: httpx.Client, dt: str) -> set[int] | Failed:
    url, params, got, matched = "/ogc/collections/reports/items", {"datetime": dt, "limit": 1000}, [], None
    while url:
        r = c.get(url, params=params)
        if r.status_code != 200:
            return _fail(r)
        body = r.json()
        matched = body["numberMatched"] if matched is None else matched
        got += [f["id"] for f in body["features"]]
        assert all(f["properties"]["report_id"] == f["id"] for f in body["features"])
        url, params = next((l["href"] for l in body["links"] if l["rel"] == "next"), None), None
    assert len(got) == len(set(got)) == matched
    return set(got)


def open311_ids(c: httpx.Client, start: str | None, end: str | None) -> set[int] | Failed:
    params = {k: v for k, v in (("start_date", start), ("end_date", end)) if v is not None}
    r = c.get("/open311/v2/requests.json", params=params)
    if r.status_code != 200:
        return _fail(r)
    rows = r.json()
    assert len(rows) < 1000  # not cut off at Open311's cap
    got = [int(x["service_request_id"]) for x in rows]
    assert len(got) == len(set(got))
    return set(got)


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def heatmap(c: httpx.Client, start: str | None, end: str | None) -> tuple[int, set[int]] | Failed:
    """(reports counted in the legend, ids in the "latest reports" layer) of the heat map page.

    folium writes the legend and the popups inside script literals with \\uXXXX escapes, decoded here first.
    """
    params = {k: v for k, v in (("since", start), ("until", end)) if v is not None}
    r = c.get("/maps/heatmap", params={**params, "recent": 1000})
    if r.status_code != 200:
        return _fail(r)
    page = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), r.text)
    counts = re.findall(r"(\d[\d,]*) 条报告 reports", page)
    assert len(counts) == 1, counts
    assert "reports outside the map area" not in page
    ids = {int(x) for x in re.findall(r"报告 Report #(\d+)", page)}
    latest = re.findall(r"Latest reports \((\d+)\)", page)
    assert latest == ([str(len(ids))] if ids else []), latest
    return int(counts[0].replace(",", "")), ids


@pytest.fixture(scope="module")
def fixed(store_url, zone_index):
    """An app on an empty store (SQLite and PostGIS) holding just the SEEDS, spoken to in-process."""
    app = create_app(index=zone_index, database_url=store_url)
    services = app.state.services
    seeded = seed(services, zone_index, SEEDS)
    rows, total = services.reports.search(limit=1000)
    assert total == len(SEEDS)
    stored = {r.id: r.created_at for r in rows}
    assert all(stored[seeded[n]] == t for n, t in SEEDS.items())  # the store keeps the instants exactly
    with TestClient(app) as client:
        yield {"client": client, "ids": seeded, "names": {i: n for n, i in seeded.items()}}
    services.db.engine.dispose()


def _named(fixed, got):
    return got if isinstance(got, Failed) else sorted(fixed["names"][i] for i in got)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("endpoint", ["v1", "ogc", "open311", "heatmap"])
def test_bare_dates_select_the_local_days(fixed, endpoint, case):
    c = fixed["client"]
    start, end = CASES[case]
    want = expected(fixed["ids"], start, end)
    assert want  # every case selects something
    if endpoint == "v1":
        got = v1_ids(c, start, end)
    elif endpoint == "ogc":
        got = ogc_ids(c, ogc_datetime(start, end))
    elif endpoint == "open311":
        got = open311_ids(c, start, end)
    else:
        page = heatmap(c, start, end)
        assert not isinstance(page, Failed), page
        count, got = page
        assert count == len(want), (count, _named(fixed, want))
    # By name, so a failure reads e.g. ['d', 'e', 'f', 'g', 'h', 'k'] (a UTC day) against ['b', 'c', 'd', 'e', 'f'].
    assert _named(fixed, got) == _named(fixed, want)


@pytest.mark.parametrize("case", ["day", "day_before", "next_day"])
def test_ogc_single_day_interval_is_the_day(fixed, case):
    """datetime=D/D (an interval of one day, the end bound inclusive) is the same as datetime=D."""
    start, _ = CASES[case]
    want = _named(fixed, expected(fixed["ids"], start, start))
    assert _named(fixed, ogc_ids(fixed["client"], f"{start}/{start}")) == want
    assert _named(fixed, ogc_ids(fixed["client"], start)) == want


def test_the_same_date_gives_the_same_reports_everywhere(fixed):
    c = fixed["client"]
    for case, (start, end) in CASES.items():
        page = heatmap(c, start, end)
        got = {"v1": v1_ids(c, start, end), "ogc": ogc_ids(c, ogc_datetime(start, end)),
               "open311": open311_ids(c, start, end), "heatmap": page if isinstance(page, Failed) else page[1]}
        want = expected(fixed["ids"], start, end)
        assert {k: _named(fixed, v) for k, v in got.items()} == {k: _named(fixed, want) for k in got}, case


def test_offsets_pick_the_same_day_as_the_bare_date(fixed):
    """The explicit form of D's local day, [00:00+08:00, next 00:00+08:00), where each endpoint has one."""
    c = fixed["client"]
    want = _named(fixed, expected(fixed["ids"], D, D))
    last = "2025-07-01T23:59:59.999999+08:00"
    assert _named(fixed, v1_ids(c, "2025-07-01T00:00:00+08:00", "2025-07-02T00:00:00+08:00")) == want
    assert _named(fixed, v1_ids(c, "2025-06-30T16:00:00Z", "2025-07-01T16:00:00Z")) == want
    assert _named(fixed, ogc_ids(c, f"2025-07-01T00:00:00+08:00/{last}")) == want
    assert _named(fixed, open311_ids(c, "2025-07-01T00:00:00+08:00", last)) == want
    page = heatmap(c, "2025-07-01T00:00:00+08:00", "2025-07-02T00:00:00+08:00")
    assert not isinstance(page, Failed), page
    assert _named(fixed, page[1]) == want


def test_naive_date_times_are_local_where_no_offset_is_demanded(fixed):
    """/v1 and /maps read a date-time without an offset as Asia/Shanghai wall time; OGC and Open311 refuse it."""
    c = fixed["client"]
    want = _named(fixed, expected(fixed["ids"], D, D))
    assert _named(fixed, v1_ids(c, "2025-07-01T00:00:00", "2025-07-02T00:00:00")) == want
    page = heatmap(c, "2025-07-01T00:00:00", "2025-07-02T00:00:00")
    assert not isinstance(page, Failed), page
    assert _named(fixed, page[1]) == want
    r = c.get("/ogc/collections/reports/items", params={"datetime": "2025-07-01T00:00:00/2025-07-02T00:00:00"})
    assert r.status_code == 400, r.text
    r = c.get("/open311/v2/requests.json", params={"start_date": "2025-07-01T00:00:00"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("path,params", [
    ("/v1/reports", {"since": "2025-07-32"}),
    ("/v1/reports", {"until": "yesterday"}),
    ("/ogc/collections/reports/items", {"datetime": "2025-02-30"}),
    ("/open311/v2/requests.json", {"end_date": "2025-13-01"}),
    ("/maps/heatmap", {"since": "2025-07-1"}),
])
def test_bad_dates_are_refused(fixed, path, params):
    r = fixed["client"].get(path, params=params)
    assert 400 <= r.status_code < 500 and r.status_code not in (404, 405), r.text
    (name,) = params
    assert name in r.text


# ================================================================== property: /v1 = /ogc = /open311
DAY0 = date(2024, 2, 26)  # the days around a month end and a leap day


@pytest.fixture(scope="module")
def prop(tmp_path_factory, zone_index):
    """One SQLite store and app for every example; reports accumulate across examples."""
    app = create_app(index=zone_index, database_url=f"sqlite:///{tmp_path_factory.mktemp('time_rule') / 'zonechief.sqlite'}")
    services = app.state.services
    with TestClient(app) as client:
        yield {"client": client, "services": services, "index": zone_index, "seeded": {}}
    services.db.engine.dispose()


EDGES = [timedelta(0), US, -US, timedelta(seconds=1), -timedelta(seconds=1), timedelta(hours=8), -timedelta(hours=8),
         timedelta(hours=8) - US, timedelta(hours=16), timedelta(hours=23, minutes=59, seconds=59)]
instants = st.builds(
    lambda day, off, tz: (datetime.combine(DAY0 + timedelta(days=day), time(0), CST) + off).astimezone(tz),
    st.integers(0, 5),
    st.one_of(st.sampled_from(EDGES), st.timedeltas(timedelta(0), timedelta(days=1) - US)),
    st.sampled_from([UTC, CST, timezone(timedelta(hours=-5))]))  # the offset a report was filed with is irrelevant


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(new=st.lists(instants, min_size=1, max_size=5), first=st.integers(-1, 6), span=st.integers(0, 3),
       interval=st.booleans())
def test_v1_ogc_and_open311_agree_on_random_dates(prop, new, first, span, interval):
    ids = seed(prop["services"], prop["index"], {str(k): t for k, t in enumerate(new)})
    prop["seeded"].update({i: new[int(k)] for k, i in ids.items()})
    start = (DAY0 + timedelta(days=first)).isoformat()
    end = (DAY0 + timedelta(days=first + span)).isoformat()
    lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    want = {i for i, t in prop["seeded"].items() if lo <= day_of(t) <= hi}
    c = prop["client"]
    got = {"v1": v1_ids(c, start, end),
           "ogc": ogc_ids(c, f"{start}/{end}" if interval or start != end else start),
           "open311": open311_ids(c, start, end)}
    assert got == {k: want for k in got}
