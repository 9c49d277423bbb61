"""Open311 GeoReport v2 over a real server, on SQLite and PostGIS.

Read side through the `georeport` client from PyPI; write side with raw form POSTs.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import requests
from georeport import GeoReport

from api.app import create_app
from store.keys import create_key
from tests.helpers import LiveServer, inner
from zonechief import open311 as o3
from zonechief.bulk import Intake, import_intakes
from zonechief.reports import ReportIn
from zonechief.workflow import STATUSES

BASE = "/open311/v2"
PHONE = "13912345670"
EMAIL = "zhang.san@example.com"


@pytest.fixture(scope="module")
def live(store_url):
    app = create_app(database_url=store_url)
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, public = create_key(s, "public", "open311 app")
        _, staff = create_key(s, "staff", "open311 staff")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        yield {"client": client, "services": services, "url": srv.url, "key": public, "staff": {"X-API-Key": staff},
               "georeport": GeoReport(srv.url + BASE), "georeport_xml": GeoReport(srv.url + BASE, output_format="xml")}


def file(live, fmt="json", **fields):
    return live["client"].post(f"{BASE}/requests.{fmt}", data={"api_key": live["key"], **fields})


def file_at(live, zone_index, zone_id, **fields):
    lon, lat = inner(zone_index, zone_id)
    r = file(live, service_code=fields.pop("service_code", "06010"), lat=str(lat), long=str(lon), **fields)
    assert r.status_code == 201, r.text
    return r.json()[0]["service_request_id"]


def errors_json(r, code):
    assert r.status_code == code, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["code"] == code and body[0]["description"]
    return body[0]["description"]


def errors_xml(r, code):
    assert r.status_code == code, r.text
    assert r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "errors"
    assert root.find("error/code").text == str(code) and root.find("error/description").text
    return root.find("error/description").text


# ------------------------------------------------------------------ discovery and services
def test_discovery_json_and_xml(live):
    d = live["client"].get(f"{BASE}/discovery.json").json()
    (ep,) = d["endpoints"]
    assert ep["url"] == live["url"] + BASE and ep["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(ep["formats"]) == {"application/json", "text/xml"} and ep["type"] == "production"
    r = live["client"].get(f"{BASE}/discovery.xml")
    assert r.headers["content-type"].startswith("text/xml")
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(r.content)
    assert root.tag == "discovery" and root.find("endpoints/endpoint/url").text == ep["url"]
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ep["formats"]
    # The advertised URL is one the client can use.
    assert GeoReport(ep["url"]).get_service_list()


def test_services_are_the_categories(live):
    cats = live["services"].categories
    services = live["georeport"].get_service_list()
    assert [s["service_code"] for s in services] == list(cats.code)
    assert all(isinstance(s["service_code"], str) and len(s["service_code"]) == 5 for s in services)
    by_code = {s["service_code"]: s for s in services}
    for row in cats.itertuples():
        s = by_code[row.code]
        assert (s["service_name"], s["group"], s["metadata"], s["type"]) == (row.name, row.major_name, False, "realtime")
    xml_services = live["georeport_xml"].get_service_list()
    assert [s["service_code"] for s in xml_services] == list(cats.code)  # leading zeros kept
    assert xml_services[0]["metadata"] == "false" and xml_services[0]["group"] == cats.major_name[0]


def test_service_definition(live):
    assert live["georeport"].get_service_definition("06010") == {"service_code": "06010", "attributes": []}
    assert live["georeport_xml"].get_service_definition("06010")["service_code"] == "06010"
    with pytest.raises(requests.HTTPError) as exc:
        live["georeport"].get_service_definition("99999")
    assert exc.value.response.status_code == 404
    assert "99999" in errors_json(live["client"].get(f"{BASE}/services/99999.json"), 404)
    assert "99999" in errors_xml(live["client"].get(f"{BASE}/services/99999.xml"), 404)


# ------------------------------------------------------------------ filing
def test_form_post_is_the_same_report_as_v1(live, zone_index):
    c = live["client"]
    lon, lat = inner(zone_index, "QS-02")
    r = file(live, service_code="06010", lat=str(lat), long=str(lon), description="路边暴露垃圾",
             first_name="三", last_name="张", phone=PHONE, email=EMAIL, media_url="https://img.example/1.jpg")
    assert r.status_code == 201, r.text
    (resp,) = r.json()
    assert set(resp) == {"service_request_id", "service_notice", "account_id"} and resp["account_id"] is None
    rid = resp["service_request_id"]
    assert isinstance(rid, str) and rid.isdigit() and "QS-02" in resp["service_notice"]

    via_open311 = c.get(f"/v1/reports/{rid}", headers=live["staff"]).json()
    chief = zone_index.lookup(lon, lat).chief.person_id
    assert via_open311["zone_id"] == "QS-02" and via_open311["chief_id"] == chief
    assert via_open311["source"] == "gps" and via_open311["category"] == "06010"
    assert via_open311["location_input"] == {"lon": lon, "lat": lat, "crs": "wgs84"}
    assert via_open311["reporter"] == {"name": "张三", "phone": PHONE}
    assert via_open311["photo_url"] == "https://img.example/1.jpg" and via_open311["description"] == "路边暴露垃圾"

    # The same report filed through /v1 with the same key: same zone, chief, status and history.
    v1 = c.post("/v1/reports", headers={"X-API-Key": live["key"]}, json={
        "source": "gps", "category": "06010", "description": "路边暴露垃圾", "location": {"lon": lon, "lat": lat},
        "reporter": {"name": "张三", "phone": PHONE}, "photo_url": "https://img.example/1.jpg"}).json()
    v1 = c.get(f"/v1/reports/{v1['id']}", headers=live["staff"]).json()

    def essence(d):
        return ({k: d[k] for k in ("zone_id", "village_code", "chief_id", "status", "point", "geocode", "reporter")},
                [(h["status"], h["actor"], h["note"]) for h in d["history"]])

    assert essence(via_open311) == essence(v1)
    assert [h["status"] for h in v1["history"]] == ["new", "assigned"]

    # Read back through the client: public fields only.
    got = live["georeport"].get_service_request(rid)
    assert got["service_request_id"] == rid and got["service_code"] == "06010" and got["status"] == "open"
    assert got["lat"] == pytest.approx(lat, abs=1e-9) and got["long"] == pytest.approx(lon, abs=1e-9)
    assert got["agency_responsible"].startswith("QS-02") and chief in got["agency_responsible"]
    assert got["status_notes"] == via_open311["history"][-1]["note"]
    assert got["media_url"] == "https://img.example/1.jpg"
    requested = datetime.fromisoformat(got["requested_datetime"])
    assert requested.utcoffset() == timedelta(hours=8)
    assert abs(requested - datetime.fromisoformat(via_open311["created_at"])) < timedelta(seconds=1)
    for fmt in ("json", "xml"):
        text = c.get(f"{BASE}/requests/{rid}.{fmt}").text + c.get(f"{BASE}/requests.{fmt}").text
        assert PHONE not in text and EMAIL not in text and "张三" not in text


def test_xml_post_and_single_request_xml(live, zone_index):
    lon, lat = inner(zone_index, "ZMT-03")
    r = file(live, "xml", service_code="09006", lat=str(lat), long=str(lon))
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "service_requests"
    rid = root.find("request/service_request_id").text
    assert "ZMT-03" in root.find("request/service_notice").text and root.find("request/account_id").text is None
    got = ET.fromstring(live["client"].get(f"{BASE}/requests/{rid}.xml").content)
    (req,) = got.findall("request")
    assert req.find("service_request_id").text == rid and req.find("service_code").text == "09006"
    assert req.find("status").text == "open" and float(req.find("long").text) == pytest.approx(lon, abs=1e-9)
    assert req.find("expected_datetime") is not None and req.find("expected_datetime").text is None
    client_view = live["georeport_xml"].get_service_request(rid)
    assert client_view["service_request_id"] == rid and client_view["agency_responsible"].startswith("ZMT-03")
    # A control character that JSON allows but XML 1.0 cannot carry still gives well-formed XML.
    v1 = live["client"].post("/v1/reports", json={"source": "gps", "category": "09006", "description": "垃圾\u0001堆",
                                                  "location": {"lon": lon, "lat": lat}})
    assert v1.status_code == 201, v1.text
    got = ET.fromstring(live["client"].get(f"{BASE}/requests/{v1.json()['id']}.xml").content)
    assert got.find("request/description").text == "垃圾\ufffd堆"


def test_address_string_and_address_id(live):
    c = live["client"]
    r = file(live, service_code="06010", address_string="企石镇铁岗村")
    assert r.status_code == 201, r.text
    rep = c.get(f"/v1/reports/{r.json()[0]['service_request_id']}").json()
    assert (rep["source"], rep["zone_id"], rep["chief_id"]) == ("address", "QS-02", "QS-C02")
    fac = live["services"].facilities.iloc[5]
    r = file(live, service_code="03001", address_id=fac.service_code)
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    rep = c.get(f"/v1/reports/{rid}").json()
    assert (rep["source"], rep["zone_id"]) == ("service_code", fac.zone_id)
    assert live["georeport"].get_service_request(rid)["address_id"] == fac.service_code
    # An address that cannot be placed is stored for review, and says so.
    r = file(live, service_code="06010", address_string="樟木头镇")
    assert r.status_code == 201 and "review" in r.json()[0]["service_notice"]
    got = live["georeport"].get_service_request(r.json()[0]["service_request_id"])
    assert got["agency_responsible"] is None and got["status"] == "open" and got["address"] == "樟木头镇"


def test_status_mapping_and_notes(live, zone_index):
    assert {s: o3.open311_status(s) for s in STATUSES} == {
        "new": "open", "assigned": "open", "in_progress": "open",
        "resolved": "closed", "closed": "closed", "rejected": "closed", "duplicate": "closed"}
    c, gr = live["client"], live["georeport"]
    rid = file_at(live, zone_index, "QS-05", service_code="02008")
    first = gr.get_service_request(rid)
    for status, note, expected in [("in_progress", "班组已出发", "open"), ("resolved", "已清理", "closed"),
                                   ("closed", None, "closed")]:
        r = c.patch(f"/v1/reports/{rid}", json={"status": status, "note": note}, headers=live["staff"])
        assert r.status_code == 200, r.text
        got = gr.get_service_request(rid)
        assert got["status"] == expected
        assert got["status_notes"] == (note or "已清理")  # the latest note, even when the last change had none
    v1 = c.get(f"/v1/reports/{rid}").json()
    updated = datetime.fromisoformat(v1["updated_at"]).replace(microsecond=0)
    assert datetime.fromisoformat(got["updated_datetime"]) == updated == datetime.fromisoformat(v1["history"][-1]["at"]).replace(microsecond=0)
    assert first["requested_datetime"] == got["requested_datetime"]
    closed = {x["service_request_id"] for x in gr.get_service_requests(status="closed", service_code="02008")}
    opened = {x["service_request_id"] for x in gr.get_service_requests(status="open", service_code="02008")}
    assert rid in closed and rid not in opened
    both = {x["service_request_id"] for x in gr.get_service_requests(status="open,closed", service_code="02008")}
    assert both == closed | opened


# ------------------------------------------------------------------ querying
def test_filters_ids_codes_dates(live, zone_index):
    gr, svc = live["georeport"], live["services"].reports
    a = file_at(live, zone_index, "QS-07", service_code="01001")
    b = file_at(live, zone_index, "QS-08", service_code="01002")
    got = gr.get_service_requests(service_request_id=f"{a},{b},999999,abc")
    assert [x["service_request_id"] for x in got] == [a, b]  # unknown ids are left out
    # service_request_id overrides the other filters
    assert len(gr.get_service_requests(service_request_id=a, service_code="09006", status="closed")) == 1
    both = gr.get_service_requests(service_code="01001,01002")
    assert {x["service_code"] for x in both} == {"01001", "01002"} and {a, b} <= {x["service_request_id"] for x in both}

    # Back-dated reports, 100 and 30 days old, through the same store.
    now = datetime.now(timezone.utc)
    lon, lat = inner(zone_index, "QS-09")
    old, recent = (svc.create(ReportIn(source="staff", category="04001", location={"lon": lon, "lat": lat},
                                       created_at=now - timedelta(days=d)))[0].id for d in (100, 30))
    default = {x["service_request_id"] for x in gr.get_service_requests(service_code="04001")}
    assert str(recent) in default and str(old) not in default  # last 90 days by default
    start, end = (now - timedelta(days=125)).isoformat(), (now - timedelta(days=95)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = gr.get_service_requests(service_code="04001", start_date=start, end_date=end)
    assert [x["service_request_id"] for x in window] == [str(old)]
    only_start = {x["service_request_id"] for x in gr.get_service_requests(service_code="04001", start_date=start)}
    assert only_start == {str(old)}  # start + 90 days ends before the recent one
    xml = live["georeport_xml"].get_service_requests(service_code="04001", start_date=start, end_date=end)
    assert xml["service_request_id"] == str(old)  # xmltodict gives one <request> as a dict


def test_default_caps_at_1000_newest(live, zone_index):
    svc = live["services"].reports
    now = datetime.now(timezone.utc)
    lon, lat = inner(zone_index, "ZMT-05")
    intakes = [Intake(i, ReportIn(source="staff", category="05002", location={"lon": lon, "lat": lat},
                                  created_at=now - timedelta(minutes=7 * i))) for i in range(1, 1106)]
    assert import_intakes(svc, intakes)[0].inserted == 1105
    got = live["georeport"].get_service_requests()
    assert len(got) == 1000
    since = now - timedelta(days=90)
    expected, total = svc.search(since=since, limit=1000)
    assert total > 1000
    assert [x["service_request_id"] for x in got] == [str(r.id) for r in expected]  # the newest 1000
    times = [datetime.fromisoformat(x["requested_datetime"]) for x in got]
    assert times == sorted(times, reverse=True) and min(times) >= since - timedelta(seconds=1)
    xml = ET.fromstring(live["client"].get(f"{BASE}/requests.xml").content)
    assert len(xml.findall("request")) == 1000
    assert len(live["georeport"].get_service_requests(service_code="05002")) == 1000


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_api_key_required(live, fmt, zone_index):
    check = errors_json if fmt == "json" else errors_xml
    lon, lat = inner(zone_index, "QS-02")
    form = {"service_code": "06010", "lat": str(lat), "long": str(lon)}
    before = live["services"].reports.search(limit=1)[1]
    assert "api_key" in check(live["client"].post(f"{BASE}/requests.{fmt}", data=form), 403)
    assert "api_key" in check(live["client"].post(f"{BASE}/requests.{fmt}", data={**form, "api_key": "zc_nope_x"}), 403)
    assert live["services"].reports.search(limit=1)[1] == before  # nothing was filed


@pytest.mark.parametrize("fields,code,needle", [
    ({"lat": "23.1", "long": "114.05"}, 400, "service_code"),
    ({"service_code": "99999", "lat": "23.1", "long": "114.05"}, 404, "99999"),
    ({"service_code": "06010"}, 400, "location"),
    ({"service_code": "06010", "lat": "23.1"}, 400, "long"),
    ({"service_code": "06010", "lat": "114.05", "long": "23.1"}, 400, "swap"),
    ({"service_code": "06010", "lat": "north", "long": "114.05"}, 400, "north"),
    ({"service_code": "06010", "lat": "23.1", "long": "114.05", "media_url": "ftp://x/y.jpg"}, 400, "media_url"),
    ({"service_code": "06010", "lat": "23.1", "long": "114.05", "phone": "call me"}, 400, "phone"),
    ({"service_code": "03001", "address_id": "DGCS-NOPE"}, 400, "DGCS-NOPE"),
])
def test_bad_requests_in_spec_format(live, fields, code, needle):
    assert needle in errors_json(file(live, **fields), code)
    assert needle in errors_xml(file(live, "xml", **fields), code)


def test_read_errors_in_spec_format(live):
    c = live["client"]
    assert "999999" in errors_json(c.get(f"{BASE}/requests/999999.json"), 404)
    errors_xml(c.get(f"{BASE}/requests/abc.xml"), 404)
    assert "start_date" in errors_json(c.get(f"{BASE}/requests.json", params={"start_date": "yesterday"}), 400)
    assert "timezone" in errors_json(c.get(f"{BASE}/requests.json", params={"start_date": "2025-07-01T00:00:00"}), 400)
    assert "90 days" in errors_xml(c.get(f"{BASE}/requests.xml", params={
        "start_date": "2025-01-01T00:00:00Z", "end_date": "2025-06-01T00:00:00Z"}), 400)
    assert "pending" in errors_json(c.get(f"{BASE}/requests.json", params={"status": "pending"}), 400)
    assert "5-digit" in errors_json(c.get(f"{BASE}/requests.json", params={"service_code": "6010"}), 400)
    errors_json(c.get(f"{BASE}/services.csv"), 404)
    errors_json(c.get(f"{BASE}/nothing/here"), 404)
    r = c.put(f"{BASE}/requests.json")
    errors_json(r, 405)
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}
    r = c.post(f"{BASE}/requests.json", json={"api_key": live["key"], "service_code": "06010"})
    assert "form" in errors_json(r, 400)
    with pytest.raises(requests.HTTPError) as exc:
        live["georeport"].get_service_request("424242")
    assert exc.value.response.status_code == 404
    assert json.loads(exc.value.response.text)[0]["code"] == 404


def test_window_rules():
    now = datetime(2025, 7, 1, 12, tzinfo=timezone.utc)
    assert o3.window(None, None, now) == (now - timedelta(days=90), now)
    since, until = o3.window("2025-03-01", "2025-03-31", now)
    assert since == datetime(2025, 3, 1, tzinfo=o3.CST) and until == datetime(2025, 4, 1, tzinfo=o3.CST)  # whole end day
    s2, u2 = o3.window(None, "2025-06-01T00:00:00Z", now)
    assert u2 - s2 == timedelta(days=90) and u2 > datetime(2025, 6, 1, tzinfo=timezone.utc)  # end is inclusive
    with pytest.raises(o3.Open311Error):
        o3.window("2025-06-01T00:00:00Z", "2025-05-01T00:00:00Z", now)
    assert o3.reporter_name("三", "张") == "张三" and o3.reporter_name("Ann", "Lee") == "Ann Lee"
    assert o3.reporter_name(" ", None) is None


def test_public_submissions_share_the_v1_rate_limit(store_url, zone_index):
    from zonechief.settings import Settings

    app = create_app(settings=Settings(rate_limit_per_minute=2), database_url=store_url)
    with app.state.services.db.sessions.begin() as s:
        _, public = create_key(s, "public", "burst")
        _, staff = create_key(s, "staff", "burst staff")
    lon, lat = inner(zone_index, "QS-11")
    form = {"service_code": "06010", "lat": str(lat), "long": str(lon)}
    # From an address of its own: on PostGIS the buckets are rows in the store, which the other tests share.
    own_address = httpx.HTTPTransport(local_address="127.0.0.3")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30, transport=own_address) as c:
        # One token through /v1, one through Open311: the third submission from this address is refused.
        assert c.post("/v1/reports", headers={"X-API-Key": public}, json={
            "source": "gps", "category": "06010", "location": {"lon": lon, "lat": lat}}).status_code == 201
        assert c.post(f"{BASE}/requests.json", data={**form, "api_key": public}).status_code == 201
        r = c.post(f"{BASE}/requests.xml", data={**form, "api_key": public})
        assert "per minute" in errors_xml(r, 429) and int(r.headers["retry-after"]) >= 1
        assert c.post(f"{BASE}/requests.json", data={**form, "api_key": staff}).status_code == 201  # staff are not limited
