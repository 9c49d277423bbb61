"""Faults: PostgreSQL restarts under a stream of reports, a database down at start-up, and
reference-data imports that fail half-way. Everything real: the local PostgreSQL 15 cluster is
stopped and started (`pytest -m restart` runs only those tests), requests go over HTTP to uvicorn.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from gis.shipped import DATA_DIR as REPO_DATA
from store.keys import create_key
from tests.helpers import PG_ADMIN_URL, LiveServer, inner, pg_database
from zonechief.settings import Settings

PROBLEM = "application/problem+json"
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


# ------------------------------------------------------------------ helpers
def report(lon, lat, **kw):
    return {"source": "gps", "category": "06010", "description": kw.pop("description", "暴露垃圾"),
            "location": {"lon": lon, "lat": lat}, **kw}


def pg(action: str) -> None:
    subprocess.run(PG_CTL + [action], check=True, capture_output=True, timeout=120)


def wait_for_pg(url: str = PG_ADMIN_URL, seconds: float = 60) -> None:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with eng.connect() as c:
                    c.exec_driver_sql("SELECT 1")
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        eng.dispose()


def pg_is_up() -> bool:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    return any(line.split()[:2] == ["15", "main"] and "online" in line for line in out.splitlines())


class Server(LiveServer):
    """A LiveServer that is ready on any answer: /healthz may rightly say 503 here."""

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/openapi.json", timeout=2)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline or not self.thread.is_alive():
                    self.server.should_exit = True
                    raise RuntimeError("the API server did not come up") from None
                time.sleep(0.05)


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostGIS database that outlives cluster restarts (dropped through a new connection)."""
    with pg_database() as url:
        try:
            yield url
        finally:
            if not pg_is_up():
                pg("start")
            wait_for_pg()


NO_LIMIT = Settings(rate_limit_per_minute=0)


# ------------------------------------------------------------------ PostgreSQL restarts
@pytest.mark.restart
def test_reports_survive_a_postgres_restart(pg_url, zone_index):
    """A client streams reports with retries (same Idempotency-Key); PostgreSQL restarts in the middle.

    Every acknowledged report must be stored exactly once, under the id the API gave.
    """
    n = 120
    zones = list(zone_index.zones.zone_id)
    app = create_app(settings=NO_LIMIT, database_url=pg_url)
    acked: dict[str, int] = {}
    seen = Counter()
    retry_after = set()
    unexpected = []
    outage_seen = threading.Event()

    def stream(url):
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in range(n):
                key = f"restart-{i}"
                body = report(*inner(zone_index, zones[i % len(zones)]), description=f"report {i}")
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    try:
                        r = c.post("/v1/reports", json=body, headers={"Idempotency-Key": key})
                    except httpx.TransportError:
                        seen["transport"] += 1
                        time.sleep(0.1)
                        continue
                    seen[r.status_code] += 1
                    if r.status_code in (200, 201):
                        acked[key] = r.json()["id"]
                        break
                    if r.status_code == 503:
                        outage_seen.set()
                        retry_after.add(r.headers.get("retry-after"))
                        assert r.headers["content-type"] == PROBLEM
                        time.sleep(0.1)  # a real client would honour Retry-After; shorter keeps the test quick
                        continue
                    unexpected.append((key, r.status_code, r.text[:300]))
                    break
                else:
                    unexpected.append((key, "gave up", None))

    with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as probe:
        t = threading.Thread(target=stream, args=(srv.url,))
        t.start()
        try:
            deadline = time.monotonic() + 60
            while len(acked) < 30 and t.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(acked) >= 30, (seen, unexpected)
            pg("stop")
            try:
                assert outage_seen.wait(30), "the client never saw the outage"
                deadline = time.monotonic() + 30
                while seen[503] < 5 and time.monotonic() < deadline:  # several retries against a dead database
                    time.sleep(0.05)
                h = probe.get("/healthz")
                assert h.status_code == 503 and h.headers.get("retry-after")
                assert h.json()["checks"]["database"]["status"] == "down"
                assert h.json()["checks"]["zones_index"]["status"] == "ok"
                # Lookups need no database: still answered during the outage.
                assert probe.get("/v1/lookup", params={"lon": 114.05, "lat": 23.06}).status_code == 200
            finally:
                pg("start")
            wait_for_pg()
        finally:
            t.join(120)
        assert not t.is_alive()
        assert not unexpected, unexpected
        assert seen[503] >= 1 and retry_after == {"5"}, (seen, retry_after)
        assert probe.get("/healthz").status_code == 200  # recovered by itself

    eng = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT idempotency_key, count(*), min(id) FROM reports "
                                 "WHERE idempotency_key LIKE 'restart-%' GROUP BY idempotency_key")).all()
        events = c.execute(sa.text("SELECT count(*) FROM report_events e JOIN reports r ON r.id = e.report_id "
                                   "WHERE r.idempotency_key LIKE 'restart-%'")).scalar()
    eng.dispose()
    stored = {k: (cnt, rid) for k, cnt, rid in rows}
    assert len(acked) == n
    assert all(stored[k] == (1, rid) for k, rid in acked.items()), "an acknowledged report is missing or duplicated"
    assert len(stored) == n
    assert events == 2 * n  # new + assigned, once each: no half-written report
    print(f"\nrestart: {dict(seen)}")


