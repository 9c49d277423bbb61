"""Heat map page size and time to first render, at a million reports.

    .venv/bin/python benchmarks/bench_maps.py                       # synthetic 1e6 + store 1e5 (SQLite)
    .venv/bin/python benchmarks/bench_maps.py --backends sqlite,postgis --store-n 100000
    .venv/bin/python benchmarks/bench_maps.py --skip-store

1. Synthetic: 1e6 points drawn with numpy (clusters around town centres and
   facilities plus a uniform spread, like zonechief.demo), counted on the server's
   grid (maps.aggregate_points), built into a page (maps.heatmap_map) and
   loaded in headless Chromium from a local HTTP server on 127.0.0.1: page
   bytes, and the time from navigation to the heat canvas being painted.
2. Store: N demo reports (zonechief.bulk.seed_demo) in SQLite and/or PostGIS, the
   /maps/heatmap page served by the real app (LiveServer): query+aggregation
   time, page bytes, first render.

Prints medians of --repeat runs. Nothing is asserted: numbers are for reading.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maps import aggregate_points, heatmap_map, heatmap_time_map, map_grid  # noqa: E402
from maps.assets import STATIC  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
PAINTED = """() => {
    for (const c of document.querySelectorAll('.leaflet-overlay-pane canvas')) {
        if (!c.width) continue;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
    }
    return false;
}"""


def median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def synthetic(n: int, index, seed: int = 0):
    """Clustered points like the demo: 30 % around the two town centres, 25 % around facilities, 45 % uniform."""
    import shapely

    from gis.facilities import load_facilities

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = index.zones.total_bounds
    fac = load_facilities()
    centres = np.array([[shapely.point_on_surface(g).x, shapely.point_on_surface(g).y]
                        for g in index.zones.set_index("zone_id").geometry[["QS-15", "ZMT-01"]]])
    k = rng.choice(3, size=n, p=[0.30, 0.25, 0.45])
    lon, lat = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    for which, pts, sigma_m in ((0, centres, 450), (1, np.c_[fac.geometry.x, fac.geometry.y], 120)):
        sel = np.flatnonzero(k == which)
        c = pts[rng.integers(0, len(pts), len(sel))]
        lon[sel] = c[:, 0] + rng.normal(0, sigma_m / 102_000, len(sel))
        lat[sel] = c[:, 1] + rng.normal(0, sigma_m / 110_574, len(sel))
    t0 = datetime(2025, 1, 1).timestamp()
    t = (t0 + rng.uniform(0, 180 * 86400, n)).astype(np.int64)
    return lon, lat, t


class Browser:
    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._profile = tempfile.mkdtemp(prefix="bench-chromium-")
        self.ctx = self._pw.chromium.launch_persistent_context(
            self._profile, executable_path="/usr/bin/chromium", headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900})

    def first_render(self, url: str) -> float:
        """Seconds from navigation to the heat canvas having painted pixels (fresh page, cache off)."""
        page = self.ctx.new_page()
        page.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url else r.abort())
        page.set_extra_http_headers({"Cache-Control": "no-cache"})
        t = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(PAINTED, polling=20, timeout=120_000)
        dt = time.perf_counter() - t
        page.close()
        return dt

    def close(self):
        self.ctx.close()
        self._pw.stop()
        shutil.rmtree(self._profile, ignore_errors=True)


def serve_dir(path: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the browser drops connections it no longer needs (e.g. favicon.ico)

    handler = functools.partial(Quiet, directory=str(path))
    srv = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def size_line(label, page: bytes):
    print(f"  {label}: {len(page) / 1e6:.2f} MB HTML ({len(gzip.compress(page)) / 1e6:.2f} MB gzipped)")


def bench_synthetic(args, index, browser):
    print(f"synthetic: {args.n:,} points, {args.cell_m:.0f} m cells")
    lon, lat, t = synthetic(args.n, index)
    grid = map_grid(index, args.cell_m)
    agg_s, heat = median_time(lambda: aggregate_points(lon, lat, grid), args.repeat)
    print(f"  aggregate (numpy bincount): median {agg_s * 1000:.0f} ms → {len(heat):,} cells")
    build_s, page = median_time(lambda: heatmap_map(heat, index, static_url="static").get_root().render().encode(),
                                args.repeat)
    print(f"  build + render HTML: median {build_s * 1000:.0f} ms")
    size_line("page", page)
    aggw_s, heatw = median_time(lambda: aggregate_points(lon, lat, grid, t, "week"), args.repeat)
    pagew = heatmap_time_map(heatw, index, static_url="static").get_root().render().encode()
    print(f"  by week: aggregate median {aggw_s * 1000:.0f} ms → {len(heatw):,} (week, cell) pairs; "
          f"{len(heatw.periods())} weeks")
    size_line("animated page", pagew)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "heat.html").write_bytes(page)
        (d / "week.html").write_bytes(pagew)
        shutil.copytree(STATIC, d / "static")
        assets = sum(f.stat().st_size for f in (d / "static").rglob("*") if f.is_file())
        print(f"  vendored assets (all, loaded once and cached): {assets / 1e6:.2f} MB")
        srv, url = serve_dir(d)
        try:
            for name in ("heat", "week"):
                times = [browser.first_render(f"{url}/{name}.html") for _ in range(args.repeat)]
                print(f"  first render in Chromium ({name}): median {statistics.median(times):.2f} s "
                      f"(min {min(times):.2f}, max {max(times):.2f})")
        finally:
            srv.shutdown()


def bench_store(args, index, browser, backend):
    from contextlib import ExitStack

    from api.app import create_app
    from maps import ReportFilter, aggregate_store
    from tests.helpers import LiveServer, pg_database
    from zonechief.bulk import seed_demo

    with ExitStack() as stack:
        if backend == "sqlite":
            tmp = tempfile.mkdtemp(prefix="bench-maps-")
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            url = f"sqlite:///{tmp}/bench.sqlite"
        else:
            url = stack.enter_context(pg_database())  # dropped on the way out
        app = create_app(database_url=url)
        svc = app.state.services
        stack.callback(lambda: svc.db.engine.dispose())
        t = time.perf_counter()
        seed_demo(svc.reports, args.store_n, seed=1)
        print(f"store ({backend}): {args.store_n:,} demo reports seeded in {time.perf_counter() - t:.0f} s")
        grid = map_grid(index, args.cell_m)
        agg_s, heat = median_time(lambda: aggregate_store(svc.db, svc.index, ReportFilter(), grid), args.repeat)
        how = "one GROUP BY query" if backend != "sqlite" else "WKB read + numpy"
        print(f"  aggregate_store ({how}): median {agg_s * 1000:.0f} ms → {len(heat):,} cells")
        aggw_s, _ = median_time(lambda: aggregate_store(svc.db, svc.index, ReportFilter(), grid, "week"), args.repeat)
        print(f"  aggregate_store by week: median {aggw_s * 1000:.0f} ms")
        with LiveServer(app) as srv:
            import httpx

            req_s, r = median_time(lambda: httpx.get(srv.url + "/maps/heatmap", timeout=120), args.repeat)
            print(f"  GET /maps/heatmap: median {req_s * 1000:.0f} ms")
            size_line("page", r.content)
            times = [browser.first_render(srv.url + "/maps/heatmap") for _ in range(args.repeat)]
            print(f"  first render in Chromium (request included): median {statistics.median(times):.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="synthetic points")
    ap.add_argument("--store-n", type=int, default=100_000, help="reports seeded into each store")
    ap.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, postgis")
    ap.add_argument("--cell-m", type=float, default=150.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-store", action="store_true")
    args = ap.parse_args()
    from gis.lookup import ZoneIndex

    index = ZoneIndex.load()
    browser = Browser()
    try:
        bench_synthetic(args, index, browser)
        if not args.skip_store:
            for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
                bench_store(args, index, browser, backend)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
