"""The chief's side over HTTP, on both stores: the event stream (/v1/chiefs/{id}/events, read over real HTTP from
a uvicorn server: a stream never ends, which TestClient cannot read), the chief's page (/chief: sign-in, cookie,
CSRF, forms that accept and resolve a report with a note and a photo), and the stream's high-water mark
(zonechief.event_stream) with event ids made visible out of order.
"""
from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from api.chief_pages import csrf_token
from api.deps import SESSION_COOKIE
from store.db import Database, migrate
from store.keys import create_key
from store.models import ApiKey, OutboxEvent
from store.outbox import OutboxRepository
from store.sessions import StaffSessions
from tests.helpers import LiveServer, inner, pg_database
from zonechief.event_stream import GAP_WAIT_S, EventStream, HighWater
from zonechief.settings import Settings

CHIEF_A, ZONE_A = "ZMT-C01", "ZMT-01"
CHIEF_B, ZONE_B = "ZMT-C02", "ZMT-02"


def jpeg(w=320, h=240) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 120, 180)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def live(store_url, zone_index, tmp_path_factory):
    """(TestClient, services, live server URL, keys by name) on one app and store."""
    app = create_app(index=zone_index, database_url=store_url,
                     settings=Settings(media_dir=tmp_path_factory.mktemp("media"), rate_limit_per_minute=0))
    services = app.state.services
    keys = {}
    with services.db.sessions.begin() as s:
        for name, role, chief in (("a", "staff", CHIEF_A), ("b", "staff", CHIEF_B), ("unbound", "staff", None),
                                  ("admin", "admin", None), ("public", "public", None), ("revoke", "staff", CHIEF_A)):
            keys[name] = create_key(s, role, f"test {name}", chief_id=chief)[1]
    try:
        with TestClient(app) as client, LiveServer(app) as srv:
            yield client, services, srv.url, keys
    finally:
        services.db.engine.dispose()


def file_report(services, zone_index, zone: str, text: str = "垃圾") -> int:
    from zonechief.reports import ReportIn

    lon, lat = inner(zone_index, zone)
    data = ReportIn(source="gps", category="06010", description=text, location={"lon": lon, "lat": lat},
                    reporter={"name": "王先生", "phone": "138 0000 0001"})
    return services.reports.create(data, actor="test")[0].id


def chief_event_ids(services, chief_id: str) -> list[int]:
    return [e.id for e in services.db.outbox.events_after(0, chief_id, 10_000)]


def read_stream(url: str, want: int, headers=None, cookies=None, after=None, wait_s: float = 8.0):
    """Events of a stream: [(id, type, payload)], until `want` arrived and nothing more came for 0.6 s, or wait_s.

    `after()` runs once, when the first bytes have come (the stream has started). Lines are read in a thread,
    so that waiting for more never breaks the response's iterator (a read timeout would)."""
    got: list = []
    lines: queue.Queue = queue.Queue()
    deadline = time.monotonic() + wait_s
    with httpx.Client(cookies=cookies, timeout=httpx.Timeout(10.0, read=60.0)) as c, \
            c.stream("GET", url, headers=headers or {}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")

        def pump():
            try:
                for line in r.iter_lines():
                    lines.put(line)
            except httpx.HTTPError:
                pass  # closed by the test

        threading.Thread(target=pump, daemon=True).start()
        try:
            _collect(lines, got, want, deadline, after)
        finally:  # unblock the pump's read and tell the server at once (closing alone waits for that read)
            r.extensions["network_stream"].get_extra_info("socket").shutdown(socket.SHUT_RDWR)
    return got


def _collect(lines: queue.Queue, got: list, want: int, deadline: float, after) -> None:
    block: dict = {}
    started = False
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.6)
        except queue.Empty:
            if len(got) >= want:
                break
            continue
        if not started:
            started = True
            if after:
                after()
        if line == "":
            if "id" in block:
                got.append((int(block["id"]), block["event"], json.loads(block["data"])))
            block = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            block[k] = v