@pytest.mark.restart
def test_database_down_at_start_is_503_and_recovers(pg_url, zone_index):
    """The store is opened lazily; while PostgreSQL is down that is a 503 (not a cached failure)."""
    app = create_app(settings=NO_LIMIT, database_url=pg_url)
    services = app.state.services
    lon, lat = inner(zone_index, "QS-07")
    with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=15) as c:
        pg("stop")
        try:
            for _ in range(2):  # twice: the failed open must not be remembered
                r = c.post("/v1/reports", json=report(lon, lat), headers={"Idempotency-Key": "cold-1"})
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == PROBLEM and r.headers["retry-after"] == "5"
                assert "unavailable" in r.json()["detail"]
            assert c.get("/v1/reports").status_code == 503
            assert c.get("/v1/reports", headers={"X-API-Key": "zc_abcd_secret"}).status_code == 503  # key check needs the DB
            h = c.get("/healthz")
            assert h.status_code == 503
            assert h.json()["checks"]["database"] == {"status": "down", "error": "OperationalError"}
            assert "5432" not in h.text  # no connection details leak
            assert c.get("/v1/lookup", params={"lon": lon, "lat": lat}).json()["zone"]["id"] == "QS-07"
            assert services._db is None
        finally:
            pg("start")
        wait_for_pg()
        r = c.post("/v1/reports", json=report(lon, lat), headers={"Idempotency-Key": "cold-1"})
        assert r.status_code == 201, r.text
        assert r.json()["zone_id"] == "QS-07"
        assert c.get("/healthz").json()["checks"]["database"] == {"status": "ok", "dialect": "postgresql"}


