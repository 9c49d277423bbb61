"""Reports end to end through the API in-process (TestClient), on SQLite and on a real PostGIS (see conftest.store_url)."""
from __future__ import annotations

import csv

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from gis.crs import wgs84_to_gcj02
from store.keys import create_key
from tests.helpers import inner, pg_database

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def live(store_url, zone_index):
    app = create_app(index=zone_index, database_url=store_url)
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "test staff")
        _, chief_key = create_key(s, "staff", "chief QS-C02", chief_id="QS-C02")
        _, admin = create_key(s, "admin", "test admin")
    with TestClient(app) as client:
        yield {"client": client, "services": services, "staff": {"X-API-Key": staff},
               "chief": {"X-API-Key": chief_key}, "admin": {"X-API-Key": admin}, "url": store_url}


def post(live, body, headers=None):
    return live["client"].post("/v1/reports", json=body, headers=headers or {})


def report(location, **kw):
    return {"source": kw.pop("source", "gps"), "category": kw.pop("category", "06010"),
            "description": kw.pop("description", "暴露垃圾"), "location": location,
            "reporter": {"name": "张先生", "phone": "13800000000"}, **kw}


def test_schema(live):
    eng = sa.create_engine(live["url"])
    if not live["url"].startswith("postgresql"):
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0010"
            cols = {r[1]: r[2] for r in c.execute(sa.text("PRAGMA table_info(reports)"))}
            assert cols["geom"].upper() == "BLOB"  # WKB on the embedded store
            assert c.execute(sa.text("SELECT count(*) FROM zones")).scalar() == 29
        eng.dispose()
        return
    with eng.connect() as c:
        col = c.execute(sa.text("SELECT type, srid FROM geometry_columns WHERE f_table_name='reports'")).one()
        assert col == ("POINT", 4326)
        idx = c.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename='reports' AND indexdef ILIKE '%gist%'")).all()
        assert idx and "(geom)" in idx[0][0]
        for t in ("zones", "villages", "facilities"):
            assert c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() > 0
            assert c.execute(sa.text(f"SELECT count(*) FROM pg_indexes WHERE tablename='{t}' AND indexdef ILIKE '%gist%'")).scalar() == 1
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0010"
        # codes and keys compare bytewise (migration 0004); free text keeps the database's collation
        coll = dict(c.execute(sa.text("SELECT column_name, collation_name FROM information_schema.columns "
                                      "WHERE table_name = 'reports' AND data_type = 'character varying'")).all())
        assert {k for k, v in coll.items() if v == "C"} == {"category", "zone_id", "chief_id", "idempotency_key", "tracking_token"}
    eng.dispose()


def test_migration_0004_collations_down_and_up_again():
    from alembic import command

    from store.db import alembic_config, make_engine, migrate

    def collations(eng):
        with eng.connect() as c:
            return dict(c.execute(sa.text("SELECT column_name, collation_name FROM information_schema.columns "
                                          "WHERE table_name = 'reports' AND column_name IN "
                                          "('category', 'zone_id', 'chief_id', 'idempotency_key')")).all())

    with pg_database() as url:
        eng = make_engine(url)
        migrate(eng)
        assert set(collations(eng).values()) == {"C"}
        with eng.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        assert set(collations(eng).values()) == {None}  # the database's default again
        migrate(eng)
        assert set(collations(eng).values()) == {"C"}
        eng.dispose()


@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
def test_report_by_coordinates_lands_in_zone_with_chief(live, zone_index, crs):
    for zone_id in ["QS-02", "ZMT-07", "QS-20", "ZMT-01"]:
        lon, lat = inner(zone_index, zone_id)
        if crs == "gcj02":
            x, y = wgs84_to_gcj02(lon, lat)
            lon, lat = float(x), float(y)
        r = post(live, report({"lon": lon, "lat": lat, "crs": crs}))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["zone_id"] == zone_id
        assert body["chief_id"] == zone_index.lookup(*inner(zone_index, zone_id)).chief.person_id
        assert body["status"] == "assigned"
        assert [h["status"] for h in body["history"]] == ["new", "assigned"]
        assert body["location_input"]["crs"] == crs
        assert "reporter" not in body  # public caller
        pt = body["point"]
        assert abs(pt["lon"] - inner(zone_index, zone_id)[0]) < 1e-5 and abs(pt["lat"] - inner(zone_index, zone_id)[1]) < 1e-5


