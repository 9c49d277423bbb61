"""First-request latency of every page and endpoint in a freshly started server process.

    .venv/bin/python benchmarks/bench_cold_start.py [--reps 3] [--tree after=. --tree before=/tmp/before-cold]
                                                    [--only "maps,healthz"] [--reports 2000] [--delay 0]

For each endpoint (the /v1 JSON endpoints, /ogc, /open311, each /maps page, /docs,
/openapi.json, /healthz) and each repetition, a new `zonechief serve` process is started
on a free port with its own copy of a seeded SQLite store; as soon as it accepts TCP
connections (uvicorn listens once its startup is done), the endpoint is requested twice,
and the time to first byte (request sent → status line and headers read) of each is
recorded (with --delay, the first request comes that many seconds after the server
accepts connections: a background warm-up has had time to finish). Printed: medians over
the repetitions of the first and second request, their ratio, and the median time from
spawn to accepting connections.

Several trees (e.g. a git worktree of the code before a change: `git worktree add
/tmp/before-cold HEAD`) run alternately, endpoint by endpoint, in the same run, so that
load from elsewhere on the machine hits them alike. Each tree runs its own code (cwd and
PYTHONPATH) with this interpreter, its own demo store (seeded the same way; the schemas
may differ) and its own numba caches, which one untimed start per tree fills first: the
figures are those of a restart, not of the very first start of a new install.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LON, LAT = 114.05, 23.06


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(tree: Path, env: dict, *args: str, **kw) -> subprocess.CompletedProcess:
    """`zonechief ARGS` from a tree's code (cwd and PYTHONPATH), with this interpreter."""
    return subprocess.run([sys.executable, "-c", "from zonechief.cli import main; main()", *args], cwd=tree,
                          env=env, check=True, capture_output=True, text=True, **kw)


