"""Notification latency: from POST /v1/reports to its report.created webhook arriving, under a steady load.

    .venv/bin/python benchmarks/bench_notify.py [--rate 50] [--seconds 60] [--threads 8] [--workers 1,2]
                                                [--database-url postgresql+psycopg://…] [--grace 10]

For each configuration (`zonechief serve` as one process, then with `--workers 2`) a real server
is started on PostGIS (a throw-away database per configuration, dropped afterwards, or the one
given by --database-url, shared) and waited for until every worker answers /healthz past its
warm-up. A receiver runs in this script (a threaded http.server on 127.0.0.1, HTTP/1.1 keep-alive,
answering 200 at once) and is registered as a JSON webhook for every event; it records the
arrival of each X-Zonechief-Event-Id and checks its signature. After 20 untimed reports (the
dispatcher's connections are open), reports are filed at --rate per second for --seconds from
--threads client threads (httpx, keep-alive; each report has its send instant on a fixed
schedule, so a slow answer delays no other report). Latency = arrival of the report's
report.created event − the moment its POST was sent, both on this process's monotonic clock.

Printed per configuration: reports filed, errors, lost (filed, but no report.created within
--grace seconds after the last one was sent), duplicate deliveries (any event id received twice),
bad signatures, the latency percentiles and the POST's own round trip. Target: p99 < 1 s.
The server is stopped (SIGTERM, then SIGKILL of its own process group) whatever happens.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store.keys import create_key  # noqa: E402
from tests.helpers import free_port, inner, pg_database, shipped_index  # noqa: E402

SECRET = "bench-notify-secret-0123456789"
ZONES = ("QS-02", "QS-07", "ZMT-03", "ZMT-05")
WARM_UP = 20


# ------------------------------------------------------------------ the receiver
class Receiver:
    """A webhook receiver on 127.0.0.1: (arrival, event id, type, report id, signature ok) per POST."""

    def __init__(self):
        self.log: list[tuple[float, int, str, int, bool]] = []
        log = self.log

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the dispatcher's client reuses its connections

            def do_POST(self):  # noqa: N802 (http.server's name)
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                t = time.monotonic()
                good = hmac.compare_digest(self.headers.get("X-Zonechief-Signature", ""),
                                           "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest())
                body = json.loads(data)
                log.append((t, int(self.headers["X-Zonechief-Event-Id"]), body["type"], body["report"]["id"], good))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def created_at(self) -> dict[int, float]:
        """report id → first arrival of its report.created."""
        out: dict[int, float] = {}
        for t, _, kind, rid, _ in list(self.log):
            if kind == "report.created" and rid not in out:
                out[rid] = t
        return out

    def close(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ the server
@contextmanager
def served(db_url: str, workers: int, logdir: Path):
    """`zonechief serve [--workers N]` on `db_url`, answering and warmed up; stopped on the way out."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONECHIEF_", "NUMBA_CACHE_DIR"))}
    env.update(PYTHONPATH=str(ROOT), ZONECHIEF_DATABASE_URL=db_url, ZONECHIEF_RATE_LIMIT_PER_MINUTE="0")
    args = [sys.executable, "-m", "zonechief.cli", "serve", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    log = open(logdir / f"serve-{workers}.log", "wb")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        wait_ready(url, workers, proc, timeout=240)
        print(f"  {workers} worker(s) ready {time.monotonic() - t0:.1f} s after spawn", flush=True)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the workers go with it
            proc.wait(10)
        log.close()


def wait_ready(url: str, workers: int, proc: subprocess.Popen, timeout: float) -> None:
    """Until `workers` distinct pids answer /healthz past the hot-spot warm-up (fresh connections: any worker)."""
    seen: dict[int, bool] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        while not (len(seen) == workers and all(seen.values())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not come up (exit {proc.poll()}); workers seen: {seen}")
            try:
                h = c.get("/healthz").json()
                seen[h["worker"]["pid"]] = h["checks"].get("hotspots", {}).get("status") != "warming"
            except (httpx.TransportError, ValueError, KeyError):
                pass
            time.sleep(0.1)


def admin_key(db_url: str) -> str:
    """An admin key, written straight into the server's database (as `zonechief keys create` would)."""
    eng = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with Session(eng) as s, s.begin():
        _, key = create_key(s, "admin", "bench_notify")
    eng.dispose()
    return key


# ------------------------------------------------------------------ the load
def file_reports(url: str, n: int, rate: float, threads: int, bodies: list[dict]) -> tuple[dict[int, float], list]:
    """POST n reports on a fixed schedule (`rate` per second); (report id → send instant, [(status, round trip)])."""
    sent: dict[int, float] = {}
    answers: list[tuple[int, float]] = []
    counter, lock = itertools.count(), threading.Lock()
    t0 = time.monotonic() + 0.2

    def worker():
        with httpx.Client(base_url=url, timeout=30) as c:
            while True:
                with lock:
                    i = next(counter)
                if i >= n:
                    return
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                t = time.monotonic()
                try:
                    r = c.post("/v1/reports", json=bodies[i % len(bodies)])
                except httpx.HTTPError:
                    answers.append((0, time.monotonic() - t))
                    continue
                answers.append((r.status_code, time.monotonic() - t))
                if r.status_code == 201:
                    sent[r.json()["id"]] = t

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return sent, answers


def run(db_url: str, workers: int, a, bodies: list[dict], logdir: Path) -> dict:
    """One configuration: serve, subscribe, warm up, file the load, wait for the stragglers, measure."""
    receiver = Receiver()
    try:
        with served(db_url, workers, logdir) as url:
            headers = {"X-API-Key": admin_key(db_url)}
            with httpx.Client(base_url=url, timeout=30) as c:
                hook = c.post("/v1/admin/webhooks", headers=headers, json={"url": receiver.url, "secret": SECRET})
                hook.raise_for_status()
                warm, _ = file_reports(url, WARM_UP, 10, 2, bodies)
                wait_for(receiver, set(warm), 30)
                receiver.log.clear()
                n = int(a.rate * a.seconds)
                t_start = time.monotonic()
                sent, answers = file_reports(url, n, a.rate, a.threads, bodies)
                t_end = time.monotonic()
                wait_for(receiver, set(sent), a.grace)
                c.delete(f"/v1/admin/webhooks/{hook.json()['id']}", headers=headers)  # a shared database stays quiet
        return measure(receiver, sent, answers, t_end - t_start, a)
    finally:
        receiver.close()


def wait_for(receiver: Receiver, ids: set[int], grace: float) -> None:
    """Until every report in `ids` has its report.created, or `grace` seconds."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not ids <= receiver.created_at().keys():
        time.sleep(0.05)


def measure(receiver: Receiver, sent: dict[int, float], answers: list, elapsed: float, a) -> dict:
    """The figures of one configuration."""
    got = receiver.created_at()
    lat = np.array([got[rid] - t for rid, t in sent.items() if rid in got])
    ids = [e for _, e, _, _, _ in receiver.log]
    rtt = np.array([t for s, t in answers if s == 201])
    pct = (lambda x, q: float(np.percentile(x, q)) * 1000 if len(x) else float("nan"))
    return {"filed": len(sent), "errors": sum(1 for s, _ in answers if s != 201), "rate": len(sent) / elapsed,
            "lost": len(sent.keys() - got.keys()), "duplicates": len(ids) - len(set(ids)), "events": len(ids),
            "bad_signatures": sum(1 for *_, ok in receiver.log if not ok),
            "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": pct(lat, 100),
            "post_p50": pct(rtt, 50), "post_p99": pct(rtt, 99)}


def main():
    """Run each configuration and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=50, help="reports per second")
    ap.add_argument("--seconds", type=float, default=60, help="how long the load lasts")
    ap.add_argument("--threads", type=int, default=8, help="client threads (each with a keep-alive connection)")
    ap.add_argument("--workers", default="1,2", help="configurations: comma-separated `serve --workers` counts")
    ap.add_argument("--grace", type=float, default=10, help="seconds after the load before a report counts as lost")
    ap.add_argument("--database-url", default=None, help="PostGIS URL to use (default: a throw-away database each)")
    a = ap.parse_args()
    idx = shipped_index()
    bodies = [{"source": "gps", "category": "06010", "description": "bench_notify",
               "location": dict(zip(("lon", "lat"), inner(idx, z)))} for z in ZONES]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        for workers in [int(w) for w in a.workers.split(",")]:
            name = "serve" if workers == 1 else f"serve --workers {workers}"
            print(f"{name}: {a.rate:g} reports/s for {a.seconds:g} s", flush=True)
            with ExitStack() as stack:
                db_url = a.database_url or stack.enter_context(pg_database())
                rows[name] = run(db_url, workers, a, bodies, Path(tmp))
    print(f"\n{'configuration':22s} {'filed':>6s} {'err':>4s} {'rate/s':>7s} {'lost':>5s} {'dup':>4s} {'badsig':>6s} "
          f"{'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}   POST p50/p99 ms")
    for name, r in rows.items():
        print(f"{name:22s} {r['filed']:6d} {r['errors']:4d} {r['rate']:7.1f} {r['lost']:5d} {r['duplicates']:4d} "
              f"{r['bad_signatures']:6d} {r['p50']:7.0f} {r['p90']:7.0f} {r['p99']:7.0f} {r['max']:7.0f}   "
              f"{r['post_p50']:.0f}/{r['post_p99']:.0f}")
    ok = all(r["p99"] < 1000 and r["lost"] == 0 for r in rows.values())
    print(f"\ntarget p99 < 1 s, none lost: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