def test_row_in_database_has_geometry(live, zone_index):
    lon, lat = inner(zone_index, "QS-05")
    rid = post(live, report({"lon": lon, "lat": lat})).json()["id"]
    eng = sa.create_engine(live["url"])
    with eng.connect() as c:
        if live["url"].startswith("postgresql"):
            x, y, srid = c.execute(sa.text("SELECT ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM reports WHERE id=:i"), {"i": rid}).one()
            assert srid == 4326
        else:
            import shapely

            g = shapely.from_wkb(c.execute(sa.text("SELECT geom FROM reports WHERE id=:i"), {"i": rid}).scalar())
            x, y = g.x, g.y
        assert abs(x - lon) < 1e-9 and abs(y - lat) < 1e-9
    eng.dispose()


def test_service_code_report(live, zone_index):
    fac = live["services"].facilities
    row = fac[fac.kind == "public_toilet"].iloc[3]
    r = post(live, report({"service_code": row.service_code}, source="service_code", category="03001"))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["zone_id"] == row.zone_id
    assert b["geocode"]["method"] == "service_code"
    r = post(live, report({"service_code": "DGCS-NOPE"}, source="service_code"))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "DGCS-NOPE" in r.json()["detail"]


@pytest.mark.parametrize("address", ["企石镇铁岗村", "企石鎮鐵崗村"])
def test_address_report_simplified_and_traditional(live, address):
    r = post(live, report({"address": address}, source="address"))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["zone_id"] == "QS-02" and b["village_code"] == "441900105200"
    assert b["chief_id"] == "QS-C02"
    assert b["geocode"]["needs_review"] is False


def test_ambiguous_address_needs_review_not_assigned(live):
    r = post(live, report({"address": "樟木头镇"}, source="address"))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["geocode"]["needs_review"] is True
    assert b["zone_id"] is None and b["chief_id"] is None and b["status"] == "new"


