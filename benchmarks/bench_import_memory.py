"""Peak memory of a bulk report import (zonechief.bulk.import_file) against the number of rows.

    nice -n 10 .venv/bin/python benchmarks/bench_import_memory.py --n 1000000 --n 10000000
    git worktree add /tmp/before HEAD      # to set the code of another commit beside this one:
    nice -n 10 .venv/bin/python benchmarks/bench_import_memory.py --n 1000000 --code /tmp/before --code .

For each n, a CSV of n reports is written once with bench_import.py's generator (lon/lat over the
zones' bounding box, half WGS-84 and half GCJ-02, catalogue categories, descriptions, unique
idempotency keys). Then, for each store (--stores: PostGIS in a throw-away database of the local
PostgreSQL, and an SQLite file) and each code tree (--code, default this checkout), one import
runs in a fresh process into emptied tables, the trees alternating. That process builds the
services, loads the shipped index, runs one import and reports:

  peak RSS    its whole life's peak resident set (getrusage ru_maxrss: Python, numba, the index,
              Arrow's and libpq's buffers included)
  base RSS    its resident set just before the import began
  rise/row    (peak - base) / n: what the import itself holds per row of the file
  s           the import's wall time (read, validate, check keys, locate, write, commit)

Every tree first runs a 2,000-row import in a process of its own (numba's cache, the planner's
statistics); it is not measured.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_ADMIN_URL = os.environ.get("ZONECHIEF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


def child(code: Path, src: Path, url: str) -> None:
    """One import with the code under `code`, in this fresh process; prints a JSON line."""
    sys.path.insert(0, str(code))
    from gis.lookup import ZoneIndex
    from zonechief import bulk
    from zonechief.services import Services
    from zonechief.settings import Settings

    reports = Services(Settings(), index=ZoneIndex.load(), database_url=url).reports
    base = _rss_kb()
    t = time.perf_counter()
    res = bulk.import_file(reports, src, src.with_name(src.stem + ".rejects.csv"))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    assert bulk.__file__.startswith(str(code)), bulk.__file__
    print(json.dumps({"base": base * 1024, "peak": peak * 1024, "s": seconds, "inserted": res.inserted,
                      "rejected": res.rejected}))


def run_child(code: Path, src: Path, url: str) -> dict:
    """One import in a fresh process, into emptied tables (PostGIS: TRUNCATE and CHECKPOINT, as bench_import.clear)."""
    if url.startswith("postgresql"):
        import sqlalchemy as sa

        eng = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with eng.connect() as c:
            if c.exec_driver_sql("SELECT to_regclass('reports') IS NOT NULL").scalar():
                c.exec_driver_sql("TRUNCATE report_media, report_events, reports")
            c.exec_driver_sql("CHECKPOINT")
        eng.dispose()
    out = subprocess.run([sys.executable, __file__, "--child", "--code", str(code), "--src", str(src), "--url", url],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, action="append", help="rows (repeatable; default 1,000,000 and 10,000,000)")
    ap.add_argument("--stores", default="pg,sqlite")
    ap.add_argument("--code", type=Path, action="append", help="code tree to run (repeatable; default this checkout)")
    ap.add_argument("--dir", type=Path, help="where the CSVs and SQLite files go (default: a temporary directory)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.code[0].resolve(), a.src, a.url)
        return
    sys.path.insert(0, str(HERE))
    import sqlalchemy as sa
    from bench_import import make_csv

    from gis.lookup import ZoneIndex
    from zonechief.services import Services
    from zonechief.settings import Settings

    sizes = a.n or [1_000_000, 10_000_000]
    codes = [c.resolve() for c in (a.code or [HERE.parent])]
    stores = [s.strip() for s in a.stores.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="zc_bench_mem_", dir=a.dir))
    names = [f"zc_bench_{uuid.uuid4().hex[:10]}" for _ in codes]  # a database per tree: its own migrations
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for name in names:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    pg_urls = [sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
               for name in names]
    rows = []
    try:
        index = ZoneIndex.load()
        categories = set(Services(Settings(), index=index, database_url=f"sqlite:///{tmp / 'catalogue.sqlite'}")
                         .reports.category_codes)

        def url(store: str, k: int) -> str:
            if store == "pg":
                return pg_urls[k]
            path = tmp / f"tree{k}.sqlite"
            for p in tmp.glob(path.name + "*"):  # a fresh file each time (and its WAL): empty tables
                p.unlink()
            return f"sqlite:///{path}"

        warm = tmp / "warm-up.csv"
        make_csv(warm, 2_000, index, categories)
        for k, code in enumerate(codes):
            for store in stores:
                run_child(code, warm, url(store, k))
        for n in sizes:
            src = tmp / f"reports-{n}.csv"
            t = time.perf_counter()
            make_csv(src, n, index, categories)
            print(f"{n:,} rows: {src.stat().st_size / 2**20:,.0f} MB of CSV, written in {time.perf_counter() - t:.0f} s",
                  file=sys.stderr)
            for store in stores:
                for k, code in enumerate(codes):
                    r = run_child(code, src, url(store, k))
                    rows.append((n, store, code, r))
                    print(f"  {store} {code}: {json.dumps(r)}", file=sys.stderr)
            src.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        admin.dispose()  # a fresh connection: the server may have been restarted meanwhile
        with admin.connect() as c:
            for name in names:
                c.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()
    print(f"{'rows':>12} {'store':<7} {'code':<28} {'peak RSS':>10} {'base RSS':>10} {'rise/row':>9} {'s':>8} {'reports/s':>10}")
    for n, store, code, r in rows:
        print(f"{n:>12,} {store:<7} {str(code)[-28:]:<28} {r['peak'] / 2**20:>7,.0f} MB {r['base'] / 2**20:>7,.0f} MB "
              f"{(r['peak'] - r['base']) / n:>7,.0f} B {r['s']:>8.1f} {r['inserted'] / r['s']:>10,.0f}")


if __name__ == "__main__":
    main()
