"""zonechief.webhooks without a server: which events a filter takes (against a brute-force listing of
what it admits), the signature as a receiver checks it, when a failed delivery is tried again, and what
is sent (the JSON body with its event id, the WeCom message)."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
from datetime import datetime, timedelta, timezone

import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from store.models import Report
from zonechief import events
from zonechief import webhooks as W

ZONES = ["QS-01", "QS-02", "ZMT-07", None]  # None: a report not yet placed in a zone
CHIEFS = ["QS-C01", "QS-C02", "ZMT-C07", None]
CATEGORIES = ["06010", "01001", "04005"]
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


class Ev:
    """The fields of an OutboxEvent that `takes` reads."""

    def __init__(self, zone_id, chief_id, category, type_):
        self.zone_id, self.chief_id, self.category, self.type = zone_id, chief_id, category, type_


def admitted(flt: W.WebhookFilter) -> set[tuple]:
    """Brute force: every (zone, chief, category, type) a filter lets through, listed."""
    def axis(wanted, every):
        return wanted or every
    return set(itertools.product(axis(flt.zones, ZONES), axis(flt.chiefs, CHIEFS),
                                 axis(flt.categories, CATEGORIES), axis(flt.types, list(events.TYPES))))


def subsets(values):
    return st.lists(st.sampled_from([v for v in values if v is not None]), unique=True, max_size=3)


@settings(max_examples=200, deadline=None)
@given(zones=subsets(ZONES), chiefs=subsets(CHIEFS), categories=subsets(CATEGORIES), types=subsets(events.TYPES))
@example(zones=[], chiefs=[], categories=[], types=[])  # no filter: everything
def test_takes_exactly_what_the_filter_admits(zones, chiefs, categories, types):
    flt = W.WebhookFilter(zones=zones, chiefs=chiefs, categories=categories, types=types)
    stored = json.loads(json.dumps(flt.model_dump()))  # as the JSON column gives it back
    ok = admitted(flt)
    for combo in itertools.product(ZONES, CHIEFS, CATEGORIES, events.TYPES):
        assert W.takes(stored, Ev(*combo)) == (combo in ok), (stored, combo)


def test_filter_refuses_unknown_fields_and_types():
    with pytest.raises(ValueError):
        W.WebhookFilter.model_validate({"zone": ["QS-01"]})
    with pytest.raises(ValueError):
        W.WebhookFilter.model_validate({"types": ["report.deleted"]})


# ------------------------------------------------------------------ signature
def readme_verify(secret: str, body: bytes, header: str) -> bool:
    """The receiver's check as the README shows it."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


@settings(max_examples=50, deadline=None)
@given(secret=st.text(min_size=16, max_size=60), event_id=st.integers(1, 2**53), body=st.binary(max_size=500))
def test_signature_verifies_with_the_readme_recipe(secret, event_id, body):
    h = W.headers(event_id, "report.created", secret, body)
    assert h["X-Zonechief-Event-Id"] == str(event_id) and h["X-Zonechief-Event"] == "report.created"
    assert readme_verify(secret, body, h["X-Zonechief-Signature"])
    assert not readme_verify(secret, body + b" ", h["X-Zonechief-Signature"])  # tampered body
    assert not readme_verify(secret + "x", body, h["X-Zonechief-Signature"])  # another secret


# ------------------------------------------------------------------ retries
class Edge(random.Random):
    """A random source always at one end of the range asked for: the bounds of the jitter."""

    def __init__(self, high: bool):
        super().__init__(0)
        self.high = high

    def uniform(self, a, b):
        return b if self.high else a


def cap(attempts: int) -> float:
    return min(W.MAX_RETRY_S, W.FIRST_RETRY_S * 2 ** (attempts - 1))


def test_backoff_doubles_up_to_its_cap():
    highs = [(W.next_attempt(a, T0, T0, Edge(True)) - T0).total_seconds() for a in range(1, 40)]
    lows = [(W.next_attempt(a, T0, T0, Edge(False)) - T0).total_seconds() for a in range(1, 40)]
    assert highs[:4] == [1, 2, 4, 8] and lows[:4] == [0.5, 1, 2, 4]
    assert all(x <= y for x, y in itertools.pairwise(highs)) and all(x <= y for x, y in itertools.pairwise(lows))
    assert max(highs) == W.MAX_RETRY_S and max(lows) == W.MAX_RETRY_S / 2
    assert highs.index(W.MAX_RETRY_S) == 10  # 2**10 > 600: the 11th attempt waits the longest


