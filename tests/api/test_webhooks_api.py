"""/v1/admin/webhooks in-process (TestClient) on SQLite and PostGIS, with the dispatcher running and real
receivers on 127.0.0.1: who may manage subscribers, which URLs and filters are refused, the secret shown
once, deliveries as listed, signed events of a filed report, filters honoured, and the README's receiver
example run as printed against a real delivery."""
from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from store.keys import create_key
from tests.helpers import free_port, inner
from tests.webhook_receiver import Receiver
from zonechief.settings import Settings

PUBLIC = "https://zc.example.cn"
SERVED = "http://127.0.0.1:8000"  # Settings' host and port: the address `zonechief serve` would bind

# The receiver example of the README ("Webhooks"); the test below runs the README's own copy when it has one.
EXAMPLE = '''\
import hashlib, hmac, json
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET, seen = b"the secret shown when the webhook was made", set()  # keep `seen` in your database

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), self.headers.get("X-Zonechief-Signature", "").encode()):
            return self.send_error(401)  # not from zonechief, or changed on the way
        event_id = self.headers["X-Zonechief-Event-Id"]
        if event_id not in seen:  # delivered at least once: a repeat has the same id
            seen.add(event_id)
            print(json.loads(body)["type"], event_id, flush=True)  # act on the event here
        self.send_response(204)
        self.end_headers()

HTTPServer(("127.0.0.1", 8001), Receiver).serve_forever()
'''


@pytest.fixture(scope="module")
def live(store_url, zone_index):
    settings = Settings(rate_limit_per_minute=0, public_url=PUBLIC, host="127.0.0.1", port=8000)
    app = create_app(index=zone_index, settings=settings, database_url=store_url)
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, admin = create_key(s, "admin", "webhook admin")
        _, staff = create_key(s, "staff", "webhook staff")
    with TestClient(app) as client:
        services.start_dispatcher()  # `zonechief serve` starts it at startup (api.app.lifespan)
        yield {"client": client, "admin": {"X-API-Key": admin}, "staff": {"X-API-Key": staff}, "services": services}


def subscribe(live, url: str, **kw) -> dict:
    r = live["client"].post("/v1/admin/webhooks", json={"url": url, **kw}, headers=live["admin"])
    assert r.status_code == 201, r.text
    return r.json()


def unsubscribe(live, hook: dict) -> None:
    assert live["client"].delete(f"/v1/admin/webhooks/{hook['id']}", headers=live["admin"]).status_code == 204


def file_report(live, zone_index, zone: str, category: str = "06010") -> dict:
    lon, lat = inner(zone_index, zone)
    r = live["client"].post("/v1/reports", json={"source": "gps", "category": category, "description": "测试",
                                                 "location": {"lon": lon, "lat": lat}})
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(live, hook: dict, **params) -> dict:
    r = live["client"].get(f"/v1/admin/webhooks/{hook['id']}/deliveries", params=params, headers=live["admin"])
    assert r.status_code == 200, r.text
    return r.json()


def settled(live, hooks: list[dict], timeout: float = 15) -> None:
    """Wait until no delivery of these subscribers is pending (call once their deliveries exist: one
    subscriber got the events, and fan-out makes every subscriber's deliveries of an event at once)."""
    deadline = time.monotonic() + timeout
    while any(deliveries(live, h)["counts"].get("pending") for h in hooks):
        assert time.monotonic() < deadline, [deliveries(live, h)["counts"] for h in hooks]
        time.sleep(0.1)


def valid(secret: str, hit) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, hit.headers["X-Zonechief-Signature"])


# ------------------------------------------------------------------ who, and what is refused
def test_admin_keys_only(live):
    c = live["client"]
    calls = [("POST", "/v1/admin/webhooks", {"url": "http://127.0.0.1:9/x"}), ("GET", "/v1/admin/webhooks", None),
             ("DELETE", "/v1/admin/webhooks/1", None), ("GET", "/v1/admin/webhooks/1/deliveries", None)]
    for method, path, body in calls:
        assert c.request(method, path, json=body).status_code == 401, path
        assert c.request(method, path, json=body, headers={"X-API-Key": "zc_nope.nope"}).status_code == 401, path
        assert c.request(method, path, json=body, headers=live["staff"]).status_code == 403, path
    assert c.get("/v1/admin/webhooks", headers=live["admin"]).status_code == 200


