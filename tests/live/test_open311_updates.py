"""Open311 service request updates (mySociety's `GET servicerequestupdates` extension), on SQLite and PostGIS.

Reports get histories at chosen instants through the real Reports service (transitions, the citizen's
answer, resolution photos), each test in its own days so that the windows do not overlap.
"""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from store.keys import create_key
from store.models import Report, ReportEvent, ReportMedia
from zonechief.bulk import Intake, import_intakes
from zonechief.feedback import FeedbackIn, reopen_note
from zonechief.open311 import CST, request_view
from zonechief.open311_updates import FIELDS, public_note, resolution_photos, update_view
from zonechief.photos import Photo
from zonechief.reports import ReportIn
from zonechief.settings import Settings
from zonechief.workflow import TRANSITIONS

URL = "/open311/v2/servicerequestupdates"
PUBLIC_URL = "https://zc.example.cn"
TOILET = "DGCS-441900112-WC003"  # facility ZMT-WC-03 in zone ZMT-03


@pytest.fixture(scope="module")
def live(store_url, zone_index, tmp_path_factory):
    app = create_app(index=zone_index, database_url=store_url,
                     settings=Settings(media_dir=tmp_path_factory.mktemp("media"), public_url=PUBLIC_URL))
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "open311 updates staff")
        _, public = create_key(s, "public", "open311 updates app")
    with TestClient(app) as client:
        yield {"client": client, "reports": services.reports, "staff": staff, "public": public}


def jpeg(colour) -> Photo:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
    return Photo(buf.getvalue(), "image/jpeg", 64, 48)


def report_at(live, t0: datetime) -> Report:
    data = ReportIn(source="service_code", category="03001", location={"service_code": TOILET}, created_at=t0)
    r, created = live["reports"].create(data, now=t0)
    assert created and r.status == "assigned"
    return r


def get(live, fmt="json", key=None, **params):
    if key:
        params["api_key"] = key
    return live["client"].get(f"{URL}.{fmt}", params=params)


def updates(live, since: datetime, until: datetime, key=None) -> list[dict]:
    r = get(live, key=key, start_date=since.isoformat(), end_date=until.isoformat())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def error(r, code: int, fmt: str = "json") -> str:
    assert r.status_code == code, r.text
    if fmt == "xml":
        root = ET.fromstring(r.content)
        assert root.tag == "errors" and root.find("error/code").text == str(code)
        return root.find("error/description").text
    (e,) = r.json()
    assert e["code"] == code and e["description"]
    return e["description"]


