"""Cost of the database deadlines (store.deadline) on the request path, side by side in one run.

Requests go through TestClient (in process), so the figure is the server's own time.

    .venv/bin/python benchmarks/bench_db_deadlines.py [--rounds 5] [--n 300]

A and B are the same app on the same PostGIS database; B's engine has no deadlines (Deadlines.install
skipped). Requests alternate A, B one at a time; printed: medians per request (wall and this process's
CPU) and per SELECT 1 statement, and the ratio A/B.
"""
import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from store.deadline import Deadlines  # noqa: E402
from tests.helpers import inner, pg_database, shipped_index  # noqa: E402
from zonechief.settings import Settings  # noqa: E402


def main():
    """Run A and B side by side and print the medians."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    idx = shipped_index()
    lon, lat = inner(idx, "QS-07")
    body = {"source": "gps", "category": "06010", "description": "x", "location": {"lon": lon, "lat": lat}}
    with pg_database() as url:
        with_app = create_app(idx, Settings(rate_limit_per_minute=0), url)
        assert with_app.state.services.db.engine  # opened now, with deadlines
        with mock.patch.object(Deadlines, "install", lambda self, engine: None):
            without_app = create_app(idx, Settings(rate_limit_per_minute=0), url)
            assert without_app.state.services.db.engine  # opened inside the patch: no deadlines
        apps = {"with deadlines": with_app, "without": without_app}
        clients = {k: TestClient(v) for k, v in apps.items()}
        post = {k: [] for k in apps}
        select = {k: [] for k in apps}
        post_cpu = {k: [] for k in apps}
        select_cpu = {k: [] for k in apps}
        conns = {k: apps[k].state.services.db.engine.connect() for k in apps}
        for c in clients.values():  # warm up
            for _ in range(50):
                c.post("/v1/reports", json=body)
        keys = list(apps)
        # One request (or 20 statements) at a time, A and B alternating, the order swapped every time:
        # drifting load from other processes falls on both alike.
        for i in range(a.rounds * a.n):
            for k in (keys if i % 2 else keys[::-1]):
                t, c0 = time.perf_counter(), time.process_time()
                r = clients[k].post("/v1/reports", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
                post[k].append(time.perf_counter() - t)
                post_cpu[k].append(time.process_time() - c0)
                assert r.status_code == 201
                t, c0 = time.perf_counter(), time.process_time()
                for _ in range(20):
                    conns[k].exec_driver_sql("SELECT 1")
                select[k].append((time.perf_counter() - t) / 20)
                select_cpu[k].append((time.process_time() - c0) / 20)
        for c in conns.values():
            c.close()
        for name, d in (("POST /v1/reports", post), ("  client CPU", post_cpu), ("SELECT 1 statement", select),
                        ("  client CPU", select_cpu)):
            m = {k: statistics.median(v) for k, v in d.items()}
            print(f"{name:20s} with deadlines {m['with deadlines'] * 1e6:8.1f} µs   without {m['without'] * 1e6:8.1f} µs"
                  f"   ratio {m['with deadlines'] / m['without']:.3f}")
        for v in apps.values():
            v.state.services.db.engine.dispose()


if __name__ == "__main__":
    main()