# ------------------------------------------------------------------ the stream
def test_replay_after_last_event_id_is_exactly_the_chiefs_later_events_in_order(live, zone_index):
    client, services, url, keys = live
    for zone in (ZONE_A, ZONE_B, ZONE_A, ZONE_A, ZONE_B):
        file_report(services, zone_index, zone)
    rid = file_report(services, zone_index, ZONE_A)
    services.reports.transition(rid, "in_progress", "test")
    mine = chief_event_ids(services, CHIEF_A)
    assert len(mine) == 9  # 4 reports created and assigned, one accepted
    cut = mine[3]
    events = f"{url}/v1/chiefs/{CHIEF_A}/events"
    got = read_stream(events, len(mine) - 4, headers={"X-API-Key": keys["a"], "Last-Event-ID": str(cut)})
    assert [g[0] for g in got] == [i for i in mine if i > cut]
    assert {g[2]["report"]["chief_id"] for g in got} == {CHIEF_A}
    assert got[-1][1] == "report.status_changed" and got[-1][2]["change"] == {
        "from": "assigned", "to": "in_progress", "actor": "test", "note": None}
    assert all(g[1] == g[2]["type"] for g in got)
    # ?last_event_id= does the same, for an unbound staff key and an admin key; the header wins over it.
    for who in ("unbound", "admin"):
        again = read_stream(f"{events}?last_event_id={mine[-3]}", 2, headers={"X-API-Key": keys[who]})
        assert [g[0] for g in again] == mine[-2:]
    header_wins = read_stream(f"{events}?last_event_id=0", 1,
                              headers={"X-API-Key": keys["a"], "Last-Event-ID": str(mine[-2])})
    assert [g[0] for g in header_wins] == mine[-1:]


def test_a_new_report_reaches_an_open_stream_and_other_chiefs_do_not(live, zone_index):
    client, services, url, keys = live
    t = {}

    def file_both():
        t["sent"] = time.monotonic()
        t["b"] = file_report(services, zone_index, ZONE_B, "别人的")
        t["a"] = file_report(services, zone_index, ZONE_A, "新的")

    got = read_stream(f"{url}/v1/chiefs/{CHIEF_A}/events", 2, headers={"X-API-Key": keys["a"]}, after=file_both)
    assert [(g[1], g[2]["report"]["id"]) for g in got] == [("report.created", t["a"]), ("report.assigned", t["a"])]
    assert got[0][2]["report"]["description"] == "新的" and "reporter" not in got[0][2]["report"]


def test_who_may_follow_a_chief(live):
    client, services, url, keys = live
    path = f"/v1/chiefs/{CHIEF_A}/events"
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": "zc_nope_nope"}).status_code == 401
    r = client.get(path, headers={"X-API-Key": keys["b"]})
    assert r.status_code == 403 and CHIEF_B in r.json()["detail"]
    assert client.get(path, headers={"X-API-Key": keys["public"]}).status_code == 403
    assert client.get("/v1/chiefs/NOBODY/events", headers={"X-API-Key": keys["admin"]}).status_code == 404
    bad = client.get(path, headers={"X-API-Key": keys["a"], "Last-Event-ID": "abc"})
    assert bad.status_code == 422