def tree_env(tree: Path, store: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONECHIEF_", "NUMBA_CACHE_DIR"))}
    env.update(PYTHONPATH=str(tree), ZONECHIEF_SQLITE_PATH=str(store), ZONECHIEF_RATE_LIMIT_PER_MINUTE="0")
    return env


class Server:
    """`zonechief serve` on a free port, from spawn until it accepts connections."""

    def __init__(self, tree: Path, store: Path, log: Path):
        self.port = free_port()
        self.log = open(log, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", "from zonechief.cli import main; main()", "serve",
                                      "--port", str(self.port)], cwd=tree, env=tree_env(tree, store),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server in {tree} did not come up; see {log}") from None
                time.sleep(0.01)
        self.ready_s = time.perf_counter() - t0

    def request(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, float, int]:
        """(status, seconds to the status line and headers, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            c.connect()
            t0 = time.perf_counter()
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            ttfb = time.perf_counter() - t0
            return r.status, ttfb, len(r.read())
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def endpoints(ids: dict) -> list[tuple[str, str, str, bytes | None, dict]]:
    """(name, method, path, body, headers): every page and endpoint a client or planner uses."""
    admin = {"X-API-Key": ids["admin_key"]}
    as_json = {"Content-Type": "application/json"}
    report = json.dumps({"source": "gps", "category": ids["category"], "description": "bench",
                         "location": {"lon": LON, "lat": LAT}}).encode()
    points = json.dumps([{"lon": LON + 0.001 * k, "lat": LAT} for k in range(100)]).encode()
    form = f"service_code={ids['category']}&lat={LAT}&long={LON}&description=bench".encode()
    rid, zid, cid, code, o311 = ids["report"], ids["zone"], ids["chief"], ids["category"], ids["o311"]
    g = [
        ("healthz", "/healthz"),
        ("v1 lookup", f"/v1/lookup?lon={LON}&lat={LAT}"),
        ("v1 zones", "/v1/zones"), ("v1 zone", f"/v1/zones/{zid}"), ("v1 villages", "/v1/villages"),
        ("v1 chiefs", "/v1/chiefs"), ("v1 categories", "/v1/categories"), ("v1 facilities", "/v1/facilities"),
        ("v1 reports", "/v1/reports"), ("v1 report", f"/v1/reports/{rid}"),
        ("ogc landing", "/ogc"), ("ogc conformance", "/ogc/conformance"), ("ogc collections", "/ogc/collections"),
        ("ogc collection", f"/ogc/collections/{ids['collection']}"),
        ("ogc items", f"/ogc/collections/{ids['collection']}/items?limit=100"),
        ("ogc item", f"/ogc/collections/{ids['collection']}/items/{ids['feature']}"),
        ("open311 discovery", "/open311/v2/discovery.json"), ("open311 services", "/open311/v2/services.json"),
        ("open311 service", f"/open311/v2/services/{code}.json"), ("open311 requests", "/open311/v2/requests.json"),
        ("open311 request", f"/open311/v2/requests/{o311}.json"),
        ("maps index", "/"), ("maps zones", "/maps/zones"), ("maps heatmap", "/maps/heatmap"),
        ("maps heatmap by week", "/maps/heatmap?by=week"), ("maps hotspots", "/maps/hotspots"),
        ("docs", "/docs"), ("openapi.json", "/openapi.json"),
    ]
    out = [(name, "GET", path, None, {}) for name, path in g]
    out += [("v1 chief queue", "GET", f"/v1/chiefs/{cid}/queue", None, admin),
            ("v1 admin audit", "GET", "/v1/admin/audit", None, admin),
            ("v1 lookup POST 100", "POST", "/v1/lookup", points, as_json),
            ("v1 reports POST", "POST", "/v1/reports", report, as_json),
            ("open311 requests POST", "POST", "/open311/v2/requests.json", form,
             {"Content-Type": "application/x-www-form-urlencoded", **admin})]
    return out


def prepare(name: str, tree: Path, work: Path, reports: int) -> dict:
    """A seeded store and an admin key for the tree, ids to request, and its numba caches filled."""
    store = work / f"{name}.sqlite"
    env = tree_env(tree, store)
    cli(tree, env, "demo", "seed", "--reports", str(reports), timeout=1800)
    key = cli(tree, env, "keys", "create", "--role", "admin", "--name", "bench").stdout.strip().splitlines()[-1]
    run = work / f"{name}-prime.sqlite"
    shutil.copy(store, run)
    srv = Server(tree, run, work / f"{name}.log")
    try:
        def get(path):
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
            c.request("GET", path, headers={"X-API-Key": key})
            r = c.getresponse()
            assert r.status == 200, (path, r.status)
            return json.loads(r.read())

        rid = get("/v1/reports?limit=1")["items"][0]["id"]
        coll = get("/ogc/collections")["collections"][0]["id"]
        ids = {"admin_key": key, "report": rid, "o311": rid, "chief": get("/v1/chiefs")[0]["id"],
               "category": get("/v1/categories")[0]["code"],
               "zone": get("/v1/zones")["features"][0]["properties"]["zone_id"], "collection": coll,
               "feature": get(f"/ogc/collections/{coll}/items?limit=1")["features"][0]["id"]}
        for name_, method, path, body, headers in endpoints(ids):  # fills the numba caches, checks every answer
            status, _, _ = srv.request(method, path, body, headers)
            assert status < 300, (name, name_, status)
    finally:
        srv.stop()
    ids["store"] = str(store)
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                    help="a checkout to run (repeat; default: this one, as 'main')")
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per endpoint and tree")
    ap.add_argument("--reports", type=int, default=2000, help="demo reports in the store")
    ap.add_argument("--delay", type=float, default=0.0,
                    help="seconds to wait between accepting connections and the first request (0: at once)")
    ap.add_argument("--only", default=None, help="only endpoints whose name contains one of these (comma-separated)")
    a = ap.parse_args()
    trees = dict(t.split("=", 1) for t in a.tree) or {"main": str(ROOT)}
    trees = {k: Path(v).resolve() for k, v in trees.items()}
    work = Path(tempfile.mkdtemp(prefix="zc-cold-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {a.reps} fresh processes per endpoint and tree, "
          f"{a.reports} demo reports, first request {a.delay:g} s after accepting connections; load average "
          f"{os.getloadavg()[0]:.1f}; logs in {work}", flush=True)
    ids = {name: prepare(name, tree, work, a.reports) for name, tree in trees.items()}
    names = [e[0] for e in endpoints(ids[next(iter(trees))]) if a.only is None or any(o in e[0] for o in a.only.split(","))]
    res = {(n, t): {"first": [], "second": [], "ready": []} for n in names for t in trees}
    for rep in range(a.reps):
        for n in names:
            for t, tree in (trees.items() if rep % 2 == 0 else reversed(trees.items())):
                ep = {e[0]: e for e in endpoints(ids[t])}[n]
                run = work / f"{t}-run.sqlite"
                shutil.copy(ids[t]["store"], run)
                srv = Server(tree, run, work / f"{t}.log")
                try:
                    time.sleep(a.delay)
                    s1, first, _ = srv.request(*ep[1:])
                    s2, second, _ = srv.request(*ep[1:])
                finally:
                    srv.stop()
                if s1 >= 300 or s2 >= 300:
                    raise SystemExit(f"{t} {n}: HTTP {s1}, {s2}")
                r = res[(n, t)]
                r["first"].append(first)
                r["second"].append(second)
                r["ready"].append(srv.ready_s)
            print(f"  rep {rep + 1}/{a.reps} {n}: " + "  ".join(
                f"{t} {res[(n, t)]['first'][-1] * 1e3:.0f} ms" for t in trees), flush=True)
    med = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
    head = f"{'endpoint':<24}" + "".join(f"{t + ' first':>14}{'second':>9}{'ratio':>7}" for t in trees)
    print("\nTime to first byte, ms (median of fresh processes)\n" + head)
    for n in names:
        line = f"{n:<24}"
        for t in trees:
            f, s = med(res[(n, t)]["first"]), med(res[(n, t)]["second"])
            line += f"{f:>14.0f}{s:>9.0f}{f / s:>7.1f}"
        print(line)
    print(f"load average now {os.getloadavg()[0]:.1f}")
    print("spawn to accepting connections, ms (median over all starts): " + ", ".join(
        f"{t} {statistics.median([x for n in names for x in res[(n, t)]['ready']]) * 1e3:.0f}" for t in trees))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
