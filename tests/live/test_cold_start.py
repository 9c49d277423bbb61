"""A new `zonechief serve` process is ready at once: its hot-spot kernels load in the background, /healthz
says "warming" meanwhile and "ok" after, and the first hot-spot map then finds them loaded.

The first-request latency of every page and endpoint in a fresh process is measured in
benchmarks/bench_cold_start.py, not here.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port, inner, shipped_index

REPO = Path(__file__).resolve().parents[2]


def test_ready_while_the_hotspot_kernels_warm_up_then_ok(tmp_path):
    port = free_port()
    cache = tmp_path / "numba"  # empty: the kernels are compiled (seconds), so "warming" lasts long enough to see
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONECHIEF_", "NUMBA_CACHE_DIR"))}
    env.update(ZONECHIEF_SQLITE_PATH=str(tmp_path / "z.sqlite"), ZONECHIEF_RATE_LIMIT_PER_MINUTE="0",
               NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "zonechief.cli", "serve", "--port", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:  # uvicorn listens once the app's startup is done
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            h = c.get("/healthz")
            assert h.status_code == 200 and h.json()["status"] == "ok"  # ready: warming does not hold it back
            assert h.json()["checks"]["hotspots"] == {"status": "warming"}
            zones = shipped_index()
            for k, zone in enumerate(["QS-01", "QS-02", "ZMT-01"] * 10):  # one point each: no bulk path
                lon, lat = inner(zones, zone)
                r = c.post("/v1/reports", json={"source": "gps", "category": "06010", "description": f"r{k}",
                                                "location": {"lon": lon + 1e-5 * k, "lat": lat}})
                assert r.status_code == 201, r.text
            while (s := c.get("/healthz").json()["checks"]["hotspots"]) == {"status": "warming"}:
                assert time.monotonic() < deadline + 180, "still warming"
                time.sleep(0.1)
            assert s == {"status": "ok"}
            assert list(cache.rglob("hotspot_kernels._tail_counts-*.nbi"))  # NUMBA_CACHE_DIR is where they went
            page = c.get("/maps/hotspots", params={"permutations": 999})
            assert page.status_code == 200 and "Gi* on a 500 m grid, 999 permutations" in page.text
            assert "FDR; 30 reports." in page.text
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
