"""Bounded load on 127.0.0.1: 10,000 reports from 16 concurrent clients against uvicorn on PostGIS.

They must end as exactly 10,000 rows, each in the zone ZoneIndex.lookup gives for its point. Lookup
latency under that load is measured and printed (p50/p95/p99), not asserted: it depends on the machine.
The server is `zonechief serve` in its own process, as deployed (uvicorn runs the sync endpoints in
its thread pool); in-process it would share the GIL with the 16 client threads and skew the latencies.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from tests.helpers import free_port, pg_database

pytestmark = pytest.mark.load
N, CLIENTS = 10_000, 16


@pytest.fixture(scope="module")
def pg_live(tmp_path_factory):
    """`zonechief serve` in its own process (so the 16 client threads here do not share its GIL)."""
    with pg_database() as url:
        port = free_port()
        env = {**os.environ, "ZONECHIEF_DATABASE_URL": url, "ZONECHIEF_PORT": str(port), "ZONECHIEF_HOST": "127.0.0.1",
               "ZONECHIEF_RATE_LIMIT_PER_MINUTE": "0"}  # one address sends it all
        log = open(tmp_path_factory.mktemp("load") / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "zonechief.cli", "serve"], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:  # bounded wait for the server
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
            yield {"url": base, "db": url}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def test_ten_thousand_reports_from_sixteen_clients(pg_live, zone_index):
    rng = np.random.default_rng(2026)
    minx, miny, maxx, maxy = zone_index.zones.total_bounds
    # Over the zones' bounding box and a margin: inside, on edges' neighbourhoods, snapped and outside.
    cand_x = rng.uniform(minx - 0.01, maxx + 0.01, 4 * N)
    cand_y = rng.uniform(miny - 0.01, maxy + 0.01, 4 * N)
    inside = zone_index.assign(cand_x, cand_y).zone_id.notna().to_numpy()
    # 90 % in some zone, 10 % anywhere over the box and a margin (outside, or snapped within tolerance).
    pick = np.concatenate([np.flatnonzero(inside)[: N * 9 // 10], np.flatnonzero(~inside)[: N - N * 9 // 10]])
    xs, ys = cand_x[pick], cand_y[pick]
    expected = [zone_index.lookup(float(x), float(y)).zone_id for x, y in zip(xs, ys)]
    failures, post_lat, lookup_lat = [], [], []
    lock = threading.Lock()
    writers_done = threading.Event()

    def writer(k):
        lat = []
        with httpx.Client(base_url=pg_live["url"], timeout=60) as c:
            for i in range(k, N, CLIENTS):
                body = {"source": "gps", "category": "06010", "description": f"load {i}",
                        "location": {"lon": float(xs[i]), "lat": float(ys[i])}, "idempotency_key": f"load-{i}"}
                for _attempt in range(5):  # bounded retries on transport errors; the key makes them safe
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/v1/reports", json=body)
                    except httpx.TransportError as exc:
                        err = repr(exc)
                        continue
                    lat.append(time.perf_counter() - t0)
                    err = None if r.status_code == 201 else f"{r.status_code} {r.text[:200]}"
                    break
                if err:
                    with lock:
                        failures.append((i, err))
        with lock:
            post_lat.extend(lat)

    def reader():
        r_rng = np.random.default_rng(7)
        with httpx.Client(base_url=pg_live["url"], timeout=60) as c:
            for _ in range(20_000):  # bounded; stops when the writers are done
                if writers_done.is_set():
                    break
                x, y = r_rng.uniform(minx, maxx), r_rng.uniform(miny, maxy)
                t0 = time.perf_counter()
                r = c.get("/v1/lookup", params={"lon": x, "lat": y})
                lookup_lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    with lock:
                        failures.append(("lookup", r.status_code))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(CLIENTS)]
    rd = threading.Thread(target=reader)
    for t in threads + [rd]:
        t.start()
    for t in threads:
        t.join(600)
    writers_done.set()
    rd.join(60)
    wall = time.perf_counter() - t0
    print(f"\nload: {N} reports from {CLIENTS} clients in {wall:.1f} s ({N / wall:.0f}/s); "
          f"POST /v1/reports p50 {pct(post_lat, 50):.1f} ms, p99 {pct(post_lat, 99):.1f} ms; "
          f"GET /v1/lookup under load ({len(lookup_lat)} calls) p50 {pct(lookup_lat, 50):.1f} ms, "
          f"p95 {pct(lookup_lat, 95):.1f} ms, p99 {pct(lookup_lat, 99):.1f} ms")
    assert not any(t.is_alive() for t in threads + [rd])
    assert not failures, failures[:10]

    eng = sa.create_engine(pg_live["db"], poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT idempotency_key, zone_id FROM reports WHERE idempotency_key LIKE 'load-%'")).all()
        total = c.execute(sa.text("SELECT count(*) FROM reports")).scalar()
    eng.dispose()
    assert total == N and len(rows) == N
    got = {k: z for k, z in rows}
    assert len(got) == N
    wrong = [(i, got[f"load-{i}"], expected[i]) for i in range(N) if got[f"load-{i}"] != expected[i]]
    assert not wrong, wrong[:10]
    assert sum(z is None for z in expected) > 0 and sum(z is not None for z in expected) > N // 2  # both kinds exercised
