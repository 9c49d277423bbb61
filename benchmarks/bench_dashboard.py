"""The planner's dashboard at a million reports on PostGIS: JSON endpoint latency and first paint in Chromium.

    .venv/bin/python benchmarks/bench_dashboard.py                   # 1e6 reports, 3 repeats
    .venv/bin/python benchmarks/bench_dashboard.py --n 200000 --repeat 5

Loading: a throw-away PostGIS database (tests.helpers.pg_database); `--seed` demo reports with their
status histories and citizens' answers through the bulk path (zonechief.bulk.seed_demo: binary COPY),
then doubled in SQL (INSERT … SELECT, ids offset, points moved by up to ±300 m, times moved back by
whole weeks) until there are `--n`, with their events, and ANALYZEd. seed_demo writes only a few
hundred reports/s with histories (per-row intake), so a million that way would take most of an hour;
the copies keep its mix of statuses, resolution times and answers.

Measured, each the median of --repeat runs, against the real app (LiveServer):

- JSON endpoints (httpx, one at a time): /v1/dashboard/charts (the four SQL aggregates + altair specs),
  /v1/dashboard/layers/heat, /v1/dashboard/layers/zones, for no filter and for one town;
- first paint: a fresh page in headless Chromium (/usr/bin/chromium), from navigation start to
  (a) the first four charts rendered as SVG by vega-embed, (b) the heat layer drawn, and, apart,
  (c) the fifth, time to fix (its query joins every status event), rendered (performance.now()).
  One warm-up load first (imports, PostgreSQL's cache).

Each is measured cold (zonechief.dashboard's cache emptied first: what a new filter, or the first look after
a new report, costs) and warm (the same view again while the data are unchanged).
Prints medians and the ratio to the 2 s target. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
TARGET_S = 2.0


def replicate(db, n: int) -> int:
    """Copy the seeded reports (and their events) until there are n; returns the count."""
    import sqlalchemy as sa

    from store.deadline import Deadlines

    with db.engine.begin() as c:
        Deadlines.of(db.engine).extend(c, 3600)  # the copies are bulk statements, not requests
        base = c.execute(sa.text("SELECT count(*), max(id) FROM reports")).one()
        count, top = int(base[0]), int(base[1])
        cols = [r[0] for r in c.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'reports' "
            "AND column_name NOT IN ('id', 'idempotency_key', 'tracking_token', 'geom', 'created_at', 'updated_at', "
            "'rated_at', 'first_rated_at') ORDER BY ordinal_position"))]
        ecols = [r[0] for r in c.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'report_events' "
            "AND column_name NOT IN ('id', 'report_id', 'at') ORDER BY ordinal_position"))]
        k = 1
        while count < n:  # doubling: each round copies what is there (or what is missing)
            take = min(count, n - count)
            shift = f"interval '{7 * k} days'"
            col_list = ", ".join(cols)
            c.execute(sa.text(
                f"INSERT INTO reports (id, {col_list}, geom, created_at, updated_at, rated_at, first_rated_at) "
                f"SELECT id + {top}, {col_list}, "
                "ST_SetSRID(ST_Translate(geom, (random() - 0.5) * 0.006, (random() - 0.5) * 0.006), 4326), "
                f"created_at - {shift}, updated_at - {shift}, rated_at - {shift}, first_rated_at - {shift} "
                f"FROM reports ORDER BY id LIMIT {take}"))
            ecl = ", ".join(ecols)
            c.execute(sa.text(
                f"INSERT INTO report_events (report_id, at, {ecl}) "
                f"SELECT e.report_id + {top}, e.at - {shift}, {', '.join('e.' + x for x in ecols)} "
                f"FROM report_events e WHERE e.report_id IN (SELECT id FROM reports WHERE id <= {top} ORDER BY id LIMIT {take})"))
            count += take
            top = int(c.execute(sa.text("SELECT max(id) FROM reports")).scalar_one())
            k += 1
            print(f"  {count:,} reports", file=sys.stderr)
        c.execute(sa.text("SELECT setval(pg_get_serial_sequence('reports', 'id'), (SELECT max(id) FROM reports))"))
        c.execute(sa.text("ANALYZE reports"))  # ANALYZE may run in a transaction (VACUUM may not)
        c.execute(sa.text("ANALYZE report_events"))
    return count


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_paint(browser, url: str) -> tuple[float, float, float]:
    """(first charts rendered, all charts rendered, heat drawn) in seconds after navigation start, in a fresh page."""
    page = browser.new_page()
    try:
        page.goto(url, wait_until="load")
        page.wait_for_function("() => window.zcDashboard && window.zcDashboard.allChartsAt"
                               " && (window.zcDashboard.layers.heat || {}).loadedAt", timeout=120_000)
        d = page.evaluate("() => [window.zcDashboard.firstChartsAt, window.zcDashboard.allChartsAt,"
                          " window.zcDashboard.layers.heat.loadedAt]")
        return d[0] / 1000, d[1] / 1000, d[2] / 1000
    finally:
        page.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20_000, help="demo reports written by seed_demo before copying")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import httpx
    from playwright.sync_api import sync_playwright

    from api.app import create_app
    from gis.localtime import LOCAL
    from tests.helpers import LiveServer, pg_database, shipped_index
    from zonechief.bulk import seed_demo

    with pg_database() as url:
        app = create_app(index=shipped_index(), database_url=url)
        svc = app.state.services
        t = time.perf_counter()
        seed_demo(svc.reports, min(args.seed, args.n), seed=1, now=datetime(2026, 11, 30, 12, tzinfo=LOCAL))
        print(f"seed_demo {min(args.seed, args.n):,}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        t = time.perf_counter()
        n = replicate(svc.db, args.n)
        print(f"copied to {n:,} + ANALYZE: {time.perf_counter() - t:.1f} s", file=sys.stderr)

        with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=120) as http, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            for path in ("/v1/dashboard/charts", "/v1/dashboard/layers/heat"):  # warm-up: imports, caches
                http.get(path).raise_for_status()
            from zonechief import dashboard as D

            def cold(fn):
                def run():
                    D._cache.clear()  # the dashboard's cache (zonechief.dashboard.cached): nothing kept
                    fn()
                return run

            print(f"\n{n:,} reports on PostGIS; medians of {args.repeat}; cold = cache emptied first, warm = cached\n")
            print(f"{'request':56s} {'cold s':>8s} {'warm s':>8s}")
            for path, params in (("/v1/dashboard/charts", {}), ("/v1/dashboard/charts", {"town": "企石镇"}),
                                 ("/v1/dashboard/charts", {"since": "2026-09-01", "category": "06010"}),
                                 ("/v1/dashboard/charts", {"part": "main"}), ("/v1/dashboard/charts", {"part": "time_to_fix"}),
                                 ("/v1/dashboard/layers/heat", {}), ("/v1/dashboard/layers/zones", {}),
                                 ("/v1/dashboard/tables/chiefs.xlsx", {})):
                def get(path=path, params=params):
                    http.get(path, params=params).raise_for_status()
                c = median_s(cold(get), args.repeat)
                w = median_s(get, args.repeat)
                label = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
                print(f"{label:56s} {c:8.3f} {w:8.3f}", flush=True)
            first_paint(browser, srv.url + "/dashboard")  # warm-up
            for kind in ("cold", "warm"):
                runs = []
                for _ in range(args.repeat):
                    if kind == "cold":
                        D._cache.clear()
                    runs.append(first_paint(browser, srv.url + "/dashboard"))
                first, every, heat = (statistics.median(r[k] for r in runs) for k in range(3))
                print(f"\nfirst paint, {kind}: 4 of 5 charts (SVG)   {first:6.2f} s   ({first / TARGET_S:.2f} × the 2 s target)")
                print(f"first paint, {kind}: heat layer drawn      {heat:6.2f} s   ({heat / TARGET_S:.2f} ×)")
                print(f"first paint, {kind}: both                  {max(first, heat):6.2f} s   ({max(first, heat) / TARGET_S:.2f} ×)")
                print(f"every chart, {kind}: time to fix included  {every:6.2f} s   ({every / TARGET_S:.2f} ×)", flush=True)
            browser.close()


if __name__ == "__main__":
    main()
