"""The citizen's handle on a report (issue 15), on SQLite and on a real PostGIS: tracking tokens,
the answer rule (zonechief.feedback), photos in the media store, the JSON faces and Open311.

The HTML pages over the same services are tested in tests/api/test_citizen_pages.py.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from store.keys import create_key
from store.models import Report
from zonechief.feedback import ANSWER_WINDOW, FeedbackConflict, FeedbackIn, answer_state
from zonechief.photos import Photo
from zonechief.reports import ReportIn, TokenNotFound, report_to_dict
from zonechief.settings import Settings

TOKEN = re.compile(r"^[0-9a-f]{32}$")
TOILET = "DGCS-441900112-WC003"  # facility ZMT-WC-03 in zone ZMT-03
T0 = datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def live(store_url, zone_index, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    app = create_app(index=zone_index, database_url=store_url,
                     settings=Settings(media_dir=media, public_url="https://zc.example.cn"))
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "test staff")
        _, other_chief = create_key(s, "staff", "chief QS-C02", chief_id="QS-C02")
        _, public = create_key(s, "public", "a client system")
    with TestClient(app) as client:
        yield {"client": client, "services": services, "reports": services.reports, "media": media,
               "staff": {"X-API-Key": staff}, "other_chief": {"X-API-Key": other_chief}, "public_key": public}


def jpeg(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def file_report(live, **kw) -> Report:
    photos = kw.pop("photos", ())
    data = ReportIn(source="service_code", category=kw.pop("category", "03001"),
                    location={"service_code": kw.pop("code", TOILET)}, **kw)
    r, created = live["reports"].create(data, photos=photos)
    assert created
    return r


def resolve(live, r: Report, note="已清理 / cleaned", now=None) -> Report:
    svc = live["reports"]
    if r.status == "assigned":
        svc.transition(r.id, "in_progress", "chief", now=now)
    return svc.transition(r.id, "resolved", "chief", note, now=now)


# ------------------------------------------------------------------ tokens
def test_every_report_gets_its_own_unguessable_token(live):
    a, b = file_report(live), file_report(live)
    assert TOKEN.match(a.tracking_token) and TOKEN.match(b.tracking_token)
    assert a.tracking_token != b.tracking_token
    assert live["reports"].by_token(a.tracking_token).id == a.id


def test_bulk_imports_and_demo_reports_get_distinct_tokens(live):
    from zonechief.bulk import seed_demo

    res = seed_demo(live["reports"], 300, seed=7, now=T0)
    assert res.inserted == 300
    with live["services"].db.engine.connect() as c:
        tokens = c.execute(sa.select(Report.tracking_token)).scalars().all()
    assert all(t is not None and TOKEN.match(t) for t in tokens)
    assert len(set(tokens)) == len(tokens)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
def test_a_forged_token_finds_nothing(live, text):
    with pytest.raises(TokenNotFound):
        live["reports"].by_token(text)


def test_forged_and_malformed_tokens_are_404_on_every_face(live):
    c = live["client"]
    for token in ("0" * 32, "not-a-token", "%27%20OR%201=1--", "A" * 32):
        for r in (c.get(f"/v1/track/{token}"), c.post(f"/v1/track/{token}/feedback", json={"outcome": "fixed", "rating": 5}),
                  c.get(f"/t/{token}/photos/1")):
            assert r.status_code == 404, (token, r.status_code, r.text)


# ------------------------------------------------------------------ the answer rule
@given(st.sampled_from(["new", "assigned", "in_progress", "resolved", "closed", "rejected", "duplicate"]),
       st.none() | st.integers(0, 30), st.none() | st.integers(0, 30), st.integers(0, 30))
def test_answer_state_against_the_rule_as_written(status, resolved_day, first_day, now_day):
    day = lambda d: None if d is None else T0 + timedelta(days=d)  # noqa: E731
    s = answer_state(status, day(resolved_day), day(first_day), day(now_day))
    if status not in ("resolved", "closed"):
        expected = False
    elif first_day is None or (resolved_day is not None and resolved_day > first_day):
        expected = True  # a first answer, or a new round after a new resolution
    else:
        expected = timedelta(days=now_day - first_day) <= ANSWER_WINDOW
    assert s.open == expected
    assert (s.reason is None) == s.open or s.replaces


def test_no_answer_before_resolution(live):
    r = file_report(live)
    with pytest.raises(FeedbackConflict, match="resolved"):
        live["reports"].give_feedback(r.tracking_token, FeedbackIn(outcome="fixed", rating=5))
    got = live["client"].post(f"/v1/track/{r.tracking_token}/feedback", json={"outcome": "fixed", "rating": 5})
    assert got.status_code == 409 and got.headers["content-type"].startswith("application/problem+json")
    assert live["reports"].get(r.id).satisfaction is None


def test_an_answer_is_stored_and_replaced_within_the_window_only(live):
    svc = live["reports"]
    r = resolve(live, file_report(live))
    t = datetime.now(timezone.utc)
    first = svc.give_feedback(r.tracking_token, FeedbackIn(outcome="partly_fixed", rating=3, comment="还有味道"), now=t)
    assert (first.satisfaction, first.rating, first.rating_comment, first.status) == ("partly_fixed", 3, "还有味道", "resolved")
    second = svc.give_feedback(r.tracking_token, FeedbackIn(outcome="fixed", rating=5), now=t + timedelta(days=6))
    assert (second.satisfaction, second.rating, second.rating_comment) == ("fixed", 5, None)
    assert second.first_rated_at == first.first_rated_at  # the window runs from the first answer
    with pytest.raises(FeedbackConflict, match="7"):
        svc.give_feedback(r.tracking_token, FeedbackIn(outcome="fixed", rating=1), now=t + timedelta(days=8))
    assert svc.get(r.id).rating == 5


def test_not_fixed_reopens_with_the_comment_and_a_new_resolution_opens_a_new_round(live):
    svc = live["reports"]
    r = resolve(live, file_report(live))
    t = datetime.now(timezone.utc)
    got = svc.give_feedback(r.tracking_token, FeedbackIn(outcome="not_fixed", rating=1, comment="门还是坏的"), now=t)
    assert got.status == "in_progress"
    last = got.history[-1]
    assert (last.status, last.actor) == ("in_progress", "citizen") and "门还是坏的" in last.note and "not fixed" in last.note
    with pytest.raises(FeedbackConflict):  # in progress again: no answer until it is resolved again
        svc.give_feedback(r.tracking_token, FeedbackIn(outcome="fixed", rating=5), now=t + timedelta(hours=1))
    later = t + timedelta(days=10)
    svc.transition(r.id, "resolved", "chief", "换了门锁", now=later)
    again = svc.give_feedback(r.tracking_token, FeedbackIn(outcome="fixed", rating=4), now=later + timedelta(hours=2))
    assert (again.satisfaction, again.status) == ("fixed", "resolved")
    assert again.first_rated_at > got.first_rated_at


def test_answers_on_closed_reports_are_kept_without_reopening(live):
    svc = live["reports"]
    r = resolve(live, file_report(live))
    svc.transition(r.id, "closed", "chief")
    got = svc.give_feedback(r.tracking_token, FeedbackIn(outcome="not_fixed", rating=2))
    assert (got.status, got.satisfaction) == ("closed", "not_fixed")


def test_the_answer_is_for_staff_only(live):
    c = live["client"]
    r = resolve(live, file_report(live))
    assert c.post(f"/v1/track/{r.tracking_token}/feedback",
                  json={"outcome": "fixed", "rating": 4, "comment": "谢谢"}).status_code == 200
    public, staff = c.get(f"/v1/reports/{r.id}").json(), c.get(f"/v1/reports/{r.id}", headers=live["staff"]).json()
    assert "feedback" not in public and "tracking_url" not in public
    assert staff["feedback"]["outcome"] == "fixed" and staff["feedback"]["comment"] == "谢谢"
    assert staff["tracking_url"] == f"https://zc.example.cn/t/{r.tracking_token}"
    listed = c.get("/v1/reports", params={"limit": 1000}, headers=live["staff"]).json()["items"]
    assert next(x for x in listed if x["id"] == r.id)["feedback"]["rating"] == 4


def test_the_citizens_comment_is_not_public(live):
    c = live["client"]
    r = resolve(live, file_report(live))
    assert c.post(f"/v1/track/{r.tracking_token}/feedback",
                  json={"outcome": "not_fixed", "rating": 1, "comment": "我家就在隔壁302室"}).status_code == 200
    public = c.get(f"/v1/reports/{r.id}").json()
    assert "302" not in str(public) and public["history"][-1]["actor"] == "citizen"
    o311 = c.get(f"/open311/v2/requests/{r.id}.json").json()[0]
    assert "302" not in str(o311)
    assert "302" in str(c.get(f"/v1/reports/{r.id}", headers=live["staff"]).json()["history"])
    assert "302" in str(c.get(f"/v1/track/{r.tracking_token}").json()["history"])  # the citizen's own


@pytest.mark.parametrize("body", [{"outcome": "fixed", "rating": 0}, {"outcome": "fixed", "rating": 6},
                                  {"outcome": "great", "rating": 5}, {"outcome": "fixed"},
                                  {"outcome": "fixed", "rating": 5, "comment": "x" * 1001},
                                  {"outcome": "fixed", "rating": 5, "extra": 1}])
def test_bad_answers_are_422(live, body):
    r = resolve(live, file_report(live))
    got = live["client"].post(f"/v1/track/{r.tracking_token}/feedback", json=body)
    assert got.status_code == 422
    assert live["reports"].get(r.id).satisfaction is None


# ------------------------------------------------------------------ the tracking view
def test_the_tracking_view_shows_plain_words_and_nothing_private(live):
    c = live["client"]
    r = file_report(live, description="门坏了", reporter={"name": "李女士", "phone": "13900000000"})
    live["reports"].transition(r.id, "in_progress", "chief", "班组已出发")
    live["reports"].transition(r.id, "resolved", "chief", "已修好门锁")
    v = c.get(f"/v1/track/{r.tracking_token}").json()
    assert v["label_zh"] == "已处理完成" and v["label_en"] == "resolved" and v["can_answer"]
    assert v["chief"]["phone"] and v["zone_id"] == "ZMT-03" and v["category_name"] == "公共厕所异常"
    assert v["resolution"]["note"] == "已修好门锁"
    text = str(v)
    assert "13900000000" not in text and "李女士" not in text
    assert [h["note"] for h in v["history"]][-2:] == ["班组已出发", "已修好门锁"]  # status notes are the public word
    assert str(r.id) not in [v.get("id")]  # the id is not part of the view
    assert "id" not in v


# ------------------------------------------------------------------ photos
def test_photos_are_stored_once_by_content_and_served_to_staff_and_the_tracking_link_only(live):
    c, svc = live["client"], live["reports"]
    data = jpeg()
    photo = Photo(data, "image/jpeg", 64, 48)
    a = file_report(live, photos=[photo])
    b = file_report(live, photos=[photo, Photo(jpeg((0, 0, 200)), "image/jpeg", 64, 48)])
    files = [p for p in live["media"].rglob("*") if p.is_file()]
    assert sorted(p.read_bytes() for p in files if p.read_bytes() in (data,)) == [data]  # one file for both reports
    assert len(b.media) == 2 and a.media[0].sha256 == b.media[0].sha256
    pub = c.get(f"/v1/reports/{a.id}").json()
    assert pub["photo_count"] == 1 and "photos" not in pub
    staff = c.get(f"/v1/reports/{a.id}", headers=live["staff"]).json()
    url = staff["photos"][0]["url"]
    assert c.get(url).status_code == 401
    assert c.get(url, headers=live["other_chief"]).status_code == 403  # a chief's key: its own reports only
    got = c.get(url, headers=live["staff"])
    assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "image/jpeg"
    mine = c.get(f"/t/{a.tracking_token}/photos/{a.media[0].id}")
    assert mine.status_code == 200 and mine.content == data
    assert c.get(f"/t/{a.tracking_token}/photos/{b.media[1].id}").status_code == 404  # another report's photo
    assert svc.get(a.id).media[0].exif_lon is None


def test_a_photo_taken_far_away_is_noted_for_staff_and_never_moves_the_report(live):
    far = Photo(jpeg(), "image/jpeg", 64, 48, exif_lon=114.30, exif_lat=23.20)
    near_lon, near_lat = live["services"].facilities.set_index("service_code").geometry[TOILET].coords[0]
    near = Photo(jpeg((1, 2, 3)), "image/jpeg", 64, 48, exif_lon=near_lon + 0.001, exif_lat=near_lat)
    r = file_report(live, photos=[near, far])
    d = report_to_dict(live["reports"].get(r.id), personal=True)
    assert d["point"]["lon"] == pytest.approx(near_lon) and d["zone_id"] == "ZMT-03"
    assert d["photos"][0]["exif_position"]["distance_m"] == pytest.approx(102, abs=3)
    assert d["photos"][1]["exif_position"]["distance_m"] > 20_000
    assert len(d["photo_notes"]) == 1 and "photo 2" in d["photo_notes"][0] and "km" in d["photo_notes"][0]
    assert not report_to_dict(live["reports"].get(r.id), personal=False).get("photo_notes")


def test_staff_add_a_resolution_photo_through_the_api(live):
    c = live["client"]
    r = file_report(live)
    got = c.post(f"/v1/reports/{r.id}/photos", headers=live["staff"],
                 files=[("photo", ("fixed.jpg", jpeg(size=(3000, 1000)), "image/jpeg"))], data={"kind": "resolution"})
    assert got.status_code == 200, got.text
    ph = got.json()["photos"]
    assert [(p["kind"], p["width"], p["height"]) for p in ph] == [("resolution", 2048, 683)]
    v = c.get(f"/v1/track/{r.tracking_token}").json()
    assert [p["kind"] for p in v["photos"]] == ["resolution"]
    assert c.get(v["photos"][0]["url"]).status_code == 200


@pytest.mark.parametrize("files, status", [
    ([("photo", ("x.jpg", b"<html>not an image</html>", "image/jpeg"))], 415),
    ([("photo", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(4)], 413),
])
def test_bad_photo_uploads_change_nothing(live, files, status):
    c = live["client"]
    r = file_report(live)
    got = c.post(f"/v1/reports/{r.id}/photos", headers=live["staff"], files=files)
    assert got.status_code == status and got.headers["content-type"].startswith("application/problem+json")
    assert live["reports"].get(r.id).media == []
    assert c.post(f"/v1/reports/{r.id}/photos", files=files[:1]).status_code == 401


def test_the_creator_gets_the_tracking_link(live):
    c = live["client"]
    body = {"source": "service_code", "category": "03001", "location": {"service_code": TOILET},
            "idempotency_key": "wx-track-1"}
    first, again = c.post("/v1/reports", json=body), c.post("/v1/reports", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["tracking_url"] == again.json()["tracking_url"]
    assert first.json()["tracking_url"].startswith("https://zc.example.cn/t/")
    token = first.json()["tracking_url"].rsplit("/", 1)[1]
    assert c.get(f"/v1/track/{token}").json()["status"] == "assigned"


def test_a_reused_idempotency_key_with_another_report_is_409_and_leaks_nothing(live):
    c = live["client"]
    body = {"source": "service_code", "category": "03001", "location": {"service_code": TOILET},
            "description": "门坏了", "idempotency_key": "order-1"}
    first = c.post("/v1/reports", json=body)
    guess = c.post("/v1/reports", json={**body, "description": "", "category": "06010"})
    assert first.status_code == 201 and guess.status_code == 409
    assert "tracking" not in guess.text and first.json()["tracking_url"].rsplit("/", 1)[1] not in guess.text
    assert c.post("/v1/reports", json=body).json()["tracking_url"] == first.json()["tracking_url"]  # a true retry
    o311 = c.post("/open311/v2/requests.json", headers={"Idempotency-Key": "order-1"},
                  data={"api_key": live["public_key"], "service_code": "06010", "address_id": TOILET})
    assert o311.status_code == 409 and first.json()["tracking_url"] not in o311.text


# ------------------------------------------------------------------ Open311
def test_open311_gives_the_tracking_link_and_photos_to_the_filer_and_staff_only(live):
    c = live["client"]
    got = c.post("/open311/v2/requests.json", data={"api_key": live["public_key"], "service_code": "03001",
                                                    "address_id": TOILET, "media_url": "https://img.example/1.jpg"})
    assert got.status_code == 201
    notice = got.json()[0]["service_notice"]
    rid = int(got.json()[0]["service_request_id"])
    r = live["reports"].get(rid)
    assert "ZMT-03" in notice and notice.endswith(f"https://zc.example.cn/t/{r.tracking_token}")
    live["reports"].add_photos(rid, [Photo(jpeg((9, 9, 9)), "image/jpeg", 64, 48)], kind="citizen")
    public = c.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert r.tracking_token not in public["service_notice"] and public["media_url"] == "https://img.example/1.jpg"
    staff = c.get(f"/open311/v2/requests/{rid}.json", params={"api_key": live["staff"]["X-API-Key"]}).json()[0]
    assert staff["service_notice"].endswith(r.tracking_token)
    assert re.fullmatch(rf"https://zc\.example\.cn/v1/reports/{rid}/photos/\d+", staff["media_url"])
    listed = c.get("/open311/v2/requests.json", params={"service_request_id": str(rid)},
                   headers=live["staff"]).json()[0]
    assert listed["media_url"] == staff["media_url"]
    assert c.get(f"/open311/v2/requests/{rid}.json", params={"api_key": "bogus"}).status_code == 403


def test_access_logs_do_not_keep_tracking_tokens():
    import logging.config

    from zonechief.cli_serve import _log_config

    cfg = _log_config(pids=True)
    cfg["handlers"]["access"] = {**cfg["handlers"]["access"], "class": "logging.handlers.BufferingHandler",
                                 "capacity": 10}
    cfg["handlers"]["access"].pop("stream", None)
    logging.config.dictConfig(cfg)
    handler = logging.getLogger("uvicorn.access").handlers[0]
    token = "4f88fb0d68acbadcf98bd11eca8c99b4"
    for path in (f"/t/{token}?filed=1", f"/v1/track/{token}/feedback", f"/t/{token}/photos/3"):
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.1", "GET", path, "1.1", 200)
    lines = [handler.format(r) for r in handler.buffer]
    assert len(lines) == 3 and all(token not in line and "/4f88…" in line for line in lines)