def test_a_database_outage_ends_the_stream_and_it_resumes_after_it(zone_index, tmp_path_factory):
    from tests.faultproxy import FaultProxy
    from tests.helpers import PG_ADMIN_URL

    admin = sa.engine.make_url(PG_ADMIN_URL)
    with pg_database() as pg, FaultProxy((admin.host or "127.0.0.1", admin.port or 5432)) as proxy:
        proxied = sa.engine.make_url(pg).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = create_app(index=zone_index, database_url=proxied,
                         settings=Settings(media_dir=tmp_path_factory.mktemp("media"), rate_limit_per_minute=0))
        services = app.state.services
        with services.db.sessions.begin() as s:
            key = create_key(s, "staff", "outage", chief_id=CHIEF_A)[1]
        try:
            with LiveServer(app) as srv:
                first = file_report(services, zone_index, ZONE_A)
                url, got = f"{srv.url}/v1/chiefs/{CHIEF_A}/events", []
                with httpx.Client(timeout=httpx.Timeout(5.0, read=3.0)) as c, \
                        c.stream("GET", url, headers={"X-API-Key": key, "Last-Event-ID": "0"}) as r:
                    lines = r.iter_lines()
                    while len(got) < 2:
                        line = next(lines)
                        got += [int(line[4:])] if line.startswith("id: ") else []
                    proxy.mode = "reset"
                    t0 = time.monotonic()
                    with pytest.raises(StopIteration):  # the body ends (no hang) once a read fails
                        while True:
                            next(lines)
                    assert time.monotonic() - t0 < 3
                proxy.mode = "pass"
                assert chief_event_ids(services, CHIEF_A)[:2] == got and services.reports.get(first).id == first
                second = file_report(services, zone_index, ZONE_A)
                resumed = read_stream(url, 2, headers={"X-API-Key": key, "Last-Event-ID": str(got[-1])})
                assert [g[2]["report"]["id"] for g in resumed] == [second, second]
        finally:
            proxy.mode = "pass"
            services.db.engine.dispose()


# ------------------------------------------------------------------ the page: signing in
def sign_in(client, key: str):
    page = client.get("/chief")
    assert page.status_code == 200 and 'name="key"' in page.text
    token = BeautifulSoup(page.text, "html.parser").find("input", {"name": "csrf"})["value"]
    return client.post("/chief/login", data={"key": key, "csrf": token}, follow_redirects=False)


def set_cookies(r) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}