# ------------------------------------------------------------------ reference data: transactional, audited
def roster_csv(change: dict | None = None, extra_rows: list[dict] | None = None) -> str:
    """The shipped roster, with some fields of some people changed: {person_id: {field: value}}."""
    with open(REPO_DATA / "roster.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r.update((change or {}).get(r["person_id"], {}))
    rows += extra_rows or []
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def villages(change_zone: dict | None = None, mutate=None) -> bytes:
    d = json.loads((REPO_DATA / "villages.geojson").read_text(encoding="utf-8"))
    for f in d["features"]:
        if f["properties"]["code"] in (change_zone or {}):
            f["properties"]["zone_id"] = change_zone[f["properties"]["code"]]
    if mutate:
        mutate(d)
    return json.dumps(d, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def ref_live(store_url):
    app = create_app(settings=NO_LIMIT, database_url=store_url)
    services = app.state.services
    with services.db.sessions.begin() as s:
        _, admin = create_key(s, "admin", "reference admin")
        _, staff = create_key(s, "staff", "a staff member")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield {"client": client, "services": services, "url": store_url,
               "admin": {"X-API-Key": admin}, "staff": {"X-API-Key": staff}}


def snapshot(url: str) -> dict:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        out = {
            "roster": c.execute(sa.text("SELECT person_id, role, name, zone_id, effective_from FROM roster "
                                        "ORDER BY person_id, zone_id, effective_from")).all(),
            "villages": c.execute(sa.text("SELECT code, zone_id FROM villages ORDER BY code")).all(),
            "zones": c.execute(sa.text("SELECT zone_id, name FROM zones ORDER BY zone_id")).all(),
            "facilities": c.execute(sa.text("SELECT facility_id, service_code, zone_id FROM facilities ORDER BY 1")).all(),
            "audit": c.execute(sa.text("SELECT count(*) FROM audit_log")).scalar(),
        }
    eng.dispose()
    return out


def chief_name(client, lon, lat):
    r = client.get("/v1/lookup", params={"lon": lon, "lat": lat})
    assert r.status_code == 200, r.text
    return r.json()["chief"]["name"]


def test_roster_import_is_committed_then_put_in_force_and_audited(ref_live, zone_index):
    c, admin = ref_live["client"], ref_live["admin"]
    lon, lat = inner(zone_index, "ZMT-01")
    assert chief_name(c, lon, lat) == "片长 ZMT-01"
    body = roster_csv({"ZMT-C01": {"name": "新片长 <b>甲</b>"}})
    dry = c.put("/v1/admin/roster", params={"dry_run": "true"}, content=body.encode(), headers={**admin, "Content-Type": "text/csv"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["audit_ids"] == []
    assert chief_name(c, lon, lat) == "片长 ZMT-01"  # a dry run changes nothing

    r = c.put("/v1/admin/roster", content=body.encode(), headers={**admin, "Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["kinds"] == ["roster"] and len(res["audit_ids"]) == 1
    assert res["summary"]["roster"]["people"]["changed"] == ["ZMT-C01"]
    assert chief_name(c, lon, lat) == "新片长 <b>甲</b>"  # the running app switched
    names = dict((p, n) for p, _, n, _, _ in snapshot(ref_live["url"])["roster"])
    assert names["ZMT-C01"] == "新片长 <b>甲</b>"

    log = c.get("/v1/admin/audit", headers=admin).json()["items"]
    e = log[0]
    assert e["id"] == res["audit_ids"][0] and e["action"] == "roster.import"
    assert e["actor"].startswith("key:") and "reference admin" in e["actor"]
    assert e["summary"]["source"] == "upload" and len(e["summary"]["sha256"]) == 64
    assert e["summary"]["rows_before"] == e["summary"]["rows_after"]

    # A new process on the same store puts the imported roster in force, not the shipped file.
    from zonechief.services import Services

    fresh = Services(NO_LIMIT, database_url=ref_live["url"])
    db = fresh.db  # opening the store puts the imported reference data in force
    assert fresh.index.lookup(lon, lat).chief.name == "新片长 <b>甲</b>"
    db.engine.dispose()


def _overlap(d):
    # Stretch one village over its neighbours.
    import shapely
    from shapely.geometry import mapping, shape

    f = d["features"][0]
    f["geometry"] = mapping(shapely.buffer(shape(f["geometry"]), 0.01))


def _bowtie(d):
    x, y = 114.05, 23.06
    d["features"][1]["geometry"] = {"type": "Polygon", "coordinates": [[[x, y], [x + .01, y + .01], [x + .01, y], [x, y + .01], [x, y]]]}


def _empty(d):
    d["features"][2]["geometry"] = None


REJECTED = [
    ("roster unknown zone", "roster", "text/csv",
     roster_csv({"QS-C05": {"zone_id": "QS-99"}}).encode(), "zones that do not exist: QS-99"),
    ("roster two chiefs", "roster", "text/csv",
     roster_csv(extra_rows=[{"person_id": "X-1", "role": "chief", "name": "二号", "phone": "1", "zone_id": "QS-03",
                             "effective_from": "2024-06-01", "effective_to": "", "note": ""}]).encode(), "two chiefs"),
    ("roster bad date", "roster", "text/csv", roster_csv({"QS-C05": {"effective_from": "someday"}}).encode(), "roster rejected"),
    ("roster ends before it starts", "roster", "text/csv", roster_csv({"QS-C05": {"effective_to": "2023-01-01"}}).encode(),
     "effective_to is not after effective_from for QS-C05"),
    ("roster not csv", "roster", "text/csv", b"\x89PNG\r\n\x1a\n\x00\x00garbage", "roster rejected"),
    ("roster wrong columns", "roster", "text/csv", b"a,b\n1,2\n", "missing columns"),
    ("boundaries overlap", "boundaries", "application/geo+json", villages(mutate=_overlap), "overlap"),
    ("boundaries self-intersecting", "boundaries", "application/geo+json", villages(mutate=_bowtie), "Self-intersection"),
    ("boundaries empty geometry", "boundaries", "application/geo+json", villages(mutate=_empty), "empty geometry"),
    ("boundaries drop a zone the roster needs", "boundaries", "application/geo+json",
     villages({"441900105218": "QS-19"}), "roster names zones that do not exist: QS-20"),
    ("boundaries not geojson", "boundaries", "application/geo+json", b'{"type": "Nope"}', "cannot read"),
    ("facilities unknown zone", "facilities", "application/geo+json",
     json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.05, 23.06]},
                 "properties": {"facility_id": "F1", "kind": "public_toilet", "service_code": "X1", "zone_id": "NOPE"}}]}).encode(),
     "facilities name zones that do not exist: NOPE"),
    ("facilities duplicate code", "facilities", "application/geo+json",
     json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.05, 23.06]},
                 "properties": {"facility_id": f"F{i}", "kind": "public_toilet", "service_code": "X1", "zone_id": "QS-01"}} for i in range(2)]}).encode(),
     "duplicate service_code"),
]


