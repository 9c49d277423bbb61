"""Patrol coverage for a month of 36 people's 10-second GPS fixes (~3 million), and stops: compiled vs movingpandas.

    .venv/bin/python benchmarks/bench_patrol_coverage.py                    # 30 days, 36 people, 10 s fixes
    .venv/bin/python benchmarks/bench_patrol_coverage.py --days 7 --repeat 1 --subset 60000

1. zonechief.patrols_synthetic.synthetic_tracks (a month, 36 people, 10 s: about 3e6 fixes), 20,000
   reports clustered around the synthetic hot spots; gis.patrol_coverage.coverage from the points
   frame to every table (fixes → EPSG:4547, segments, stops, Gi* hot spots with 9999 permutations,
   dose per 2-hour window, demand within 200 m, per zone / cell / person / team). Median of --repeat.
   The issue's target: under 30 s.
2. Stops alone on the first --subset fixes: gis.patrol_stops.detect_stops against movingpandas'
   ObservationGapSplitter + TrajectoryStopDetector on the same fixes, the same answer checked, side
   by side in this run: medians and the ratio.

Nothing is asserted but the equality of the two stop lists; the numbers are for reading.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.lookup import ZoneIndex  # noqa: E402
from gis.patrol_coverage import CoverageParams, coverage, prepare_fixes  # noqa: E402
from gis.patrol_stops import detect_stops, movingpandas_stops  # noqa: E402
from zonechief.patrols_synthetic import synthetic_tracks  # noqa: E402


def median_time(fn, repeat):
    """(median seconds, last result) of `repeat` calls."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def demand(points, n: int, seed: int = 1):
    """Reports: most around 60 places the patrols pass, the rest spread over their area."""
    rng = np.random.default_rng(seed)
    sample = points.sample(60, random_state=seed)[["lon", "lat"]].to_numpy()
    k = rng.integers(0, len(sample), n)
    lon = sample[k, 0] + rng.normal(0, 0.0015, n)
    lat = sample[k, 1] + rng.normal(0, 0.0015, n)
    spread = rng.random(n) < 0.3
    lon[spread] = rng.uniform(points.lon.min(), points.lon.max(), spread.sum())
    lat[spread] = rng.uniform(points.lat.min(), points.lat.max(), spread.sum())
    return lon, lat


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--people", type=int, default=36)
    ap.add_argument("--fix-s", type=float, default=10)
    ap.add_argument("--reports", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--subset", type=int, default=100_000, help="fixes for the movingpandas comparison")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # movingpandas' optional-dependency and pandas deprecation notices
    index = ZoneIndex.load()
    t = time.perf_counter()
    pts = synthetic_tracks(index, days=a.days, people=a.people, fix_s=a.fix_s, seed=0, start=date(2026, 10, 1))
    print(f"synthetic tracks: {len(pts):,} fixes, {pts.patrol_id.nunique()} patrols in {time.perf_counter() - t:.1f} s")
    lon, lat = demand(pts, a.reports)
    params = CoverageParams()
    coverage(pts.head(5000), lon[:100], lat[:100], index, params=params)  # numba from its cache, not the timing
    sec, cov = median_time(lambda: coverage(pts, lon, lat, index, params=params), a.repeat)
    s = cov.summary
    print(f"coverage: {len(pts):,} fixes, {a.reports:,} reports → median {sec:.2f} s of {a.repeat} "
          f"(target < 30 s); {s['stops']:,} stops, {s['dose_stops']:,} of 10–16 min, {s['hot_spots']} hot spots, "
          f"dose share {s['dose_share']:.3f}, demand within 200 m {s['demand_within_share']:.3f}")

    sub = pts.iloc[:a.subset]
    fx = prepare_fixes(sub, params.gap_s)
    ours_s, (i0, i1) = median_time(lambda: detect_stops(fx.x, fx.y, fx.t, fx.starts, params.stop_diameter_m,
                                                        params.stop_min_s), a.repeat)
    mp_s, ref = median_time(lambda: movingpandas_stops(fx.x, fx.y, fx.t, fx.patrol, params.gap_s,
                                                       params.stop_diameter_m, params.stop_min_s), a.repeat)
    same = sorted(zip(fx.t[i0].tolist(), fx.t[i1].tolist())) == list(zip(ref["start"].tolist(), ref["end"].tolist()))
    assert same, "the compiled stops differ from movingpandas'"
    print(f"stops on {len(fx):,} fixes ({len(i0):,} stops, identical): compiled median {ours_s * 1e3:.1f} ms, "
          f"movingpandas median {mp_s:.2f} s, ratio {mp_s / ours_s:.0f}×")


if __name__ == "__main__":
    main()