@settings(max_examples=300, deadline=None)
@given(attempts=st.integers(1, 100_000), age_s=st.floats(0, 30 * 3600), seed=st.integers(0, 2**32))
@example(attempts=5000, age_s=60, seed=1)  # a long outage: many attempts, still a number of seconds
@example(attempts=3, age_s=24 * 3600 - 1.5, seed=2)  # the last retry may not pass the 24 h
@example(attempts=3, age_s=24 * 3600, seed=2)
def test_next_attempt_is_jittered_within_its_cap_and_never_past_24_hours(attempts, age_s, seed):
    now = T0 + timedelta(seconds=age_s)
    at = W.next_attempt(attempts, T0, now, random.Random(seed))
    if age_s >= W.GIVE_UP_AFTER.total_seconds():
        assert at is None
        return
    assert at is not None and now < at <= T0 + W.GIVE_UP_AFTER
    wait = (at - now).total_seconds()
    assert wait <= cap(min(attempts, 64)) + 1e-6
    if at < T0 + W.GIVE_UP_AFTER:
        assert wait >= cap(min(attempts, 64)) / 2 - 1e-6


# ------------------------------------------------------------------ what is sent
def a_report(**kw) -> Report:
    """A report as zonechief.reports leaves it, not stored: events only read its fields."""
    fields = dict(id=7, status="assigned", category="06010", description="公厕门口暴露垃圾", zone_id="QS-02",
                  village_code="441900003001", chief_id="QS-C02", geom=shapely.Point(113.75, 23.02),
                  location_input={"service_code": "GC-QS-0001"}, needs_review=False, created_at=T0,
                  tracking_token="tok123")
    fields.update(kw)
    return Report(**fields)


NAMES = {"06010": "暴露垃圾", "01001": "供水井盖异常"}


def test_json_body_carries_the_event_id_and_the_report():
    ev = events.on_created(a_report(), T0, "https://zc.example.cn")[1]
    data = W.body("json", 991, ev.payload, NAMES)
    got = json.loads(data)
    assert got["id"] == 991 and got["type"] == "report.assigned" and got["at"] == T0.isoformat()
    assert got["report"]["id"] == 7 and got["report"]["tracking_url"] == "https://zc.example.cn/t/tok123"
    assert got["change"] == {"zone_id": "QS-02", "chief_id": "QS-C02"}
    assert "reporter_phone" not in data.decode() and "reporter_name" not in data.decode()


@pytest.mark.parametrize("where,shown", [({"service_code": "GC-QS-0001"}, "GC-QS-0001"),
                                         ({"address": "东城街道东纵路1号"}, "东城街道东纵路1号"),
                                         ({"lon": 113.75, "lat": 23.02}, "113.75000, 23.02000")])
def test_wecom_message_names_zone_category_place_and_tracking_link(where, shown):
    ev = events.on_created(a_report(location_input=where), T0, "https://zc.example.cn")[0]
    data = W.body("wecom", 5, ev.payload, NAMES)
    msg = json.loads(data)
    assert msg["msgtype"] == "markdown"
    text = msg["markdown"]["content"]
    for part in ("QS-02", "QS-C02", "暴露垃圾", "06010", shown, "(https://zc.example.cn/t/tok123)", "新问题", "#7"):
        assert part in text, (part, text)
    assert len(data) < 4096  # WeCom's limit for a markdown message


def test_wecom_message_of_a_rating_and_of_a_status_change():
    r = a_report(status="resolved", satisfaction="not_fixed", rating=2, rating_comment="还是很脏")
    text = W.wecom_text(events.on_rated(r, T0, "http://x").payload, NAMES)
    assert "市民评价" in text and "not_fixed 2/5 还是很脏" in text
    text = W.wecom_text(events.on_status(r, "in_progress", T0, "staff:1", "已清理", "http://x").payload, NAMES)
    assert "状态更新" in text and "已处理" in text and "已清理" in text


def test_what_counts_as_taken():
    assert W.accepted("json", 204, "") and W.accepted("json", 200, "whatever")
    assert not W.accepted("json", 503, "") and not W.accepted("json", 301, "")
    assert W.accepted("wecom", 200, '{"errcode":0,"errmsg":"ok"}')
    assert not W.accepted("wecom", 200, '{"errcode":93000,"errmsg":"invalid webhook url"}')
    assert not W.accepted("wecom", 200, "<html>busy</html>") and not W.accepted("wecom", 200, "[]")