@pytest.mark.parametrize("body,says", [
    ({"url": "ftp://127.0.0.1/hook"}, "http(s)"),
    ({"url": "file:///etc/passwd"}, "http(s)"),
    ({"url": "javascript:alert(1)"}, "http(s)"),
    ({"url": "http:///no-host"}, "http(s)"),
    ({"url": "https://user:pass@hooks.example.cn/x"}, "credentials"),
    ({"url": "https://zc.example.cn/hook"}, "itself"),  # the public URL
    ({"url": "https://ZC.example.cn:443/v1/reports"}, "itself"),
    ({"url": "http://127.0.0.1:8000/hook"}, "itself"),  # the address served
    ({"url": "http://localhost:8000/"}, "itself"),
    ({"url": "http://[::1]:8000/x"}, "itself"),
    ({"url": "http://testserver/x"}, "itself"),  # the address this request came to
    ({"url": "http://127.0.0.1:99999/x"}, "port"),
    ({"url": "http://127.0.0.1:9/x", "filter": {"zone": ["QS-01"]}}, "zone"),
    ({"url": "http://127.0.0.1:9/x", "filter": {"types": ["report.deleted"]}}, "types"),
    ({"url": "http://127.0.0.1:9/x", "filter": {"zones": "QS-01"}}, "zones"),
    ({"url": "http://127.0.0.1:9/x", "kind": "slack"}, "kind"),
    ({"url": "http://127.0.0.1:9/x", "secret": "short"}, "secret"),
    ({"url": "http://127.0.0.1:9/x", "events": ["report.created"]}, "events"),
])
def test_refused(live, body, says):
    r = live["client"].post("/v1/admin/webhooks", json=body, headers=live["admin"])
    assert r.status_code == 422, r.text
    assert says in r.text, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_secret_is_shown_once_and_delete_then_404(live):
    c, admin = live["client"], live["admin"]
    made = subscribe(live, "http://127.0.0.1:9/made", filter={"zones": ["QS-01"]})
    given = subscribe(live, "http://127.0.0.1:9/given", secret="s" * 16 + "-mine", kind="wecom")
    assert len(made["secret"]) >= 32 and given["secret"] == "s" * 16 + "-mine"
    assert made["filter"] == {"zones": ["QS-01"], "chiefs": [], "categories": [], "types": []}
    listed = c.get("/v1/admin/webhooks", headers=admin)
    assert made["secret"] not in listed.text and given["secret"] not in listed.text
    mine = {h["id"]: h for h in listed.json()}
    assert "secret" not in mine[made["id"]] and mine[given["id"]]["kind"] == "wecom"
    for hook in (made, given):
        assert c.delete(f"/v1/admin/webhooks/{hook['id']}", headers=admin).status_code == 204
        assert c.delete(f"/v1/admin/webhooks/{hook['id']}", headers=admin).status_code == 404
        assert c.get(f"/v1/admin/webhooks/{hook['id']}/deliveries", headers=admin).status_code == 404
    assert not {made["id"], given["id"]} & {h["id"] for h in c.get("/v1/admin/webhooks", headers=admin).json()}


# ------------------------------------------------------------------ deliveries
def test_a_filed_report_reaches_a_receiver_signed_and_listed(live, zone_index):
    with Receiver() as rx, Receiver(mode="503") as down:
        hook, failing = subscribe(live, rx.url), subscribe(live, down.url)
        rep = file_report(live, zone_index, "QS-02")
        mine = lambda hits: [h for h in hits if h.json["report"]["id"] == rep["id"]]  # noqa: E731
        assert rx.wait(lambda hits: len(mine(hits)) >= 2, timeout=10), rx.hits
        time.sleep(0.3)  # a third would be a repeat
        got = mine(rx.hits)
        assert [h.json["type"] for h in got] == ["report.created", "report.assigned"]
        assert [h.headers["X-Zonechief-Event"] for h in got] == ["report.created", "report.assigned"]
        assert all(valid(hook["secret"], h) and not valid(failing["secret"], h) for h in got)
        assert got[0].event_id < got[1].event_id and [h.json["id"] for h in got] == [h.event_id for h in got]
        assert got[1].json["report"]["zone_id"] == "QS-02" and got[1].json["report"]["tracking_url"].startswith(PUBLIC + "/t/")
        assert got[0].headers["Content-Type"].startswith("application/json")

        listed = deliveries(live, hook, status="delivered")
        ours = [d for d in listed["items"] if d["report_id"] == rep["id"]]
        assert [d["event_id"] for d in ours] == [got[1].event_id, got[0].event_id]  # newest first
        assert all(d["attempts"] == 1 and d["last_status"] == 204 and d["last_error"] is None
                   and d["delivered_at"] for d in ours)
        assert listed["counts"] == {"delivered": 2} and deliveries(live, hook, status="dead")["items"] == []

        # The failing receiver: the first event is retried (the second waits behind it: per report, in order).
        assert down.wait(lambda hits: len(mine(hits)) >= 2, timeout=10)
        assert {h.event_id for h in mine(down.hits)} == {got[0].event_id}
        pending = deliveries(live, failing, status="pending")["items"]
        first = next(d for d in pending if d["event_id"] == got[0].event_id)
        assert first["attempts"] >= 2 and first["last_status"] == 503 and "HTTP 503" in first["last_error"]
        assert first["delivered_at"] is None and first["next_at"]
        unsubscribe(live, hook)
        unsubscribe(live, failing)


