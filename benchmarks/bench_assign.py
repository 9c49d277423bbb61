"""Bulk point → zone assignment: ZoneIndex against geopandas.sjoin and shapely, side by side in one process.

    .venv/bin/python benchmarks/bench_assign.py [--n 1000000] [--repeats 11]

Uniform random points over the bounding box of the shipped zones (both towns).
Every method runs once per round, in turn, for `repeats` rounds; the median time is
reported, with points/s and the speed-up over geopandas.sjoin(predicate="within"):
the median over rounds of sjoin's time / the method's time in the same round (the
machines are noisy; a slow moment then hits every method). The ratios are against
sjoin on point geometries built beforehand (its fastest use); sjoin including
building those points from the lon/lat arrays is shown too.
Before anything is printed the answers are checked against each other.

Peak memory, from separate untimed runs of each method:
  traced  - tracemalloc peak in this process: allocations made through Python (numpy, pandas),
            not those of GEOS or Arrow
  rss     - rise of the peak resident set (VmHWM) during the call, in a fresh process per method
            that first builds the same inputs and grids: everything, GEOS and Arrow included
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gis.lookup import ZoneIndex  # noqa: E402


def sjoin(zones, pts_gdf):
    j = gpd.sjoin(pts_gdf, zones[["zone_id", "geometry"]], predicate="within", how="left")
    # a point on a shared edge is within neither zone, so at most one row per point
    return j["zone_id"].to_numpy(dtype=object)


def contains_prepared(zones, x, y):
    """shapely.contains_xy per prepared zone polygon, bounding-box prefilter: zone position or -1."""
    geoms = np.asarray(zones.geometry.values, dtype=object)
    shapely.prepare(geoms)
    b = shapely.bounds(geoms)
    out = np.full(len(x), -1, dtype=np.int32)
    for k, g in enumerate(geoms):
        cand = np.flatnonzero((x >= b[k, 0]) & (x <= b[k, 2]) & (y >= b[k, 1]) & (y <= b[k, 3]))
        out[cand[shapely.contains_xy(g, x[cand], y[cand])]] = k
    return out


def _status_kb(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def traced_peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def rss_rise(fn) -> int | None:
    """Rise of VmHWM over VmRSS during one call (Linux), in bytes."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so that reusing it shows as a rise
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kb("VmRSS")
    result = fn()
    rise = (_status_kb("VmHWM") - before) * 1024
    del result
    return rise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--rss-of", help=argparse.SUPPRESS)  # internal: measure one method in a fresh process
    a = ap.parse_args(argv)

    idx = ZoneIndex.load()
    zones = idx.zones
    minx, miny, maxx, maxy = zones.total_bounds
    rng = np.random.default_rng(a.seed)
    x = rng.uniform(minx, maxx, a.n)
    y = rng.uniform(miny, maxy, a.n)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
    input_bytes = x.nbytes + y.nbytes

    # warm up: the grids are built on first use and not counted
    t = time.perf_counter()
    idx.locate(x[:1000], y[:1000])
    grid_s = time.perf_counter() - t
    t = time.perf_counter()
    idx.assign(x[:1000], y[:1000])
    near_s = time.perf_counter() - t

    zone_of_unit = np.append(idx.units["zone_id"].to_numpy(dtype=object), None)  # [-1] -> None
    zone_names = np.append(zones["zone_id"].to_numpy(dtype=object), None)
    methods = {
        "geopandas.sjoin(within), points prebuilt": lambda: sjoin(zones, pts),
        "geopandas.sjoin(within) incl. points_from_xy": lambda: sjoin(zones, gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)),
        "shapely.contains_xy, prepared, bbox prefilter": lambda: contains_prepared(zones, x, y),
        "ZoneIndex._locate_exact (before: shapely pass)": lambda: idx._locate_exact(x, y),
        "ZoneIndex.locate (grid fast path)": lambda: idx.locate(x, y),
        "ZoneIndex.assign (full frame, nearest zone+distance)": lambda: idx.assign(x, y),
        "ZoneIndex.assign(nearest=False) (full frame, distance if snapped)": lambda: idx.assign(x, y, nearest=False),
    }
    if a.rss_of:
        print(json.dumps({"rss": rss_rise(methods[a.rss_of])}))
        return
    # Rounds: every method once per round, in turn, so that a noisy moment hits all of them; each
    # method's ratio to sjoin is taken within a round, then the median over rounds.
    times = {name: [] for name in methods}
    results = {}
    for _ in range(a.repeats):
        for name, fn in methods.items():
            gc.collect()
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    base_name = "geopandas.sjoin(within), points prebuilt"
    ratio = {name: statistics.median(b / t for b, t in zip(times[base_name], times[name])) for name in methods}
    results = {name: (statistics.median(times[name]), times[name], results[name]) for name in methods}

    # ---- the answers agree (else nothing is printed)
    z_sjoin = results["geopandas.sjoin(within), points prebuilt"][2]
    z_sjoin = np.array([None if not isinstance(v, str) else v for v in z_sjoin], dtype=object)
    z_sjoin2 = results["geopandas.sjoin(within) incl. points_from_xy"][2]
    z_sjoin2 = np.array([None if not isinstance(v, str) else v for v in z_sjoin2], dtype=object)
    z_contains = zone_names[results["shapely.contains_xy, prepared, bbox prefilter"][2]]
    u_exact, i_exact = results["ZoneIndex._locate_exact (before: shapely pass)"][2]
    u_fast, i_fast = results["ZoneIndex.locate (grid fast path)"][2]
    df = results["ZoneIndex.assign (full frame, nearest zone+distance)"][2]
    z_fast = zone_of_unit[u_fast]
    z_assign = np.array([v if isinstance(v, str) else None for v in df["zone_id"]], dtype=object)
    assert np.array_equal(u_fast, u_exact) and np.array_equal(i_fast, i_exact), "locate differs from the exact pass"
    assert (z_sjoin == z_sjoin2).all() and (z_sjoin == z_contains).all(), "sjoin and contains_xy differ"
    inside = z_contains != None  # noqa: E711 - elementwise
    assert (z_fast[inside] == z_contains[inside]).all(), "a point inside a zone got another zone"
    extra = np.flatnonzero(~inside & (u_fast >= 0))  # covered but in no zone's interior: must be on a zone outline
    assert df["on_boundary"].to_numpy()[extra].all(), "a covered point outside every zone interior is not on an outline"
    snapped = df["snapped"].to_numpy()
    assert (z_assign[~snapped] == z_fast[~snapped]).all(), "assign and locate differ"
    assert df["nearest_zone_id"].notna().to_numpy()[u_fast < 0].all(), "an outside point has no nearest zone"
    lean = results["ZoneIndex.assign(nearest=False) (full frame, distance if snapped)"][2]
    same = ["zone_id", "chief_id", "status", "on_boundary", "snapped"]
    assert lean[same].equals(df[same]), "assign(nearest=False) assigns differently"
    assert lean["distance_m"][snapped].equals(df["distance_m"][snapped]), "snapped distances differ"
    assert lean["distance_m"][(u_fast < 0) & ~snapped].isna().all(), "nearest=False computed a distance it should not"

    # ---- memory, untimed
    mem = {}
    for name, fn in methods.items():
        out = subprocess.run([sys.executable, __file__, "--n", str(a.n), "--seed", str(a.seed), "--rss-of", name],
                             capture_output=True, text=True, timeout=600, check=True).stdout
        mem[name] = traced_peak(fn), json.loads(out.strip().splitlines()[-1])["rss"]

    print(f"zonechief bench_assign: n={a.n:,} uniform points over the zones' bbox {np.round(zones.total_bounds, 4).tolist()}, "
          f"seed {a.seed}, {a.repeats} repeats, median")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), geopandas {gpd.__version__}, pandas {pd.__version__}")
    print(f"zones {len(zones)}, units {len(idx.units)}; in a unit: {(u_fast >= 0).mean():.1%}, in a zone interior: {inside.mean():.1%}, "
          f"on an outline: {len(extra)}; grid {idx._grid.W}x{idx._grid.H}, mixed cells {idx._grid.mixed_fraction:.2%}; "
          f"near grid {idx._near.nx}x{idx._near.ny} cells of {idx._near.size:.0f} m, {idx._near.mean_candidates:.1f} segments/cell")
    print(f"first-use build (not in the timings): cell grid {grid_s * 1e3:.0f} ms, nearest grid {near_s * 1e3:.0f} ms")
    print("answers checked: locate == exact pass (unit and interior); zones == sjoin == contains_xy for interior points; "
          "assign == locate; assign(nearest=False) == assign but for the distances of unsnapped outside points")
    print("vs sjoin: the median over rounds of sjoin's time / the method's time, each round running every method once")
    print()
    w = max(len(k) for k in methods)
    print(f"{'method':<{w}}  {'median s':>9}  {'min s':>8}  {'M points/s':>10}  {'vs sjoin':>9}  "
          f"{'traced MB':>9}  {'B/point':>7}  {'rss MB':>7}  {'B/point':>7}")
    for name in methods:
        med, times, _ = results[name]
        traced, rss = mem[name]
        rss_s = f"{rss / 2**20:7.1f}  {rss / a.n:7.1f}" if rss is not None else f"{'n/a':>7}  {'n/a':>7}"
        print(f"{name:<{w}}  {med:9.4f}  {min(times):8.4f}  {a.n / med / 1e6:10.2f}  {ratio[name]:8.1f}x  "
              f"{traced / 2**20:9.1f}  {traced / a.n:7.1f}  {rss_s}")
    print()
    print(f"input: lon/lat float64 arrays, {input_bytes / 2**20:.1f} MB ({input_bytes / a.n:.0f} B/point); "
          f"locate returns int32 unit + bool interior (5 B/point)")


if __name__ == "__main__":
    main()
