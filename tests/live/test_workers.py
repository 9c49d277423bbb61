"""`zonechief serve --workers 4` on PostGIS, as production runs it: real processes, real HTTP.

The public submission limit holds across the workers (its buckets are in PostgreSQL), a
reference-data import through one worker is in force in all of them within a second
(LISTEN/NOTIFY), the workers' listeners come back after their connections are killed, and
the embedded SQLite store refuses more than one worker. /healthz says which worker answered
(pid) with which reference data (fingerprint, audit id); the access log names the worker too.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gis.shipped import DATA_DIR
from store.keys import create_key
from store.notify import APPLICATION_NAME
from tests.helpers import free_port, inner, pg_database

WORKERS = 4
PER_MINUTE = 3
DEMO = 40  # --demo reports, seeded once by the parent process, not once per worker
EXE = [sys.executable, "-m", "zonechief.cli"]
ACCESS = re.compile(r"\[(\d+)\] 127\.0\.0\.1:\d+ - \"POST /v1/reports HTTP/1\.1\" (\d{3})")


def fresh_connections(url: str) -> httpx.Client:
    """A client opening a new connection for each request: any worker may accept it."""
    return httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def health(client: httpx.Client) -> dict:
    """/healthz; a 503 (the database missed a beat) names the worker and its reference data all the same."""
    r = client.get("/healthz")
    assert r.status_code in (200, 503), r.text
    return r.json()


def warm(h: dict) -> bool:
    """Past the start-up warm-up (hot-spot kernels), which competes for the CPU with the work watched."""
    return h["checks"].get("hotspots", {}).get("status") != "warming"


def watch(clients: list[httpx.Client], done, timeout: float = 30.0, pause: float = 0.1,
          log: list | None = None) -> dict[int, tuple[float, dict]]:
    """Probe /healthz from a thread per client until `done(answers)`; per pid, its latest /healthz and when it
    came (every answer, in order, also to `log`).

    A pause between probes leaves the workers' CPU (2 cores for 4 workers) to the work watched; 4 threads
    still see each worker about every 0.1 s.
    """
    answers: dict[int, tuple[float, dict]] = {}
    lock, stop = threading.Lock(), threading.Event()
    deadline = time.monotonic() + timeout

    def probe(client):
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                h = health(client)
            except httpx.TransportError:  # still starting
                h = None
            with lock:
                if h is not None:
                    answers[h["worker"]["pid"]] = (time.monotonic(), h)
                    if log is not None:
                        log.append((time.monotonic(), h["worker"]["pid"], h["worker"]["reference"]))
                if done(answers):
                    stop.set()
            stop.wait(pause if h is not None else 0.05)

    threads = [threading.Thread(target=probe, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def listeners(pg_url: str) -> list[int]:
    eng = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        pids = c.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND application_name = :n"), {"n": APPLICATION_NAME}).scalars().all()
    eng.dispose()
    return list(pids)


def villages(zone_of: dict) -> bytes:
    d = json.loads((DATA_DIR / "villages.geojson").read_text(encoding="utf-8"))
    for f in d["features"]:
        f["properties"]["zone_id"] = zone_of.get(f["properties"]["code"], f["properties"]["zone_id"])
    return json.dumps(d, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`zonechief serve --workers 4 --demo` on a throw-away PostGIS database, with a low submission limit."""
    logs = tmp_path_factory.mktemp("workers")
    with pg_database() as pg_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ZONECHIEF_DATABASE_URL": pg_url, "ZONECHIEF_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
               "PYTHONUNBUFFERED": "1"}  # the access log is read while the server runs
        clients = [fresh_connections(url) for _ in range(4)]  # made once: each costs ~0.1 s (its SSL context)
        with open(logs / "out.log", "w") as out, open(logs / "err.log", "w") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen(EXE + ["serve", "--workers", str(WORKERS), "--port", str(port),
                                           "--demo", "--demo-reports", str(DEMO)],
                                    env=env, stdout=out, stderr=err)
            try:
                seen = watch(clients, lambda a: len(a) == WORKERS or proc.poll() is not None, timeout=180)
                assert len(seen) == WORKERS, (seen, (logs / "err.log").read_text())
                print(f"\n{WORKERS} workers answering {time.monotonic() - t0:.1f} s after `zonechief serve` started", end="")
                seen = watch(clients, lambda a: len(a) == WORKERS and all(warm(h) for _, h in a.values()), timeout=180)
                assert len(seen) == WORKERS and all(warm(h) for _, h in seen.values()), seen
                print(f"; warmed up after {time.monotonic() - t0:.1f} s")
                eng = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
                with Session(eng) as s, s.begin():
                    _, admin = create_key(s, "admin", "workers test")
                eng.dispose()
                yield {"url": url, "pg": pg_url, "admin": {"X-API-Key": admin}, "access_log": logs / "out.log",
                       "clients": clients}
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                for c in clients:
                    c.close()


