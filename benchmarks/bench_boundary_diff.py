"""What moved between two boundary sets of a whole city: gis.boundary_diff against a naive geopandas.overlay.

    .venv/bin/python benchmarks/bench_boundary_diff.py                 # 600 vs 600 villages, 5 runs each
    .venv/bin/python benchmarks/bench_boundary_diff.py --rows 30 --cols 40 --repeat 3

The city (tests/gis/boundary_cases.py) tessellates the shipped towns' bounding box into rows x cols villages
with wiggly shared edges (--vertices-per-edge + 2 vertices an edge), grouped 10 to a zone; the new version has 30 edges redrawn,
10 mergers, 10 splits, 10 renames and 10 villages moved to another zone. Both ways compute the same numbers
(per village and zone: area gained and lost), checked here: the engine with an STRtree, one vectorised
intersection per intersecting pair and zone tables summed from the village table; the naive way overlays
everything (how="union") at village level and again for the dissolved zones. Also timed: an identical pair
(an import that changes nothing) and the map built from the diff.

Prints medians of --repeat runs. Nothing is asserted: numbers are for reading.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_maps import median_time  # noqa: E402
from gis.boundaries import METRIC  # noqa: E402
from gis.boundary_diff import diff_units  # noqa: E402
from maps import boundary_diff_map  # noqa: E402
from tests.gis.boundary_cases import City, redraw  # noqa: E402


def naive(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """Gained and lost per village and per zone, by overlaying everything with geopandas."""
    out = {}
    o = old.to_crs(METRIC)[["unit_id", "zone_id", "geometry"]]
    n = new.to_crs(METRIC)[["unit_id", "zone_id", "geometry"]]
    for level, key in (("villages", "unit_id"), ("zones", "zone_id")):
        a = o.dissolve(key, as_index=False)[[key, "geometry"]] if level == "zones" else o[[key, "geometry"]]
        b = n.dissolve(key, as_index=False)[[key, "geometry"]] if level == "zones" else n[[key, "geometry"]]
        u = gpd.overlay(a, b, how="union", keep_geom_type=True)
        u["area"] = u.area
        k1, k2 = f"{key}_1", f"{key}_2"
        gained = u[u[k2].notna() & (u[k1] != u[k2])].groupby(k2)["area"].sum()
        lost = u[u[k1].notna() & (u[k1] != u[k2])].groupby(k1)["area"].sum()
        ids = set(a[key]) | set(b[key])
        out[level] = {i: (float(gained.get(i, 0.0)), float(lost.get(i, 0.0))) for i in ids}
    return out


def agreement(d, ref) -> float:
    """The largest difference (m²) between the engine's and the naive gained/lost, over villages and zones."""
    worst = 0.0
    for level in ("villages", "zones"):
        for c in getattr(d, level):
            g, ls = ref[level][c.id]
            worst = max(worst, abs(c.gained_m2 - g), abs(c.lost_m2 - ls))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--cols", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vertices-per-edge", type=int, default=8, help="Wiggle points on each shared edge")
    args = ap.parse_args()

    city = City.make(args.rows, args.cols, seed=args.seed, vertices_per_edge=args.vertices_per_edge)
    old = city.units()
    new = redraw(city, args.seed + 1)
    nv = int(np.mean([len(old), len(new)]))
    print(f"city: {len(old)} villages in {old.zone_id.nunique()} zones -> {len(new)} villages in "
          f"{new.zone_id.nunique()} zones; {sum(len(g.exterior.coords) for g in old.geometry):,} vertices")

    t_eng, d = median_time(lambda: diff_units(old, new), args.repeat)
    t_same, same = median_time(lambda: diff_units(old, old), args.repeat)
    t_map, m = median_time(lambda: boundary_diff_map(d).get_root().render(), args.repeat)
    t_naive, ref = median_time(lambda: naive(old, new), args.repeat)
    s = d.summary()["villages"]
    print(f"diff: {s['changed']} changed, {s['renamed']} renamed, {s['moved']} moved, {s['new']} new, "
          f"{s['gone']} gone, {s['merged']} merged, {s['split']} split; {len(d.pieces)} pieces")
    print(f"engine and naive overlay agree to {agreement(d, ref):.2e} m²")
    print()
    print(f"| {nv} vs {nv} villages (median of {args.repeat}) | seconds |")
    print("|---|---:|")
    print(f"| gis.boundary_diff.diff_units, redrawn city | {t_eng:.3f} |")
    print(f"| gis.boundary_diff.diff_units, identical sets | {t_same:.3f} |")
    print(f"| naive geopandas.overlay (villages + dissolved zones) | {t_naive:.3f} |")
    print(f"| ratio naive / engine | {t_naive / t_eng:.1f}x |")
    print(f"| maps.boundary_diff_map, built and rendered ({len(m.encode()) / 1e6:.2f} MB) | {t_map:.3f} |")
    if not same.pieces.empty:
        print("warning: the identical pair has pieces")


if __name__ == "__main__":
    main()