def test_filters_by_zone_chief_category_and_type(live, zone_index):
    rxs = [Receiver().start() for _ in range(5)]
    try:
        filters = [{}, {"zones": ["QS-02"]}, {"chiefs": ["__chief_of_ZMT-07__"]}, {"categories": ["01001"]},
                   {"types": ["report.assigned"], "zones": ["QS-02", "ZMT-07"]}]
        probe = file_report(live, zone_index, "ZMT-07")  # to learn the chief of ZMT-07
        filters[2] = {"chiefs": [probe["chief_id"]]}
        hooks = [subscribe(live, rx.url, filter=f) for rx, f in zip(rxs, filters)]
        reps = [file_report(live, zone_index, z, c) for z, c in
                [("QS-02", "06010"), ("ZMT-07", "01001"), ("QS-05", "01001"), ("ZMT-07", "06010"), ("QS-02", "01001")]]
        ours = lambda hits: [h for h in hits if h.json["report"]["id"] in {r["id"] for r in reps}]  # noqa: E731
        assert rxs[0].wait(lambda hits: len(ours(hits)) >= 2 * len(reps), timeout=15)
        settled(live, hooks)
        expected_all = {(r["id"], t) for r in reps for t in ("report.created", "report.assigned")}

        def wants(flt: dict, rep: dict, type_: str) -> bool:
            return ((not flt.get("zones") or rep["zone_id"] in flt["zones"])
                    and (not flt.get("chiefs") or rep["chief_id"] in flt["chiefs"])
                    and (not flt.get("categories") or rep["category"] in flt["categories"])
                    and (not flt.get("types") or type_ in flt["types"]))

        by_id = {r["id"]: r for r in reps}
        for rx, flt in zip(rxs, filters):
            got = [(h.json["report"]["id"], h.json["type"]) for h in rx.hits if h.json["report"]["id"] in by_id]
            want = {k for k in expected_all if wants(flt, by_id[k[0]], k[1])}
            assert sorted(got) == sorted(want), (flt, got, want)  # each once
            assert want, flt  # every filter took something, and left something out (but {})
            assert flt == {} or want != expected_all, flt
        for h in hooks:
            unsubscribe(live, h)
    finally:
        for rx in rxs:
            rx.stop()


# ------------------------------------------------------------------ the README's receiver
def readme_example() -> str:
    """The README's receiver example (the Webhooks section), or EXAMPLE until the README has it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    return next((b for b in blocks if "X-Zonechief-Signature" in b and "compare_digest" in b), EXAMPLE)


def test_the_readme_receiver_example_verifies_and_deduplicates(live, zone_index):
    code, port, secret = readme_example(), free_port(), "a-secret-for-the-readme-example"
    assert code.count('b"the secret shown when the webhook was made"') == 1 and code.count("8001") == 1
    code = code.replace('b"the secret shown when the webhook was made"', repr(secret.encode())).replace("8001", str(port))
    proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}/zonechief"
        deadline = time.monotonic() + 10
        while True:  # until it listens
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with Receiver() as copy:  # a second subscriber sees the very bytes sent, to replay them
            hook, spy = subscribe(live, url, secret=secret), subscribe(live, copy.url, secret=secret)
            rep = file_report(live, zone_index, "QS-03")
            assert copy.wait(lambda hits: len([h for h in hits if h.json["report"]["id"] == rep["id"]]) >= 2, 10)
            settled(live, [hook, spy])
            want = [f"report.created {rep['id']}", f"report.assigned {rep['id']}"]
            ids = [h.event_id for h in copy.hits if h.json["report"]["id"] == rep["id"]]
            assert [ln.strip() for ln in lines] == [f"{w.split()[0]} {i}" for w, i in zip(want, ids)], lines
            sent = next(h for h in copy.hits if h.event_id == ids[0])
            headers = {k: v for k, v in sent.headers.items() if k.lower().startswith(("x-zonechief", "content-type"))}
            assert httpx.post(url, content=sent.body, headers=headers).status_code == 204  # a repeat: taken, not acted on
            forged = {**headers, "X-Zonechief-Signature": "sha256=" + "0" * 64}
            assert httpx.post(url, content=sent.body, headers=forged).status_code == 401
            assert httpx.post(url, content=sent.body + b" ", headers=headers).status_code == 401
            assert httpx.post(url, content=sent.body, headers={"Content-Type": "application/json"}).status_code == 401
            time.sleep(0.2)
            assert len(lines) == 2, lines
            assert deliveries(live, hook)["counts"] == {"delivered": 2}
            unsubscribe(live, hook)
            unsubscribe(live, spy)
    finally:
        proc.kill()
        proc.wait(5)