def test_submission_limit_holds_across_workers(served, zone_index):
    lon, lat = inner(zone_index, "QS-02")
    body = {"source": "gps", "category": "06010", "location": {"lon": lon, "lat": lat}}
    clients = served["clients"]  # concurrent fresh connections: the workers share them out
    answers: list[httpx.Response] = []
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        # Until more than one worker has taken submissions (each would grant 3 with buckets of its own).
        while len(answers) < 64 and len(posted_by(served)) < 2:
            answers += pool.map(lambda i: clients[i].post("/v1/reports", json=body), range(len(clients)))
            time.sleep(0.1)  # the access log is written after the answer
    elapsed = time.monotonic() - t0
    codes = Counter(r.status_code for r in answers)
    # 3 per minute with a burst of 3, for all workers together: 3, plus one per 20 s elapsed.
    allowed = PER_MINUTE + math.floor(elapsed * PER_MINUTE / 60)
    assert set(codes) == {201, 429} and PER_MINUTE <= codes[201] <= allowed, (codes, elapsed)
    limited = next(r for r in answers if r.status_code == 429)
    assert "at most 3 per minute" in limited.json()["detail"] and 1 <= int(limited.headers["retry-after"]) <= 20

    # The access log names the worker of each request: more than one took these submissions.
    served_by = posted_by(served, len(answers))
    assert sum(served_by.values(), Counter()) == codes and len(served_by) > 1, served_by
    eng = sa.create_engine(served["pg"], poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM reports")).scalar() == DEMO + codes[201]
        assert c.execute(sa.text("SELECT count(*) FROM rate_limit_buckets WHERE key = '127.0.0.1'")).scalar() == 1
    eng.dispose()


def posted_by(served, n: int = 0) -> dict[int, Counter]:
    """Per worker pid, the statuses of its answers to POST /v1/reports, from the access log
    (waiting for `n` of them: a line is written just after its answer)."""
    deadline = time.monotonic() + 5
    while True:
        out: dict[int, Counter] = {}
        for pid, status in ACCESS.findall(served["access_log"].read_text()):
            out.setdefault(int(pid), Counter())[int(status)] += 1
        if sum(sum(c.values()) for c in out.values()) >= n or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def _import_and_watch(served, zone_of: dict, deadline_s: float):
    r = httpx.put(served["url"] + "/v1/admin/boundaries", content=villages(zone_of), timeout=60,
                  headers={**served["admin"], "Content-Type": "application/geo+json"})
    answered = time.monotonic()
    assert r.status_code == 200, r.text
    version = max(r.json()["audit_ids"])
    # Every worker must show the new version, and none the old one once it has shown the new one.
    log: list = []
    answers = watch(served["clients"], lambda a: len(a) == WORKERS and all(
        h["worker"]["reference"]["audit_id"] == version for _, h in a.values()), timeout=deadline_s + 10, log=log)
    assert len(answers) == WORKERS, answers
    assert all(h["worker"]["reference"]["audit_id"] == version for _, h in answers.values()), answers
    first = {pid: min(t for t, p, ref in log if p == pid and ref["audit_id"] == version) for pid in answers}
    assert not [(t, p) for t, p, ref in log if ref["audit_id"] != version and t > first[p]]
    lag = {pid: round(t - answered, 3) for pid, t in first.items()}
    print(f"import in force in all {WORKERS} workers {max(lag.values()):.2f} s after the import answered: {lag}")
    assert max(lag.values()) <= deadline_s, lag
    return {h["worker"]["reference"]["fingerprint"] for _, h in answers.values()}


def test_boundary_import_is_in_force_in_every_worker_within_a_second(served, zone_index):
    before = watch(served["clients"], lambda a: len(a) == WORKERS)
    old = {h["worker"]["reference"]["fingerprint"] for _, h in before.values()}
    assert len(before) == WORKERS and len(old) == 1  # the same data everywhere to begin with
    # Move 樟新社区 from ZMT-07 to ZMT-06.
    p = zone_index.units.set_index("unit_id").geometry["441900112011"].buffer(-0.001).representative_point()
    assert httpx.get(served["url"] + "/v1/lookup", params={"lon": p.x, "lat": p.y}).json()["zone"]["id"] == "ZMT-07"
    new = _import_and_watch(served, {"441900112011": "ZMT-06"}, deadline_s=1.0)
    assert len(new) == 1 and new != old  # one fingerprint, the same whether uploaded or reloaded from the store
    clients = served["clients"]
    with ThreadPoolExecutor(len(clients)) as pool:
        zones = list(pool.map(lambda i: clients[i % 4].get("/v1/lookup", params={"lon": p.x, "lat": p.y}).json(), range(16)))
    assert {z["zone"]["id"] for z in zones} == {"ZMT-06"}


def test_listeners_come_back_after_their_connections_die(served):
    """A database restart ends every connection; here only the listeners' are ended, the rest of the
    PostgreSQL cluster (other tests' databases) is left alone. An import made meanwhile still arrives."""
    deadline = time.monotonic() + 10
    while len(listeners(served["pg"])) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = listeners(served["pg"])
    assert len(killed) == WORKERS  # one listener per worker
    eng = sa.create_engine(served["pg"], poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        assert all(c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": p}).scalar() for p in killed)
    eng.dispose()
    _import_and_watch(served, {"441900112011": "ZMT-07"}, deadline_s=5.0)  # reconnecting: at most ~1 s of back-off
    deadline = time.monotonic() + 10
    while len(back := listeners(served["pg"])) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(back) == WORKERS and not set(back) & set(killed)


def test_sqlite_refuses_several_workers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ZONECHIEF_DATABASE_URL"}
    env["ZONECHIEF_SQLITE_PATH"] = str(tmp_path / "var" / "zc.sqlite")
    r = subprocess.run(EXE + ["serve", "--workers", "2", "--port", str(free_port())], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "SQLite store supports one worker only" in r.stderr and "ZONECHIEF_DATABASE_URL" in r.stderr, r.stderr
    assert not (tmp_path / "var" / "zc.sqlite").exists()  # refused before the store was touched
