"""Bulk report import (gis.bulk.import_file) on PostGIS (COPY) and SQLite, side by side in one run.

    .venv/bin/python benchmarks/bench_import.py [--n 200000] [--repeats 3]

Creates a throw-away PostGIS database through the local PostgreSQL (ZONECHIEF_TEST_PG_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), migrates it, and writes a CSV of n reports:
lon/lat over the shipped zones' bounding box, half WGS-84 and half GCJ-02, categories from the
catalogue, descriptions, unique idempotency keys. Measures, median of `repeats` runs, the stored
rows dropped between runs:
  end to end   import_file: read, validate, locate, assign chiefs, write (reports/s)
  COPY only    write() of the prepared rows (reports/s; the events are written too)
Peak memory: tracemalloc peak of one end-to-end import (Python allocations: numpy, pandas, lists).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.services import Services  # noqa: E402
from gis import bulk  # noqa: E402
from gis.crs import wgs84_to_gcj02  # noqa: E402
from gis.settings import Settings  # noqa: E402

PG_ADMIN_URL = os.environ.get("ZONECHIEF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


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
            c.exec_driver_sql("TRUNCATE report_events, reports")
        else:
            c.exec_driver_sql("DELETE FROM report_events")
            c.exec_driver_sql("DELETE FROM reports")


def run_backend(name: str, url: str, src: Path, n: int, repeats: int, index) -> dict:
    svc = Services(Settings(), index=index, database_url=url)
    reports = svc.reports
    db = reports.db
    e2e, copy_t = [], []
    for _ in range(repeats):
        clear(db)
        t = time.perf_counter()
        res = bulk.import_file(reports, src, src.with_suffix(".rejects.csv"))
        e2e.append(time.perf_counter() - t)
        inserted = res.inserted
    # COPY stage alone: the same rows, prepared once, written `repeats` times.
    table, parsed = bulk.rows_from_file(src)
    from gis.reports import ReportIn

    intakes = [bulk.Intake(i, ReportIn.model_validate(d)) for i, d in enumerate(parsed, 1) if not isinstance(d, str)]
    rows, events, _ = bulk.prepare(reports, intakes, "bench", datetime.now(timezone.utc))
    for _ in range(repeats):
        clear(db)
        t = time.perf_counter()
        bulk.write(reports, rows, events)
        copy_t.append(time.perf_counter() - t)
    clear(db)
    tracemalloc.start()
    bulk.import_file(reports, src, src.with_suffix(".rejects.csv"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    clear(db)
    db.engine.dispose()
    return {"name": name, "n": n, "inserted": inserted, "rejected": n - inserted, "e2e": statistics.median(e2e),
            "copy": statistics.median(copy_t), "written": len(rows), "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from gis.lookup import ZoneIndex

    index = ZoneIndex.load()
    tmp = Path(tempfile.mkdtemp(prefix="zc_bench_import_"))
    name = f"zc_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    pg_url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        svc = Services(Settings(), index=index, database_url=f"sqlite:///{tmp / 'probe.sqlite'}")
        src = tmp / "reports.csv"
        make_csv(src, a.n, index, set(svc.reports.category_codes))
        results = [run_backend("PostGIS (COPY)", pg_url, src, a.n, a.repeats, index),
                   run_backend("SQLite (executemany)", f"sqlite:///{tmp / 'bench.sqlite'}", src, a.n, a.repeats, index)]
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    r0 = results[0]
    print(f"{a.n} CSV rows ({r0['inserted']} imported, {r0['rejected']} rejected), median of {a.repeats}")
    print(f"{'backend':<22} {'end-to-end s':>12} {'reports/s':>10} {'COPY/write s':>13} {'rows/s':>10} "
          f"{'vs PostGIS e2e':>14} {'peak traced':>12}")
    for r in results:
        print(f"{r['name']:<22} {r['e2e']:>12.3f} {r['inserted'] / r['e2e']:>10,.0f} {r['copy']:>13.3f} "
              f"{r['written'] / r['copy']:>10,.0f} {r0['e2e'] / r['e2e']:>13.2f}× {r['peak'] / 2**20:>9.1f} MB")


if __name__ == "__main__":
    main()