def test_idempotency_key(live, zone_index):
    lon, lat = inner(zone_index, "QS-10")
    body = report({"lon": lon, "lat": lat}, idempotency_key="client-abc-1")
    first = post(live, body)
    again = post(live, body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == again.json()["id"]
    # header form too
    h = {"Idempotency-Key": "client-abc-2"}
    a = post(live, report({"lon": lon, "lat": lat}), h)
    b = post(live, report({"lon": lon, "lat": lat}), h)
    assert a.json()["id"] == b.json()["id"]
    rows, total = live["services"].reports.search(zone_id="QS-10")
    keys = [r.idempotency_key for r in rows]
    assert keys.count("client-abc-1") == 1 and keys.count("client-abc-2") == 1


def test_contact_only_for_staff(live, zone_index):
    lon, lat = inner(zone_index, "QS-03")
    rid = post(live, report({"lon": lon, "lat": lat})).json()["id"]
    c = live["client"]
    public = c.get(f"/v1/reports/{rid}")
    assert public.status_code == 200 and "reporter" not in public.json() and "13800000000" not in public.text
    assert "13800000000" not in c.get("/v1/reports", params={"zone_id": "QS-03"}).text
    staff = c.get(f"/v1/reports/{rid}", headers=live["staff"])
    assert staff.json()["reporter"]["phone"] == "13800000000"
    assert c.get(f"/v1/reports/{rid}", headers={"X-API-Key": "zc_bad_key"}).status_code == 401


def test_status_workflow_and_queue(live, zone_index):
    c = live["client"]
    lon, lat = inner(zone_index, "QS-02")
    rid = post(live, report({"lon": lon, "lat": lat})).json()["id"]
    assert c.patch(f"/v1/reports/{rid}", json={"status": "in_progress"}).status_code in (401, 403)  # public
    bad = c.patch(f"/v1/reports/{rid}", json={"status": "closed"}, headers=live["staff"])
    assert bad.status_code == 409 and "in_progress" in bad.json()["detail"]
    for s in ("in_progress", "resolved"):
        r = c.patch(f"/v1/reports/{rid}", json={"status": s, "note": "ok"}, headers=live["chief"])
        assert r.status_code == 200, r.text
    hist = r.json()["history"]
    assert [h["status"] for h in hist] == ["new", "assigned", "in_progress", "resolved"]
    assert all(a["at"] <= b["at"] for a, b in zip(hist, hist[1:]))
    # queue: open reports of QS-C02, oldest first; the resolved one is gone
    q = c.get("/v1/chiefs/QS-C02/queue", headers=live["chief"]).json()
    assert rid not in [i["id"] for i in q["items"]]
    times = [i["created_at"] for i in q["items"]]
    assert times == sorted(times) and all(i["status"] in ("new", "assigned", "in_progress") for i in q["items"])
    assert c.get("/v1/chiefs/QS-C05/queue", headers=live["chief"]).status_code == 403
    assert c.get("/v1/chiefs/QS-C02/queue").status_code in (401, 403)


def test_filters_and_pagination(live, zone_index):
    c = live["client"]
    for z in ("ZMT-03", "ZMT-03", "ZMT-03", "ZMT-04"):
        lon, lat = inner(zone_index, z)
        post(live, report({"lon": lon, "lat": lat}, category="09006"))
    r = c.get("/v1/reports", params={"zone_id": "ZMT-03", "category": "09006", "limit": 2}).json()
    assert r["total"] == 3 and len(r["items"]) == 2 and r["next_offset"] == 2
    r2 = c.get("/v1/reports", params={"zone_id": "ZMT-03", "category": "09006", "limit": 2, "offset": 2}).json()
    assert len(r2["items"]) == 1 and r2["next_offset"] is None
    ids = {i["id"] for i in r["items"]} | {i["id"] for i in r2["items"]}
    assert len(ids) == 3
    g = zone_index.zones.set_index("zone_id").geometry["ZMT-04"].bounds
    r3 = c.get("/v1/reports", params={"bbox": ",".join(map(str, g)), "category": "09006"}).json()
    assert any(i["zone_id"] == "ZMT-04" for i in r3["items"])
    assert all(g[0] <= i["point"]["lon"] <= g[2] for i in r3["items"])
    assert c.get("/v1/reports", params={"bbox": "1,2,3"}).status_code == 422
    assert c.get("/v1/reports", params={"status": "bogus"}).status_code == 422


@pytest.mark.parametrize("body,needle", [
    ({"source": "gps", "category": "06010", "location": {"lon": 23.0, "lat": 114.0}}, "swap"),
    ({"source": "gps", "category": "99999", "location": {"lon": 114.05, "lat": 23.06}}, "99999"),
    ({"source": "gps", "category": "06010", "location": {"lon": 114.05}}, "lat"),
    ({"source": "gps", "category": "06010", "location": {"lon": 114.05, "lat": 23.06, "crs": "foo"}}, "foo"),
    ({"source": "fax", "category": "06010", "location": {"lon": 114.05, "lat": 23.06}}, "source"),
    ({"source": "gps", "category": "06010", "location": {"lon": 114.05, "lat": 23.06}, "surprise": 1}, "surprise"),
])
def test_bad_reports_are_4xx(live, body, needle):
    r = post(live, body)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == PROBLEM
    assert needle in r.text


def test_bulk_import_with_rejects(live, zone_index, tmp_path):
    src = tmp_path / "reports.csv"
    lon, lat = inner(zone_index, "QS-12")
    gx, gy = wgs84_to_gcj02(lon, lat)
    rows = [
        {"category": "06010", "lon": lon, "lat": lat, "crs": "", "description": "ok", "idempotency_key": "imp-1"},
        {"category": "06036", "lon": float(gx), "lat": float(gy), "crs": "gcj02", "description": "ok gcj", "idempotency_key": "imp-2"},
        {"category": "06010", "lon": "abc", "lat": lat, "crs": "", "description": "bad lon", "idempotency_key": "imp-3"},
        {"category": "77777", "lon": lon, "lat": lat, "crs": "", "description": "bad cat", "idempotency_key": "imp-4"},
        {"category": "06010", "lon": lat, "lat": lon, "crs": "", "description": "swapped", "idempotency_key": "imp-5"},
        {"category": "06010", "lon": lon, "lat": lat, "crs": "", "description": "repeat key", "idempotency_key": "imp-1"},
    ]
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from zonechief.bulk import import_file

    svc = live["services"].reports
    res = import_file(svc, src, tmp_path / "rej.csv")
    assert res.inserted == 2 and res.rejected == 4
    rej = list(csv.DictReader(open(tmp_path / "rej.csv", encoding="utf-8")))
    assert [r["row"] for r in rej] == ["3", "4", "5", "6"]
    assert all(r["reason"] for r in rej)
    assert "swap" in rej[2]["reason"] and "77777" in rej[1]["reason"]
    stored = [svc.get(i) for i in res.ids]
    assert {r.zone_id for r in stored} == {"QS-12"}
    # importing again creates nothing
    again = import_file(svc, src, tmp_path / "rej2.csv")
    assert again.inserted == 0 and again.already_present == 3  # rows 1, 2 and 6 (same key as 1)


def test_import_is_all_or_nothing(live, zone_index, monkeypatch):
    from zonechief import bulk
    from zonechief.reports import ReportIn

    svc = live["services"].reports
    before = svc.search(limit=1)[1]
    lon, lat = inner(zone_index, "QS-14")
    intakes = [bulk.Intake(i, ReportIn(source="staff", category="06010", location={"lon": lon, "lat": lat}))
               for i in range(1, 51)]
    real_write = bulk.write

    sent = []

    def crash_after_first_window(n):
        # Called inside the write transaction once a window's reports and events are sent.
        sent.append(n)
        raise RuntimeError("crash in the middle of the import")

    def crashing_write(reports, batch, rebuild_indexes=None, progress=None):
        return real_write(reports, batch, rebuild_indexes, crash_after_first_window)

    monkeypatch.setattr(bulk, "write", crashing_write)
    with pytest.raises(RuntimeError, match="crash in the middle"):
        bulk.import_intakes(svc, intakes)
    assert sent, "the write never reached the database"
    assert svc.search(limit=1)[1] == before


def test_demo_seed(live):
    from zonechief.bulk import seed_demo

    svc = live["services"].reports
    res = seed_demo(svc, 300, seed=3)
    assert res.inserted + res.rejected == 300 and res.inserted >= 290
    rows, total = svc.search(limit=1000, offset=0)
    statuses = {r.status for r in rows}
    assert {"closed", "assigned"} <= statuses or {"resolved", "in_progress"} & statuses
    again = seed_demo(svc, 300, seed=3)
    assert again.inserted == 0 and again.already_present == 300


AWKWARD = ["tab\there", "line\nbreak\r\nwindows", "back\\slash \\N \\t", "\\N", "引号 \"quote\" 'single'", "😀 emoji"]


def test_bulk_write_round_trips_awkward_text(live, zone_index):
    """COPY (PostGIS) and the ORM insert (SQLite) store exactly what was given, awkward text included."""
    from datetime import datetime, timedelta, timezone

    from zonechief import bulk
    from zonechief.reports import ReportIn

    svc = live["services"].reports
    lon, lat = inner(zone_index, "QS-12")
    t0 = datetime(2025, 7, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    intakes = [bulk.Intake(i, ReportIn(source="staff", category="06010", description=text, idempotency_key=f"awk-{i}-{text}",
                                       location={"lon": lon + i * 1e-9, "lat": lat, "crs": "wgs84"},
                                       reporter={"name": text, "phone": "+86 (769) 1234-5678"},
                                       photo_url="https://example.org/a\\b.jpg", created_at=t0))
               for i, text in enumerate(AWKWARD, start=1)]
    intakes.append(bulk.Intake(99, ReportIn(source="address", category="06010", description="addr",
                                            location={"address": "企石镇铁岗村"}, idempotency_key="awk-addr")))
    res, rejects = bulk.import_intakes(svc, intakes)
    assert rejects == [] and res.inserted == len(intakes)
    for i, it in zip(res.ids, intakes):
        r = svc.get(i)
        d = it.data
        assert (r.description, r.idempotency_key, r.reporter_name, r.reporter_phone, r.photo_url) == \
            (d.description, d.idempotency_key, d.reporter.name if d.reporter else None,
             d.reporter.phone if d.reporter else None, d.photo_url)
        assert r.location_input == d.location.as_received()
        if d.location.lon is not None:
            assert r.created_at == t0 and (r.geom.x, r.geom.y) == (d.location.lon, d.location.lat)
            assert r.zone_id == "QS-12" and r.status == "assigned"
        with svc.db.engine.connect() as c:
            ev = c.execute(sa.text("SELECT status, at FROM report_events WHERE report_id = :i ORDER BY id"), {"i": i}).all()
        assert [e[0] for e in ev] == (["new", "assigned"] if r.zone_id else ["new"])


def test_bulk_clean_column_agrees_with_clean():
    """Column-wise cleaning gives what _clean gives, cell by cell."""
    import pandas as pd
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from zonechief.bulk import _clean, _clean_column

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(st.text(), st.none(), st.integers(), st.floats()), max_size=20), st.lists(st.text(), max_size=20))
    def check(mixed, cells):
        assert _clean_column(pd.Series(mixed, dtype=object)) == [_clean(x) for x in mixed]
        for col in (pd.Series(cells, dtype=object), pd.Series(cells, dtype="string"), pd.Series(cells, dtype=str)):
            assert _clean_column(col) == [_clean(x) for x in col]

    check()
