"""Patrol tracks in and out: a month of 36 people's 10-second fixes (~3 million) on SQLite and PostGIS.

    .venv/bin/python benchmarks/bench_patrols_import.py                    # 30 days, both backends, 3 repeats
    .venv/bin/python benchmarks/bench_patrols_import.py --days 7 --backends sqlite --repeat 1

For each backend, side by side in one run, medians of --repeat runs on a fresh store each:
1. generate: zonechief.patrols_synthetic.synthetic_tracks (numpy);
2. import: zonechief.patrols.import_frame (sort, de-duplicate, split at gaps, town / speed checks,
   lengths in EPSG:4547, then one transaction: patrols, fixes, audit entry);
3. write only: PatrolRepository.write of the same patrols (binary COPY on PostGIS, executemany on SQLite);
4. read: store.patrols_repo.points_frame of everything (the contract frame), and of one week.

Nothing is asserted: numbers are for reading. Fixes per second = points / median seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.lookup import ZoneIndex  # noqa: E402
from store.db import Database  # noqa: E402
from store.patrols_repo import PatrolRepository, points_frame  # noqa: E402
from zonechief.patrols import import_frame  # noqa: E402
from zonechief.patrols_synthetic import synthetic_tracks  # noqa: E402

START = date(2026, 10, 1)


def median_time(fn, repeat):
    """(median seconds, last result) of `repeat` calls."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def fresh_store(backend: str, tmp: Path, stack):
    """A migrated, empty store (reference data loaded) of this backend."""
    from gis.facilities import load_facilities
    from zonechief.demo import _default_categories

    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'b{time.monotonic_ns()}.sqlite'}"
    else:
        from tests.helpers import pg_database

        url = stack.enter_context(pg_database())
    return Database(url).init(INDEX, load_facilities(), _default_categories())


def run(backend: str, frame, args) -> dict:
    """Medians for one backend."""
    from contextlib import ExitStack

    out: dict = {}
    n = len(frame)
    with tempfile.TemporaryDirectory() as d, ExitStack() as stack:
        def imp():
            db = fresh_store(backend, Path(d), stack)
            t = time.perf_counter()
            res = import_frame(db, INDEX, frame, name="bench", actor="bench", synthetic=True)
            return time.perf_counter() - t, db, res
        runs = [imp() for _ in range(args.repeat)]
        out["import_s"] = statistics.median(r[0] for r in runs)
        db, res = runs[-1][1], runs[-1][2]
        out["patrols"], out["stored"] = len(res.imported), sum(t.n_points for t in res.imported)
        read_s, back = median_time(lambda: points_frame(db), args.repeat)
        out["read_s"], out["read_n"] = read_s, len(back)
        since = datetime.combine(START + timedelta(days=7), datetime.min.time(), timezone.utc)
        week_s, week = median_time(lambda: points_frame(db, since, since + timedelta(days=7)), args.repeat)
        out["week_s"], out["week_n"] = week_s, len(week)
        # the store's part alone: the same fixes written again under new patrol ids
        pts = back.rename(columns={"patrol_id": "track"})[["track", "t", "lon", "lat"]].copy()
        ids = sorted(pts.track.unique())
        pts["track"] = pts.track.map({p: i for i, p in enumerate(ids)}).astype("int64")
        import shapely

        now = datetime.now(timezone.utc)
        rows = [{"person_id": "bench", "team_id": None, "town": None, "started_at": now, "ended_at": now,
                 "n_points": 0, "length_m": 0.0, "source": "bench", "sha256": None, "synthetic": True,
                 "imported_at": now, "imported_by": "bench", "geom": shapely.LineString([(0, 0), (1, 1)])}
                for _ in ids]
        repo = PatrolRepository.for_db(db)

        def write():
            with db.sessions.begin() as s:
                repo.write(s, rows, pts)
        out["write_s"], _ = median_time(write, args.repeat)
        db.engine.dispose()
    out["n"] = n
    return out


def main(argv=None):
    """Run and print."""
    global INDEX
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--people", type=int, default=36)
    ap.add_argument("--fix-s", type=float, default=10)
    ap.add_argument("--backends", default="sqlite,postgis")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    INDEX = ZoneIndex.load()
    gen_s, frame = median_time(lambda: synthetic_tracks(INDEX, days=args.days, people=args.people, fix_s=args.fix_s,
                                                        start=START), args.repeat)
    print(f"synthetic: {args.days} days × {args.people} people at {args.fix_s:g} s = {len(frame):,} fixes, "
          f"{frame.patrol_id.nunique():,} patrols; generate median {gen_s:.2f} s")
    results = {}
    for b in args.backends.split(","):
        r = results[b] = run(b, frame, args)
        print(f"{b}: import median {r['import_s']:.1f} s ({r['n'] / r['import_s']:,.0f} fixes/s; "
              f"{r['patrols']:,} patrols, {r['stored']:,} fixes kept) | write only {r['write_s']:.1f} s "
              f"({r['n'] / r['write_s']:,.0f}/s) | read all {r['read_s']:.2f} s ({r['read_n']:,}; "
              f"{r['read_n'] / r['read_s']:,.0f}/s) | read one week {r['week_s']:.2f} s ({r['week_n']:,})")
    if {"sqlite", "postgis"} <= set(results):
        s, p = results["sqlite"], results["postgis"]
        print(f"ratio SQLite/PostGIS: import {s['import_s'] / p['import_s']:.2f}, write {s['write_s'] / p['write_s']:.2f}, "
              f"read {s['read_s'] / p['read_s']:.2f}")


INDEX: ZoneIndex

if __name__ == "__main__":
    main()
