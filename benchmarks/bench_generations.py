"""Boundary generations on PostGIS: a whole city's import with its validation, diff and the re-assignment of
100,000 open reports; and as-of lookups against today's lookups, side by side in one run.

    .venv/bin/python benchmarks/bench_generations.py [--reports 100000] [--repeat 3]

The city: 600 villages tessellating the shipped towns' box (tests/gis/boundary_cases.py), and a redrawing of
it (30 edges moved, 10 merges, 10 splits, 10 renames, 10 villages to other zones). Each timed import swaps
the two versions, so every run moves reports. Prints medians; the target is an import under 30 s and as-of
lookups no slower than lookups.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gis.boundary_cases import City, redraw  # noqa: E402
from tests.helpers import pg_database  # noqa: E402


def write_city(units, path: Path) -> Path:
    out = units.to_crs(4326).rename(columns={"unit_id": "code", "village_name": "name", "village_short_name": "short_name"})
    out[["code", "name", "short_name", "town", "town_code", "zone_id", "zone_name", "geometry"]].to_file(path, driver="GeoJSON")
    return path


def write_roster(zones, path: Path) -> Path:
    pd.DataFrame({"person_id": [f"P{k:04d}" for k in range(len(zones))], "role": "chief",
                  "name": [f"片长{k}" for k in range(len(zones))], "phone": "0769-00000000",
                  "zone_id": sorted(zones), "effective_from": "2020-01-01", "effective_to": ""}).to_csv(path, index=False)
    return path


def write_facilities(units, path: Path) -> Path:
    import geopandas as gpd

    u = units.to_crs(4326).iloc[:3]
    gpd.GeoDataFrame({"facility_id": [f"F{k}" for k in range(3)], "kind": "public_toilet", "name": [f"公厕{k}" for k in range(3)],
                      "service_code": [f"ZC-B-{k}" for k in range(3)], "zone_id": u.zone_id.to_numpy(), "town": "示例镇"},
                     geometry=u.geometry.representative_point().to_numpy(), crs=4326).to_file(path, driver="GeoJSON")
    return path


def median_s(fn, repeat: int) -> tuple[float, list]:
    times, outs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        outs.append(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from zonechief.bulk import import_file
    from zonechief.reference import import_reference
    from zonechief.services import Services

    city = City.make(24, 25, seed=0)
    a_units, b_units = city.units(), redraw(city, 1)
    # The same villages grouped into other zones (blocks of 5 x 2 cells, not 2 x 5): most reports change zone.
    c_units = City(city.rows, city.cols, city.nodes, city.wiggle, city.vertices_per_edge, (5, 2)).units()
    tmp = Path(tempfile.mkdtemp(prefix="bench-generations-"))
    a, b = write_city(a_units, tmp / "a.geojson"), write_city(b_units, tmp / "b.geojson")
    c = write_city(c_units, tmp / "c.geojson")
    # A roster names the zones in force: one for A and B's zones, one for C's, imported with their boundaries.
    roster = write_roster(set(a_units.zone_id) | set(b_units.zone_id), tmp / "roster.csv")
    rosters = {a: roster, b: roster, c: write_roster(set(c_units.zone_id), tmp / "roster_c.csv")}
    common = set(a_units.zone_id) & set(b_units.zone_id) & set(c_units.zone_id)
    facilities = write_facilities(a_units[a_units.zone_id.isin(common)], tmp / "facilities.geojson")
    with pg_database() as url:
        s = Services(database_url=url)
        db = s.db

        def imp(path, **kw):
            with s.reference_lock:
                out = import_reference(db, s.index, s.facilities, "bench", boundaries=path, **kw)
                if not out.dry_run:
                    s.swap_reference(out.index, out.facilities, out.version)
            return out

        imp(a, roster=roster, facilities_file=facilities)
        rng = np.random.default_rng(0)
        x0, y0, x1, y1 = a_units.to_crs(4326).total_bounds
        n = args.reports
        pts = pd.DataFrame({"lon": rng.uniform(x0 + 1e-3, x1 - 1e-3, n), "lat": rng.uniform(y0 + 1e-3, y1 - 1e-3, n),
                            "category": "06010"})
        pts.to_csv(tmp / "reports.csv", index=False)
        t0 = time.perf_counter()
        res = import_file(s.reports, tmp / "reports.csv")
        print(f"setup: 600 villages, {res.inserted:,} open reports loaded in {time.perf_counter() - t0:.1f} s")

        dry, _ = median_s(lambda: imp(b, dry_run=True), args.repeat)
        print(f"\n| step (PostGIS, 600 villages, {n:,} open reports) | median | runs |")
        print("|---|---:|---|")
        print(f"| dry run of the redrawing: validate, coverage, diff, count the moves | {dry:.2f} s | {args.repeat} |")
        for label, other in (("redrawing (edges, merges, splits, renames, 10 re-zoned)", b),
                             ("regrouping every village into other zones", c)):
            times, moved = [], []
            for path in ([other, a] * args.repeat)[:args.repeat]:
                t0 = time.perf_counter()
                out = imp(path, roster=rosters[path])
                times.append(time.perf_counter() - t0)
                moved.append(out.summary["boundaries"]["put_in_force"]["moved"])
            if args.repeat % 2 == 1:
                imp(a, roster=roster)  # back to the city the next scenario starts from
            print(f"| import of a {label}: the dry run's steps + generation kept, zones replaced, reports moved "
                  f"with history and events, commit | {statistics.median(times):.2f} s | "
                  f"{', '.join(f'{t:.1f}' for t in times)} s; moved {', '.join(f'{m:,}' for m in moved)} |")

        # As-of lookups: the generation in force vs an earlier one (its index built once, then cached).
        cat = s.generations
        old = cat.items[1]  # city A as first imported, valid until the first swap
        t_old = old.valid_from + timedelta(microseconds=1)
        assert s.index_at(t_old).generation == old.id != s.index.generation
        qx, qy = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)

        def now_lookups():
            idx = s.index
            return [idx.lookup(x, y) for x, y in zip(qx, qy)]

        def asof_lookups():
            return [s.index_at_nowait(t_old).lookup(x, y) for x, y in zip(qx, qy)]

        asof_lookups()  # warm both
        now_lookups()
        rows = []
        for _ in range(args.repeat):
            t_now, _ = median_s(now_lookups, 1)
            t_asof, _ = median_s(asof_lookups, 1)
            rows.append((t_now, t_asof))
        med_now = statistics.median(r[0] for r in rows) / len(qx) * 1e6
        med_asof = statistics.median(r[1] for r in rows) / len(qx) * 1e6
        print("\n| lookup of one point (in process, 20,000 points) | median µs | ratio |")
        print("|---|---:|---:|")
        print(f"| now (the generation in force) | {med_now:.1f} | 1.00 |")
        print(f"| as of an instant under the earlier generation | {med_asof:.1f} | {med_asof / med_now:.2f} |")

        http_compare(s, qx[:2000], qy[:2000], t_old, args.repeat)
        db.engine.dispose()


def http_compare(s, xs, ys, t_old: datetime, repeat: int) -> None:
    """GET /v1/lookup with and without `at`, over a real uvicorn server, alternating."""
    import httpx

    from api.app import create_app
    from tests.helpers import LiveServer

    app = create_app(index=s.index, database_url=str(s.db.engine.url.render_as_string(hide_password=False)))
    at = t_old.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url) as c:
        c.get("/v1/lookup", params={"lon": xs[0], "lat": ys[0], "at": at})  # builds the earlier index once
        res = {"now": [], "at": []}
        for _ in range(repeat):
            for key, extra in (("now", {}), ("at", {"at": at})):
                t0 = time.perf_counter()
                for x, y in zip(xs, ys):
                    r = c.get("/v1/lookup", params={"lon": x, "lat": y, **extra})
                    assert r.status_code == 200
                res[key].append((time.perf_counter() - t0) / len(xs) * 1e3)
        app.state.services.db.engine.dispose()
    now, asof = statistics.median(res["now"]), statistics.median(res["at"])
    print(f"\n| GET /v1/lookup over HTTP ({len(xs):,} sequential requests) | median ms | ratio |")
    print("|---|---:|---:|")
    print(f"| without at | {now:.2f} | 1.00 |")
    print(f"| with at (earlier generation) | {asof:.2f} | {asof / now:.2f} |")


if __name__ == "__main__":
    main()