def csrf_of(html: str) -> str:
    return BeautifulSoup(html, "html.parser").find("input", {"name": "csrf"})["value"]


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(live):
    _, services, _, keys = live
    with TestClient(live[0].app, base_url="https://testserver") as c:  # as if behind https
        r = sign_in(c, keys["a"])
        assert r.status_code == 303 and r.headers["location"] == "/chief"
        cookie = set_cookies(r)[SESSION_COOKIE]
        flags = [f.strip().lower() for f in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "secure" in flags and "path=/" in flags
        assert "max-age=43200" in flags
        token = c.cookies[SESSION_COOKIE]
        assert keys["a"] not in cookie and StaffSessions(services.db.sessions).resolve(token, datetime.now(timezone.utc))
        page = c.get("/chief")
        assert "片长 ZMT-01" in page.text and f"/v1/chiefs/{CHIEF_A}/events" in page.text
        assert c.post("/chief/logout", data={}, follow_redirects=False).status_code == 403  # no CSRF token
        out = c.post("/chief/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and 'zc_staff=""' in set_cookies(out)[SESSION_COOKIE]
        assert StaffSessions(services.db.sessions).resolve(token, datetime.now(timezone.utc)) is None
        c.cookies.set(SESSION_COOKIE, token)  # a copy of the old cookie signs nobody in
        assert 'name="key"' in c.get("/chief").text
    with TestClient(live[0].app) as c:  # plain http: not Secure (the browser would drop it)
        cookie = set_cookies(sign_in(c, keys["a"]))[SESSION_COOKIE].lower()
        assert "secure" not in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_sign_in_refusals(live):
    _, _, _, keys = live
    with TestClient(live[0].app) as c:
        bad = sign_in(c, "zc_00000000_wrong")
        assert bad.status_code == 401 and "密钥无效" in bad.text and SESSION_COOKIE not in c.cookies
        pub = sign_in(c, keys["public"])
        assert pub.status_code == 403 and "不是工作人员密钥" in pub.text
        c.cookies.clear()
        forged = c.post("/chief/login", data={"key": keys["a"], "csrf": "x" * 64}, follow_redirects=False)
        assert forged.status_code == 403 and "text/html" in forged.headers["content-type"]
        page = c.get("/chief")  # a fresh form, but posted from another site's page
        cross = c.post("/chief/login", data={"key": keys["a"], "csrf": csrf_of(page.text)},
                       headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)
        assert cross.status_code == 403


def test_an_unbound_key_picks_a_chief_and_a_bound_one_sees_only_its_own(live, zone_index):
    _, services, _, keys = live
    rid_b = file_report(services, zone_index, ZONE_B)
    with TestClient(live[0].app) as c:
        sign_in(c, keys["unbound"])
        pick = BeautifulSoup(c.get("/chief").text, "html.parser")
        assert pick.find("a", href=f"/chief?chief={CHIEF_B}")
        queue = c.get(f"/chief?chief={CHIEF_B}")
        assert f'data-id="{rid_b}"' in queue.text
        assert c.get("/chief?chief=NOBODY").status_code == 404
    with TestClient(live[0].app) as c:  # an admin key signed in acts as unbound staff: no admin power in a cookie
        sign_in(c, keys["admin"])
        assert f'data-id="{rid_b}"' in c.get(f"/chief?chief={CHIEF_B}").text
        assert c.get("/v1/admin/webhooks").status_code == 403
        assert c.get("/v1/admin/webhooks", headers={"X-API-Key": keys["admin"]}).status_code == 200
    with TestClient(live[0].app) as c:
        sign_in(c, keys["a"])
        assert f'data-id="{rid_b}"' not in c.get(f"/chief?chief={CHIEF_B}").text  # its own queue whatever it asks
        assert c.get(f"/chief/reports/{rid_b}").status_code == 403


# ------------------------------------------------------------------ the page: acting on a report
def test_accept_then_resolve_with_a_note_and_a_photo_through_the_forms(live, zone_index):
    client, services, _, keys = live
    rid = file_report(services, zone_index, ZONE_A, "路灯不亮")
    with TestClient(live[0].app) as c:
        sign_in(c, keys["a"])
        queue = c.get("/chief")
        items = BeautifulSoup(queue.text, "html.parser").select("#queue li")
        ids = [int(li["data-id"]) for li in items]
        assert rid in ids and ids == sorted(ids)  # oldest first
        page = c.get(f"/chief/reports/{rid}")
        soup = BeautifulSoup(page.text, "html.parser")
        assert soup.find("a", href="tel:13800000001") and "王先生" in soup.get_text()
        token = csrf_of(page.text)
        assert token == csrf_token(c.cookies[SESSION_COOKIE])
        # Without the CSRF token, or with another session's: refused, nothing changes.
        assert c.post(f"/chief/reports/{rid}/status", data={"status": "in_progress"}).status_code == 403
        assert c.post(f"/chief/reports/{rid}/status", data={"status": "in_progress", "csrf": csrf_token("other")}
                      ).status_code == 403
        assert services.reports.get(rid).status == "assigned"
        # The cookie reads /v1 but does not change it: changes there need a key.
        assert c.patch(f"/v1/reports/{rid}", json={"status": "in_progress"}).status_code == 401
        r = c.post(f"/chief/reports/{rid}/status", data={"status": "in_progress", "csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/chief/reports/{rid}?done=in_progress"
        assert services.reports.get(rid).status == "in_progress"
        # Accepting twice is not offered: 409.
        assert c.post(f"/chief/reports/{rid}/status", data={"status": "in_progress", "csrf": token}).status_code == 409
        page = BeautifulSoup(c.get(f"/chief/reports/{rid}?done=in_progress").text, "html.parser")
        form = page.select_one("form.resolve")
        assert form["enctype"] == "multipart/form-data" and form.find("input", {"name": "photo"})
        r = c.post(f"/chief/reports/{rid}/status", data={"status": "resolved", "note": "已更换灯泡", "csrf": token},
                   files=[("photo", ("after.jpg", jpeg(), "image/jpeg"))], follow_redirects=False)
        assert r.status_code == 303
        rep = services.reports.get(rid)
        assert rep.status == "resolved" and rep.history[-1].note == "已更换灯泡"
        assert rep.history[-1].actor.startswith("key:")
        assert [m.kind for m in rep.media] == ["resolution"]
        shown = BeautifulSoup(c.get(f"/chief/reports/{rid}").text, "html.parser")
        img = shown.select_one(".photo-resolution img")["src"]
        photo = c.get(img)  # the staff photo URL, with the cookie
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert rid not in [int(li["data-id"]) for li in BeautifulSoup(c.get("/chief").text, "html.parser")
                           .select("#queue li")]
    assert client.get(img).status_code == 401  # not without it
    track = client.get(f"/v1/track/{rep.tracking_token}").json()
    assert track["resolution"]["note"] == "已更换灯泡" and [p["kind"] for p in track["photos"]] == ["resolution"]


def test_a_bad_photo_changes_nothing(live, zone_index):
    _, services, _, keys = live
    rid = file_report(services, zone_index, ZONE_A)
    services.reports.transition(rid, "in_progress", "test")
    with TestClient(live[0].app) as c:
        sign_in(c, keys["a"])
        token = csrf_of(c.get(f"/chief/reports/{rid}").text)
        r = c.post(f"/chief/reports/{rid}/status", data={"status": "resolved", "csrf": token},
                   files=[("photo", ("x.jpg", b"not an image", "image/jpeg"))])
        assert r.status_code in (415, 422) and "text/html" in r.headers["content-type"]
    assert services.reports.get(rid).status == "in_progress"


def test_a_revoked_key_ends_its_sessions(live, zone_index):
    _, services, _, keys = live
    rid = file_report(services, zone_index, ZONE_A)
    with TestClient(live[0].app) as c:
        sign_in(c, keys["revoke"])
        page = c.get(f"/chief/reports/{rid}")
        assert page.status_code == 200
        with services.db.sessions.begin() as s:
            s.execute(sa.update(ApiKey).where(ApiKey.prefix == keys["revoke"].split("_")[1]).values(revoked=True))
        assert 'name="key"' in c.get("/chief").text  # signed out
        assert c.get(f"/v1/chiefs/{CHIEF_A}/events").status_code == 401
        r = c.post(f"/chief/reports/{rid}/status", data={"status": "in_progress", "csrf": csrf_of(page.text)})
        assert r.status_code == 401
    assert services.reports.get(rid).status == "assigned"


# ------------------------------------------------------------------ the high-water mark
class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _bare(kind, tmp_path_factory):
    if kind == "sqlite":
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('hw') / 'hw.sqlite'}")
        migrate(db.engine)
        yield db
        db.engine.dispose()
        return
    with pg_database() as url:
        db = Database(url)
        migrate(db.engine)
        try:
            yield db
        finally:
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgis"], scope="module")
def outbox_db(request, tmp_path_factory):
    yield from _bare(request.param, tmp_path_factory)


def put(db, *ids, chief="C1", at=None):
    at = at or datetime.now(timezone.utc)
    with db.sessions.begin() as s:
        s.add_all([OutboxEvent(id=i, at=at, type="report.created", report_id=i, chief_id=chief, payload={"n": i},
                               fanned_out=True) for i in ids])


def clear(db):
    with db.sessions.begin() as s:
        s.execute(sa.delete(OutboxEvent))


def test_an_id_made_visible_late_is_sent_in_order_not_skipped(outbox_db):
    db, clock = outbox_db, Clock()
    clear(db)
    outbox = OutboxRepository.for_db(db)
    hw = HighWater(outbox, clock=clock, every_s=0)
    mine = EventStream(outbox, "C1", after=0, hw=hw)
    put(db, 1, 2, 4)  # 3 is drawn but not committed yet
    assert [e.id for e in mine.poll()] == [1, 2] and hw.current() == 2
    clock.t += GAP_WAIT_S - 1
    assert mine.poll() == []  # 4 waits for 3
    put(db, 3)
    assert [e.id for e in mine.poll()] == [3, 4]
    put(db, 6, 7)  # 5 never commits (rolled back)
    put(db, 8, chief="C2")
    assert mine.poll() == [] and hw.current() == 4
    clock.t += GAP_WAIT_S + 0.1
    assert [e.id for e in mine.poll()] == [6, 7] and hw.current() == 8
    late = EventStream(outbox, "C1", after=None, hw=hw)  # from now: nothing of the past
    assert late.poll() == []
    put(db, 9)
    assert [e.id for e in late.poll()] == [9] and [e.id for e in mine.poll()] == [9]


def test_the_first_mark_waits_for_gaps_among_recent_events_only(outbox_db):
    db, clock = outbox_db, Clock()
    clear(db)
    outbox = OutboxRepository.for_db(db)
    old = datetime.now(timezone.utc) - timedelta(seconds=GAP_WAIT_S * 3)
    put(db, 1, 2, 4, at=old)  # 3: rolled back long ago
    put(db, 5, 7)  # 6: maybe still in flight
    hw = HighWater(outbox, clock=clock, every_s=0)
    assert hw.current() == 5
    clock.t += GAP_WAIT_S + 0.1
    assert hw.current() == 7


def test_concurrent_transactions_commit_out_of_id_order_on_postgresql(tmp_path_factory):
    with pg_database() as url:
        db = Database(url)
        migrate(db.engine)
        try:
            outbox = OutboxRepository.for_db(db)
            stream = EventStream(outbox, "C1", after=0, hw=HighWater(outbox, every_s=0))
            now = datetime.now(timezone.utc)

            def event():
                return OutboxEvent(at=now, type="report.created", report_id=1, chief_id="C1", payload={},
                                   fanned_out=True)

            slow = db.sessions()
            slow.begin()
            first = event()
            slow.add(first)
            slow.flush()  # the lower id is drawn, its transaction still open
            with db.sessions.begin() as fast:
                second = event()
                fast.add(second)
            assert second.id > first.id
            assert stream.poll() == []  # the higher id is visible, but not sent before the lower one
            slow.commit()
            slow.close()
            assert [e.id for e in stream.poll()] == [first.id, second.id]
        finally:
            db.engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["commit", "rollback", "late"]), st.booleans()), min_size=1, max_size=12),
       st.randoms(use_true_random=False), st.integers(1, 4))