@pytest.mark.parametrize("kind, ctype, body, needle", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_import_changes_nothing(ref_live, zone_index, kind, ctype, body, needle):
    c, admin = ref_live["client"], ref_live["admin"]
    lon, lat = inner(zone_index, "QS-20")
    before_db, before_chief = snapshot(ref_live["url"]), chief_name(c, lon, lat)
    before_index = ref_live["services"].index
    r = c.put(f"/v1/admin/{kind}", content=body, headers={**admin, "Content-Type": ctype})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert needle in r.json()["detail"], r.json()["detail"]
    assert "zonechief-upload" not in r.json()["detail"]  # no server temp paths
    assert snapshot(ref_live["url"]) == before_db
    assert ref_live["services"].index is before_index and chief_name(c, lon, lat) == before_chief


def test_database_error_half_way_rolls_back(ref_live, zone_index):
    """The database itself refuses the last roster row, after the old rows were deleted: all rolled back."""
    url = ref_live["url"]
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    pg = url.startswith("postgresql")
    with eng.begin() as conn:
        if pg:
            conn.exec_driver_sql("ALTER TABLE roster ADD CONSTRAINT zc_test_no_boom CHECK (name <> 'BOOM')")
        else:
            conn.exec_driver_sql("CREATE TRIGGER zc_test_no_boom BEFORE INSERT ON roster WHEN NEW.name = 'BOOM' "
                                 "BEGIN SELECT RAISE(ABORT, 'no BOOM'); END")
    try:
        c, admin = ref_live["client"], ref_live["admin"]
        lon, lat = inner(zone_index, "QS-04")
        before_db, before_chief = snapshot(url), chief_name(c, lon, lat)
        body = roster_csv({"QS-C04": {"name": "QS-04 new chief"}},
                          extra_rows=[{"person_id": "Z-9", "role": "inspector", "name": "BOOM", "phone": "1", "zone_id": "QS-04",
                                       "effective_from": "2024-01-01", "effective_to": "", "note": ""}])
        r = c.put("/v1/admin/roster", content=body.encode(), headers={**admin, "Content-Type": "text/csv"})
        assert r.status_code == 422, r.text
        assert "the database refused the import; nothing was changed" in r.json()["detail"]
        assert snapshot(url) == before_db
        assert chief_name(c, lon, lat) == before_chief
    finally:
        with eng.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE roster DROP CONSTRAINT zc_test_no_boom" if pg else "DROP TRIGGER zc_test_no_boom")
        eng.dispose()


def test_admin_endpoints_need_an_admin_key(ref_live):
    c = ref_live["client"]
    body = roster_csv().encode()
    assert c.put("/v1/admin/roster", content=body, headers={"Content-Type": "text/csv"}).status_code == 401
    r = c.put("/v1/admin/roster", content=body, headers={**ref_live["staff"], "Content-Type": "text/csv"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert c.get("/v1/admin/audit", headers=ref_live["staff"]).status_code == 403
    r = c.put("/v1/admin/roster", content=body, headers={**ref_live["admin"], "Content-Type": "application/pdf"})
    assert r.status_code == 415 and "text/csv" in r.json()["detail"]


def test_boundaries_and_facilities_via_api(ref_live, zone_index):
    """Move 樟新社区 from ZMT-07 to ZMT-06, then replace the facilities; lookups follow at once."""
    c, admin = ref_live["client"], ref_live["admin"]
    ui = zone_index.units.set_index("unit_id")
    p = ui.geometry["441900112011"].buffer(-0.001).representative_point()
    assert c.get("/v1/lookup", params={"lon": p.x, "lat": p.y}).json()["zone"]["id"] == "ZMT-07"
    r = c.put("/v1/admin/boundaries", content=villages({"441900112011": "ZMT-06"}),
              headers={**admin, "Content-Type": "application/geo+json"})
    assert r.status_code == 200, r.text
    s = r.json()["summary"]["boundaries"]
    assert s["villages"]["changed"] == ["441900112011"] and sorted(s["zones"]["changed"]) == ["ZMT-06", "ZMT-07"]
    assert c.get("/v1/lookup", params={"lon": p.x, "lat": p.y}).json()["zone"]["id"] == "ZMT-06"
    assert ("441900112011", "ZMT-06") in snapshot(ref_live["url"])["villages"]
    # Reports filed now are assigned with the new boundaries.
    rep = c.post("/v1/reports", json=report(p.x, p.y))
    assert rep.status_code == 201 and rep.json()["zone_id"] == "ZMT-06"

    fac = json.loads((REPO_DATA / "facilities.geojson").read_text(encoding="utf-8"))
    fac["features"] = fac["features"][:5]
    code = fac["features"][0]["properties"]["service_code"]
    r = c.put("/v1/admin/facilities", content=json.dumps(fac).encode(), headers={**admin, "Content-Type": "application/geo+json"})
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["facilities"]["after"] == 5
    assert len(c.get("/v1/facilities").json()["features"]) == 5
    rep = c.post("/v1/reports", json={"source": "service_code", "category": "03001", "location": {"service_code": code}})
    assert rep.status_code == 201, rep.text
    actions = [e["action"] for e in c.get("/v1/admin/audit", headers=admin).json()["items"]]
    assert actions[:2] == ["facilities.import", "boundaries.import"]


@pytest.fixture
def fresh_store(store_url, tmp_path):
    """An empty store of the same backend as store_url."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'cli.sqlite'}"
        return
    with pg_database() as url:
        yield url


def test_cli_import_is_audited_and_rejects_cleanly(fresh_store, tmp_path):
    """`zonechief roster import` as an operator would run it, on its own store."""
    url = fresh_store
    env = {**os.environ, "ZONECHIEF_DATABASE_URL": url}
    exe = [sys.executable, "-m", "zonechief.cli"]
    bad = tmp_path / "bad.csv"
    bad.write_text(roster_csv({"QS-C05": {"zone_id": "QS-99"}}), encoding="utf-8")
    r = subprocess.run(exe + ["roster", "import", str(bad)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "QS-99" in r.stderr
    good = tmp_path / "roster.csv"
    good.write_text(roster_csv({"QS-C05": {"phone": "0769-12345678"}}), encoding="utf-8")
    r = subprocess.run(exe + ["roster", "import", str(good), "--actor", "王工"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["roster"]["people"]["changed"] == ["QS-C05"]
    r = subprocess.run(exe + ["audit", "--action", "roster.import", "--limit", "1"], env=env, capture_output=True, text=True, timeout=120)
    e = json.loads(r.stdout.splitlines()[0])
    assert e["actor"] == "王工" and e["summary"]["source"] == "roster.csv"
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT phone FROM roster WHERE person_id = 'QS-C05'")).scalar() == "0769-12345678"
    eng.dispose()