# ------------------------------------------------------------------ a report's life
T1 = datetime(2026, 6, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def reopened(live):
    """A report resolved, reopened by its citizen's "not fixed", resolved again and closed, a photo per round."""
    svc = live["reports"]
    r = report_at(live, T1)
    h = timedelta(hours=1)
    svc.transition(r.id, "in_progress", "key:chief01", "班组已出发 / crew on the way", now=T1 + h)
    svc.add_photos(r.id, [jpeg((200, 0, 0))], now=T1 + 1.5 * h)  # before resolving: this round's
    svc.transition(r.id, "resolved", "key:chief01", "已清理 / cleaned", now=T1 + 2 * h)
    fb = FeedbackIn(outcome="not_fixed", rating=2, comment="还是很脏")
    svc.give_feedback(r.tracking_token, fb, now=T1 + 3 * h)
    svc.transition(r.id, "resolved", "key:chief01", "再次清理 / cleaned again", now=T1 + 5 * h)
    svc.add_photos(r.id, [jpeg((0, 0, 200))], now=T1 + 5.5 * h)  # after resolving: still this round's
    svc.transition(r.id, "closed", "key:admin01", "已归档 / filed", now=T1 + 6 * h)
    return svc.get(r.id), reopen_note(fb)


def test_fields_and_order_of_a_reopened_report(live, reopened):
    r, reopen = reopened
    got = updates(live, T1 - timedelta(minutes=1), T1 + timedelta(days=1))
    assert all(tuple(u) == FIELDS for u in got)  # the extension's names, in its order
    assert all(u["service_request_id"] == str(r.id) for u in got)
    assert [u["update_id"] for u in got] == [str(e.id) for e in r.history]
    assert [u["status"] for u in got] == ["open", "open", "open", "closed", "open", "closed", "closed"]
    times = [datetime.fromisoformat(u["updated_datetime"]) for u in got]
    assert times == [e.at for e in r.history] and times == sorted(times)
    assert all(u["updated_datetime"].endswith("+08:00") for u in got)  # W3C, with the offset
    # Public: every status note but the citizen's own answer (zonechief.tracking.note_for), and no photos.
    descriptions = [u["description"] for u in got]
    assert descriptions == [None if e.actor == "citizen" else e.note for e in r.history]
    assert descriptions[2:] == ["班组已出发 / crew on the way", "已清理 / cleaned", None, "再次清理 / cleaned again",
                                "已归档 / filed"] and reopen not in descriptions
    assert all(u["media_url"] is None for u in got)
    # The request's status_notes is the newest of these.
    (req,) = live["client"].get(f"/open311/v2/requests/{r.id}.json").json()
    assert req["status_notes"] == "已归档 / filed" == [d for d in descriptions if d][-1]


def test_staff_see_every_note_and_each_rounds_photo(live, reopened):
    r, reopen = reopened
    got = updates(live, T1 - timedelta(minutes=1), T1 + timedelta(days=1), key=live["staff"])
    assert [u["description"] for u in got] == [e.note for e in r.history]
    assert reopen in [u["description"] for u in got]  # the citizen's own answer: staff only
    first, second = sorted(m.id for m in r.media if m.kind == "resolution")
    base = f"{PUBLIC_URL}/v1/reports/{r.id}/photos"
    assert [u["media_url"] for u in got] == [None, None, None, f"{base}/{first}", None, f"{base}/{second}", None]
    with_photo = live["client"].get(f"/v1/reports/{r.id}/photos/{second}", headers={"X-API-Key": live["staff"]})
    assert with_photo.status_code == 200 and with_photo.headers["content-type"] == "image/jpeg"
    # A public key is the public's view; a bad one is the spec's 403.
    assert updates(live, T1 - timedelta(minutes=1), T1 + timedelta(days=1), key=live["public"]) == \
        updates(live, T1 - timedelta(minutes=1), T1 + timedelta(days=1))
    assert "api_key" in error(get(live, key="zc_nope_x"), 403)


def test_xml(live, reopened):
    r, _ = reopened
    resp = get(live, "xml", start_date=(T1 - timedelta(minutes=1)).isoformat(), end_date="2026-06-01")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/xml")
    assert resp.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(resp.content)
    assert root.tag == "service_request_updates"
    items = root.findall("request_update")
    assert [u.find("update_id").text for u in items] == [str(e.id) for e in r.history]
    assert all([c.tag for c in u] == list(FIELDS) for u in items)
    assert items[3].find("status").text == "closed" and items[3].find("description").text == "已清理 / cleaned"
    assert items[4].find("description").text is None  # the citizen's answer: an empty element
    assert items[3].find("media_url").text is None


# ------------------------------------------------------------------ the window
T2 = datetime(2026, 5, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 in Dongguan


def test_window_bounds(live):
    r = report_at(live, T2)
    done = live["reports"].transition(r.id, "rejected", "key:chief01", "不属于城管 / not ours", now=T2 + timedelta(hours=3))
    ids = [str(e.id) for e in done.history]
    at = T2 + timedelta(hours=3)
    # start inclusive, a datetime end inclusive of its own instant
    assert [u["update_id"] for u in updates(live, at, at)] == [ids[-1]]
    assert [u["update_id"] for u in updates(live, T2, at - timedelta(seconds=1))] == ids[:2]
    # a bare date is that whole day in Dongguan; Z and other offsets name the same instants
    day = get(live, start_date="2026-05-10", end_date="2026-05-10").json()
    assert [u["update_id"] for u in day] == ids and day[-1]["description"] == "不属于城管 / not ours"
    assert get(live, start_date="2026-05-11", end_date="2026-05-11").json() == []
    z = get(live, start_date="2026-05-10T02:00:00Z", end_date="2026-05-10T04:59:59Z").json()
    assert [u["update_id"] for u in z] == ids[:2]
    # one bound alone: 90 days from it
    assert ids[0] in [u["update_id"] for u in get(live, start_date="2026-02-10").json()]  # to 2026-05-11 00:00
    assert ids[0] not in [u["update_id"] for u in get(live, start_date="2026-02-09").json()]  # to 05-10 00:00
    assert ids[0] in [u["update_id"] for u in get(live, end_date="2026-08-07").json()]  # from 2026-05-10 00:00
    assert ids[0] not in [u["update_id"] for u in get(live, end_date="2026-08-08").json()]  # from 05-11 00:00


def test_default_window_is_the_last_90_days(live):
    now = datetime.now(timezone.utc)
    old, recent = report_at(live, now - timedelta(days=91)), report_at(live, now - timedelta(days=89))
    got = {u["service_request_id"] for u in get(live).json()}
    assert str(recent.id) in got and str(old.id) not in got


def test_at_most_1000_oldest_first(live):
    t3 = datetime(2025, 3, 1, 0, 0, tzinfo=timezone.utc)  # far from the other tests' days
    intakes = [Intake(i, ReportIn(source="service_code", category="03001", location={"service_code": TOILET},
                                  created_at=t3 + timedelta(minutes=i))) for i in range(1, 552)]
    assert import_intakes(live["reports"], intakes)[0].inserted == 551  # 1102 steps: new and assigned
    got = updates(live, t3, t3 + timedelta(days=1))
    assert len(got) == 1000
    expected = live["reports"].db.report_repo.events_between(t3, t3 + timedelta(days=1), limit=2000)
    assert len(expected) == 1102
    assert [u["update_id"] for u in got] == [str(e.id) for e in expected[:1000]]
    # the repository's next page starts after the last one
    rest = live["reports"].db.report_repo.events_between(t3, t3 + timedelta(days=1), limit=1000,
                                                         after=(expected[999].at, expected[999].id))
    assert [e.id for e in rest] == [e.id for e in expected[1000:]]
    xml = ET.fromstring(get(live, "xml", start_date=t3.isoformat(), end_date="2025-03-01").content)
    assert len(xml.findall("request_update")) == 1000


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("params,needle", [
    ({"start_date": "yesterday"}, "start_date"),
    ({"end_date": "2026-13-01"}, "end_date"),
    ({"start_date": "2026-05-01T00:00:00"}, "timezone"),
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "90 days"),
    ({"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, "after"),
    ({"start_date": "0001-01-01"}, "range"),
])
def test_bad_dates_in_spec_format(live, fmt, params, needle):
    assert needle in error(get(live, fmt, **params), 400, fmt)


def test_routes(live):
    c = live["client"]
    error(c.get(f"{URL}.csv"), 404)
    r = c.post(f"{URL}.json")
    assert "GET" in error(r, 405) and r.headers["allow"] == "GET"
    paths = c.get("/openapi.json").json()["paths"]
    assert "/open311/v2/servicerequestupdates.{fmt}" in paths


# ------------------------------------------------------------------ the note rule, as a property
def _histories():
    """Workflow-valid histories: (status, actor, note) steps from new, walking TRANSITIONS."""
    @st.composite
    def walk(draw):
        steps, status = [("new", "system", None)], "new"
        for _ in range(draw(st.integers(0, 8))):
            nexts = sorted(TRANSITIONS[status])
            if not nexts:
                break
            status = draw(st.sampled_from(nexts))
            steps.append((status, draw(st.sampled_from(["key:chief01", "citizen", "system"])),
                          draw(st.none() | st.text(min_size=1, max_size=5))))
        return steps
    return walk()


@settings(max_examples=200, deadline=None)
@given(_histories(), st.lists(st.integers(0, 600), max_size=4))
def test_notes_agree_with_status_notes_and_photos_with_their_round(steps, photo_minutes):
    t0 = datetime(2026, 1, 1, tzinfo=CST)
    r = Report(id=1, status=steps[-1][0], category="03001", description="", created_at=t0, updated_at=t0,
               zone_id="ZMT-03", tracking_token="0" * 32, location_input={})
    r.history = [ReportEvent(id=i + 1, report_id=1, status=s, actor=a, note=n, at=t0 + timedelta(minutes=60 * i))
                 for i, (s, a, n) in enumerate(steps)]
    r.media = [ReportMedia(id=j + 1, kind="resolution", created_at=t0 + timedelta(minutes=m))
               for j, m in enumerate(sorted(photo_minutes))]
    for staff, url in ((False, None), (True, PUBLIC_URL)):
        seen = [update_view(e, staff)["description"] for e in r.history]
        # GET requests' status_notes is the newest description the same caller reads in the updates
        assert request_view(r, {}, {}, url)["status_notes"] == next((d for d in reversed(seen) if d), None)
    assert all(public_note(e) is None for e in r.history if e.actor == "citizen")
    # each resolution shows at most one photo, never another round's, and no photo twice
    chosen = resolution_photos(r)
    assert set(chosen) <= {e.id for e in r.history if e.status == "resolved"}
    assert len({m.id for m in chosen.values()}) == len(chosen)
    for eid, m in chosen.items():
        i = next(k for k, e in enumerate(r.history) if e.id == eid)
        assert m.kind == "resolution"
        if i + 1 < len(r.history) and r.history[i + 1].status == "in_progress":  # reopened: the round ended
            assert m.created_at < r.history[i + 1].at
        prev = [k for k, e in enumerate(r.history[:i]) if e.status == "resolved"]
        if prev:  # the round began when the previous resolution was reopened
            assert m.created_at >= r.history[prev[-1] + 1].at
