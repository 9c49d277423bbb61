"""GET /v1/lookup against a bare FastAPI endpoint, same uvicorn settings, same load generator.

    .venv/bin/python benchmarks/bench_lookup_http.py [--duration 10] [--rounds 3] [--connections 16]

Needs `wrk` (apt-get install -y wrk). Starts two uvicorn processes with the same
command line, on loopback:
  bare       - FastAPI() with endpoints returning a constant (`bare` in this file)
  zonechief  - api.app:create_app (the real app, middleware included)
and drives them with wrk (2 threads, 16 connections, `duration` s per run, after
a warm-up), `rounds` times, alternating the endpoints so that load from
elsewhere on the machine hits all alike; each ratio is taken within a round,
then the median is reported. The lookup requests cycle through fixed random
points: "inside" are uniform points that fall in a zone, "uniform" are uniform
over the zones' bbox (about 3/4 outside every zone: nearest zone and distance
computed too). Before anything is printed, a sample of the server's answers is
compared with ZoneIndex.lookup in this process. With two or more CPUs the
servers run on one and wrk on another (taskset). Besides req/s, the server's own
CPU time per request is reported (from /proc): other load on the machine moves
it much less than it moves req/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent

bare = FastAPI()


@bare.get("/const")
async def const():
    return {"status": "ok"}


@bare.get("/const-sync")
def const_sync():  # a plain `def` endpoint runs in the thread pool
    return {"status": "ok"}


# ------------------------------------------------------------------ plumbing
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UVICORN_ARGS = ["--host", "127.0.0.1", "--workers", "1", "--log-level", "warning", "--no-access-log"]


class Server:
    """One uvicorn process; stopped (by its own pid) on exit."""

    def __init__(self, target: list[str], prefix=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [*prefix, sys.executable, "-m", "uvicorn", *target, *UVICORN_ARGS, "--port", str(self.port)]

    def __enter__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def wait_ready(self, path: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def lua_paths(paths: list[str]) -> str:
    body = ",\n".join(json.dumps(p) for p in paths)
    return ("local paths = {\n" + body + "\n}\nlocal i = 0\n"
            "request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")


def run_wrk(url: str, duration: int, connections: int, threads: int, script: str | None, prefix=()) -> dict:
    cmd = [*prefix, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "requests": total,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None}


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (at most 60)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=1000, help="distinct lookup points per set")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    a.duration = max(1, min(a.duration, 60))
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from api.app import assignment_json
    from gis.lookup import ZoneIndex

    idx = ZoneIndex.load()
    minx, miny, maxx, maxy = idx.zones.total_bounds
    rng = np.random.default_rng(a.seed)
    x = rng.uniform(minx, maxx, a.points * 8)
    y = rng.uniform(miny, maxy, a.points * 8)
    unit, _ = idx.locate(x, y)
    sets = {
        "inside": [(float(x[i]), float(y[i])) for i in np.flatnonzero(unit >= 0)[:a.points]],
        "uniform": [(float(x[i]), float(y[i])) for i in range(a.points)],
    }
    tmp = Path(tempfile.mkdtemp(prefix="zc_bench_"))
    scripts = {}
    for name, pts in sets.items():
        scripts[name] = tmp / f"{name}.lua"
        scripts[name].write_text(lua_paths([f"/v1/lookup?lon={lon!r}&lat={lat!r}" for lon, lat in pts]))

    cpus = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else []
    pin = len(cpus) == 2 and shutil.which("taskset") is not None
    server_pin = ["taskset", "-c", str(cpus[0])] if pin else []
    wrk_pin = ["taskset", "-c", str(cpus[1])] if pin else []

    def wrk(url, script=None, duration=a.duration):
        return run_wrk(url, duration, a.connections, a.threads, script, wrk_pin)

    with Server(["bench_lookup_http:bare"], server_pin) as b, Server(["api.app:create_app", "--factory"], server_pin) as z:
        b.wait_ready("/const")
        z.wait_ready("/v1/lookup?lon=114.05&lat=23.06")
        checked = 0
        for pts in sets.values():  # the server says what ZoneIndex.lookup says
            for lon, lat in pts[:: max(1, len(pts) // 50)]:
                with urllib.request.urlopen(f"{z.url}/v1/lookup?lon={lon!r}&lat={lat!r}", timeout=10) as r:
                    got = json.loads(r.read())
                exp = {"query": {"lon": lon, "lat": lat, "crs": "wgs84"}, **assignment_json(idx.lookup(lon, lat))}
                assert got == exp, (lon, lat, got, exp)
                checked += 1
        runs = {
            "bare FastAPI GET /const (async def)": (b, b.url + "/const", None),
            "bare FastAPI GET /const-sync (def)": (b, b.url + "/const-sync", None),
            "zonechief GET /v1/lookup, inside points": (z, z.url, str(scripts["inside"])),
            "zonechief GET /v1/lookup, uniform points": (z, z.url, str(scripts["uniform"])),
        }
        for _, url, script in runs.values():  # warm-up: the first requests build the index and its grids
            wrk(url, script, duration=min(3, a.duration))
        results = {name: [] for name in runs}
        for _ in range(a.rounds):
            for name, (srv, url, script) in runs.items():
                cpu = srv.cpu_seconds()
                r = wrk(url, script)
                # server CPU per request: hardly moved by other load on the machine, unlike req/s
                r["cpu_us"] = (srv.cpu_seconds() - cpu) / r["requests"] * 1e6
                assert r["non2xx"] == 0 and not r["socket_errors"], (name, r)
                results[name].append(r)
        rss = {"bare": b.peak_rss_mb(), "zonechief": z.peak_rss_mb()}
    shutil.rmtree(tmp, ignore_errors=True)

    base = next(iter(runs))
    print(f"zonechief bench_lookup_http: wrk -t{a.threads} -c{a.connections} -d{a.duration}s on loopback, "
          f"{a.rounds} rounds alternating the endpoints; medians")
    print(f"uvicorn {' '.join(UVICORN_ARGS)} for both apps; "
          + (f"servers pinned to CPU {cpus[0]}, wrk to CPU {cpus[1]}" if pin else "not pinned"))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(sets['inside'])} inside and {len(sets['uniform'])} uniform lookup points, cycled; "
          f"{checked} answers checked against ZoneIndex.lookup")
    print()
    w = max(len(n) for n in runs)
    print(f"{'endpoint':<{w}}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'vs bare async':>13}  {'per round':>16}  "
          f"{'server CPU us/req':>17}  {'bare/this CPU':>13}")
    for name, rs in results.items():
        ratios = [r["rps"] / q["rps"] for r, q in zip(rs, results[base])]
        cpu_ratios = [q["cpu_us"] / r["cpu_us"] for r, q in zip(rs, results[base])]

        def med(k, rs=rs):
            return statistics.median(r[k] for r in rs)

        print(f"{name:<{w}}  {med('rps'):8.0f}  {med('p50'):7.2f}  {med('p99'):7.2f}  {statistics.median(ratios):13.0%}  "
              f"{' '.join(f'{v:.0%}' for v in ratios):>16}  {med('cpu_us'):17.0f}  {statistics.median(cpu_ratios):13.0%}")
    print()
    print(f"server peak RSS: bare {rss['bare']:.0f} MB, zonechief {rss['zonechief']:.0f} MB")


if __name__ == "__main__":
    main()