def test_every_event_committed_in_time_is_sent_once_in_id_order(tmp_path_factory, plan, rnd, keep):
    """Ids 1..n are drawn; each commits (in a shuffled order, polls between), rolls back, or commits too late.

    `keep`: how many settled events the mark keeps in memory; a stream behind them reads the store."""
    db = _sqlite_once(tmp_path_factory)
    clear(db)
    clock = Clock()
    outbox = OutboxRepository.for_db(db)
    stream = EventStream(outbox, "C1", after=0, hw=HighWater(outbox, clock=clock, every_s=0, keep=keep))
    ids = list(range(1, len(plan) + 1))
    order = ids[:]
    rnd.shuffle(order)
    sent: list[int] = []
    for i in order:
        fate, mine = plan[i - 1]
        if fate == "commit":
            put(db, i, chief="C1" if mine else "C2")
        sent += [e.id for e in stream.poll()]
        clock.t += 0.5
    clock.t += GAP_WAIT_S + 1
    sent += [e.id for e in stream.poll()]
    for i in ids:
        fate, mine = plan[i - 1]
        if fate == "late":
            put(db, i, chief="C1" if mine else "C2")  # after its gap was given up
    sent += [e.id for e in stream.poll()]
    clock.t += GAP_WAIT_S + 1  # rolled-back ids below a late one are given up in turn
    sent += [e.id for e in stream.poll()]
    top = max([i for i in ids if plan[i - 1][0] == "commit"], default=0)
    # A late id below the last one committed in time was given up; one above it is simply new.
    expected = [i for i in ids if plan[i - 1][1] and (plan[i - 1][0] == "commit" or
                                                      (plan[i - 1][0] == "late" and i > top))]
    assert sent == expected


_SQLITE: dict = {}


def _sqlite_once(tmp_path_factory):
    if "db" not in _SQLITE:
        _SQLITE["db"] = db = Database(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.sqlite'}")
        migrate(db.engine)
    return _SQLITE["db"]
