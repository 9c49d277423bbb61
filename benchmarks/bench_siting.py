"""Station siting on the shipped towns: time to a proven optimum, HiGHS against CBC, side by side.

    .venv/bin/python benchmarks/bench_siting.py                    # k = 1..5, MCLP and p-median, 3 runs each
    .venv/bin/python benchmarks/bench_siting.py --models mclp --ks 1,3,5 --no-cbc --time-limit 60

10,000 synthetic reports (zonechief.demo.generate_reports, their true positions) counted on a 250 m
grid in EPSG:4547; candidates: the 250 m cell centres inside both towns; the 5 existing stations of
data/boundaries/stations.csv kept open; straight-line metres, MCLP radius 1000 m. Each time covers
the whole solve (model building in PuLP, HiGHS or CBC, the p-median rounds), not the distance matrix.
A run that is not proven optimal within the time limit is marked so, and its time is the limit's.
Prints medians of --repeat runs and the CBC/HiGHS ratio. The target: < 10 s for k <= 5.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.boundaries import METRIC  # noqa: E402
from gis.crs import from_wgs84  # noqa: E402
from gis.siting import Facilities, cbc, demand_grid, euclidean, grid_candidates, highs, solve  # noqa: E402
from zonechief.demo import _default_index, generate_reports  # noqa: E402
from zonechief.planning import STATIONS_CSV, read_points  # noqa: E402


def instance(n: int, grid_m: float, town: str | None = None):
    """Demand, facilities and costs for the shipped towns (or one of them)."""
    index = _default_index()
    rs = generate_reports(n, seed=17)
    lon = np.array([r["true_lon"] for r in rs])
    lat = np.array([r["true_lat"] for r in rs])
    x, y = from_wgs84(lon, lat, METRIC)
    zones = index.zones if not town else index.zones[index.zones.town == town]
    area = shapely.union_all(zones.to_crs(METRIC).geometry.values)
    inside = shapely.contains_xy(area, x, y)
    x, y = x[inside], y[inside]
    st = read_points(STATIONS_CSV, "stations", "station_id")
    sx, sy = from_wgs84(st.lon.to_numpy(), st.lat.to_numpy(), METRIC)
    keep = shapely.contains_xy(area, sx, sy)
    st, sx, sy = st[keep], sx[keep], sy[keep]
    fac = Facilities.combine(Facilities.make(st.id, sx, sy, existing=True), grid_candidates(area, grid_m))
    dem = demand_grid(x, y, grid_m)
    return dem, fac, euclidean(dem, fac)


def run(model, dem, fac, cost, k, radius, solver, repeat):
    times, res = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        res = solve(model, dem, fac, cost, add=k, radius=radius, solver=solver, time_limit=solver.timeLimit)
        times.append(time.perf_counter() - t)
    return statistics.median(times), res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=10_000)
    ap.add_argument("--grid", type=float, default=250.0)
    ap.add_argument("--radius", type=float, default=1000.0)
    ap.add_argument("--ks", default="1,2,3,4,5")
    ap.add_argument("--models", default="mclp,pmedian")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--no-cbc", action="store_true", help="HiGHS only")
    ap.add_argument("--town", default=None, help="Only this town (name), e.g. 企石镇")
    a = ap.parse_args()
    t = time.perf_counter()
    dem, fac, cost = instance(a.reports, a.grid, a.town)
    print(f"{a.town or 'both towns'}: {int(dem.weight.sum()):,} of {a.reports:,} reports → {len(dem):,} demand cells; {len(fac):,} sites ({int(fac.existing.sum())} existing);"
          f" instance built in {time.perf_counter() - t:.1f} s; time limit {a.time_limit:g} s; median of {a.repeat}")
    print(f"{'model':8} {'k':>2} | {'HiGHS s':>8} {'status':>9} {'objective':>11} | {'CBC s':>8} {'status':>9} "
          f"{'objective':>11} | {'CBC/HiGHS':>9}")
    for model in a.models.split(","):
        for k in map(int, a.ks.split(",")):
            th, rh = run(model, dem, fac, cost, k, a.radius, highs(a.time_limit), a.repeat)
            line = f"{model:8} {k:>2} | {th:8.2f} {rh.status:>9} {rh.objective or float('nan'):11.1f} |"
            if a.no_cbc:
                print(line, flush=True)
                continue
            tc, rc = run(model, dem, fac, cost, k, a.radius, cbc(a.time_limit), a.repeat)
            print(f"{line} {tc:8.2f} {rc.status:>9} {rc.objective or float('nan'):11.1f} | {tc / th:9.2f}", flush=True)


if __name__ == "__main__":
    main()
