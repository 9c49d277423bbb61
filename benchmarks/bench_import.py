"""Bulk report import (zonechief.bulk.import_file): the column route against the per-row route, side by side.

    .venv/bin/python benchmarks/bench_import.py [--n 200000] [--rounds 5]

Creates a throw-away PostGIS database through the local PostgreSQL (ZONECHIEF_TEST_PG_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), migrates it, and writes a CSV of n reports:
lon/lat uniform over the shipped zones' bounding box, half WGS-84 and half GCJ-02, categories from
the catalogue, descriptions, unique idempotency keys. Each round runs every method once, in turn,
into emptied tables (TRUNCATE), so a slow moment of this shared machine hits all of them; the
median time over rounds is reported, and ratios are medians of the per-round ratios.

  columns     import_file as shipped: plain rows validated and located a column at a time, binary
              COPY, indexes rebuilt (the table is empty, so the load at least doubles it)
  columns-keep-indexes
              the same with rebuild_indexes=False: what a top-up into a large table costs per row
  per-row     every row through pydantic and zonechief.bulk.prepare (the route doubtful rows take; before
              the column route it was the only one), indexes kept
  sqlite-columns
              import_file into an SQLite file (the embedded default)

Peak memory: the rise of the peak resident set (VmHWM) during one import, in a fresh process per
method after a 2,000-row warm-up import (Python, Arrow and libpq buffers included).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gis.crs import wgs84_to_gcj02  # noqa: E402
from zonechief import bulk  # noqa: E402
from zonechief.services import Services  # noqa: E402
from zonechief.settings import Settings  # noqa: E402

PG_ADMIN_URL = os.environ.get("ZONECHIEF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
METHODS = {  # name: (store, column route, rebuild_indexes)
    "columns": ("pg", True, None),
    "columns-keep-indexes": ("pg", True, False),
    "per-row": ("pg", False, False),
    "sqlite-columns": ("sqlite", True, None),
}


def make_csv(path: Path, n: int, index, categories, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = index.zones.total_bounds
    lon = rng.uniform(x0, x1, n)
    lat = rng.uniform(y0, y1, n)
    gcj = rng.random(n) < 0.5
    gx, gy = wgs84_to_gcj02(lon[gcj], lat[gcj])
    lon[gcj], lat[gcj] = gx, gy
    cats = rng.choice(np.asarray(sorted(categories), dtype=object), n)
    words = ["暴露垃圾", "占道经营", "乱张贴", "井盖缺失", "积水", "违规停车 near the market"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["lon", "lat", "crs", "category", "description", "idempotency_key"])
        for i in range(n):
            w.writerow([f"{lon[i]:.7f}", f"{lat[i]:.7f}", "gcj02" if gcj[i] else "wgs84", cats[i],
                        words[i % len(words)], f"bench-{seed}-{i}"])


def clear(db) -> None:
    with db.engine.begin() as c:
        if db.dialect == "postgresql":  # TRUNCATE: no dead tuples or index bloat carried into the next run
            c.exec_driver_sql("TRUNCATE report_media, report_events, reports")
            # and no checkpoint of the previous method's WAL landing in the middle of this one
            c.exec_driver_sql("CHECKPOINT")
        else:
            c.exec_driver_sql("DELETE FROM report_events")
            c.exec_driver_sql("DELETE FROM reports")


def run(reports, src: Path, method: str):
    _, columnar, rebuild = METHODS[method]
    clear(reports.db)
    t = time.perf_counter()
    res = bulk.import_file(reports, src, src.with_suffix(".rejects.csv"), rebuild_indexes=rebuild, columnar=columnar)
    return time.perf_counter() - t, res


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_of(method: str, src: Path, urls: dict) -> None:
    """In a fresh process: a small warm-up import (imports, numba's cache), then the VmHWM rise of one import.

    The warm-up is small so that it leaves no large pools behind to be reused (which would hide memory).
    """
    from gis.lookup import ZoneIndex

    reports = Services(Settings(), index=ZoneIndex.load(), database_url=urls[METHODS[method][0]]).reports
    small = src.with_name("warm-up.csv")
    with open(src, encoding="utf-8") as fh, open(small, "w", encoding="utf-8") as out:
        out.writelines(line for _, line in zip(range(2001), fh))
    run(reports, small, method)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _kb("VmRSS")
    run(reports, src, method)
    print(json.dumps({"rise": (_kb("VmHWM") - before) * 1024}))
    clear(reports.db)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--rss-of", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--urls", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_of:
        rss_of(a.rss_of, Path(a.src), json.loads(a.urls))
        return
    from gis.lookup import ZoneIndex

    methods = [m.strip() for m in a.methods.split(",")]
    index = ZoneIndex.load()
    tmp = Path(tempfile.mkdtemp(prefix="zc_bench_import_"))
    name = f"zc_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    urls = {"pg": sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False),
            "sqlite": f"sqlite:///{tmp / 'bench.sqlite'}"}
    try:
        stores = {k: Services(Settings(), index=index, database_url=u).reports for k, u in urls.items()}
        src = tmp / "reports.csv"
        make_csv(src, a.n, index, set(stores["pg"].category_codes))
        times: dict[str, list[float]] = {m: [] for m in methods}
        results = {}
        for m in methods:  # warm-up: imports, numba's cache, the planner's statistics
            results[m] = run(stores[METHODS[m][0]], src, m)[1]
        for r in range(a.rounds):
            for m in methods:
                t, results[m] = run(stores[METHODS[m][0]], src, m)
                times[m].append(t)
            print(f"round {r + 1}: " + ", ".join(f"{m} {times[m][-1]:.2f} s" for m in methods), file=sys.stderr)
        for s in stores.values():
            clear(s.db)
            s.db.engine.dispose()
        peaks = {}
        for m in methods:
            out = subprocess.run([sys.executable, __file__, "--rss-of", m, "--src", str(src), "--urls", json.dumps(urls)],
                                 capture_output=True, text=True, check=True)
            peaks[m] = json.loads(out.stdout.strip().splitlines()[-1])["rise"]
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    base = "per-row" if "per-row" in methods else methods[0]
    r0 = results[methods[0]]
    print(f"{a.n:,} CSV rows ({r0.inserted:,} imported, {r0.rejected} rejected); {a.rounds} interleaved rounds, "
          f"medians; ratios: median over rounds of {base} time / method time")
    print(f"{'method':<24} {'s':>7} {'reports/s':>10} {'min s':>7} {'max s':>7} {'vs ' + base:>12} {'peak RSS rise':>14}")
    for m in methods:
        ratio = statistics.median(b / t for b, t in zip(times[base], times[m]))
        med = statistics.median(times[m])
        print(f"{m:<24} {med:>7.2f} {results[m].inserted / med:>10,.0f} {min(times[m]):>7.2f} {max(times[m]):>7.2f} "
              f"{ratio:>11.1f}× {peaks[m] / 2**20:>11.0f} MB")


if __name__ == "__main__":
    main()
