"""Reading a whole city's official village layer: gis.official_layers next to today's reader and validation.

    .venv/bin/python benchmarks/bench_official_layers.py [--villages 600] [--segment-m 10] [--repeat 5]

A synthetic city: N Voronoi cells tiling the two shipped town outlines (a vertex every --segment-m
metres at least, as surveyed boundaries have), with 三调 columns (ZLDWDM
19-digit, ZLDWMC in Chinese), written as a GBK Shapefile without .cpg in EPSG:4547, a GeoPackage in
EPSG:4490 and a GeoJSON in GCJ-02. Each step is timed --repeat times in this one run; medians are
printed, with read_layer's ratio to gis.boundaries.read_boundaries (today's reader, which cannot
decode the GBK names nor undo GCJ-02) and the ratio of the whole official path to validate().
Nothing is asserted: numbers are for reading.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.boundaries import read_boundaries, validate  # noqa: E402
from gis.crs import wgs84_to_gcj02  # noqa: E402
from gis.lookup import ZoneIndex  # noqa: E402
from gis.official_layers import (  # noqa: E402
    apply_mapping,
    check_codes,
    coverage_gaps,
    guess_mapping,
    read_layer,
    shift_vertices,
    zone_for_codes,
)
from gis.shipped import DATA_DIR  # noqa: E402

METRIC = "EPSG:4547"


def median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def city(n: int, segment_m: float) -> gpd.GeoDataFrame:
    """N cells tiling the shipped towns, split between them by area, with 三调 columns."""
    towns = gpd.read_file(DATA_DIR / "towns.geojson").to_crs(METRIC)
    rng = np.random.default_rng(19)
    share = towns.area / towns.area.sum()
    rows = []
    for (_, town), k in zip(towns.iterrows(), np.maximum(1, np.round(share * n)).astype(int)):
        x0, y0, x1, y1 = town.geometry.bounds
        pts = []
        while len(pts) < k:
            p = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
            if town.geometry.contains(p):
                pts.append(p)
        cells = shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(pts), extend_to=town.geometry))
        code9 = str(town.get("town_code", town.get("code", "441900105")))[:9]
        for i, c in enumerate(cells):
            g = shapely.segmentize(shapely.intersection(c, town.geometry), segment_m)
            if not g.is_empty:
                rows.append({"ZLDWDM": f"{code9}{i + 1:03d}0000000", "ZLDWMC": f"第{i + 1}村村民委员会",
                             "XZQDM": code9, "XZQMC": town.get("name", "镇"), "geometry": g})
    return gpd.GeoDataFrame(rows, crs=METRIC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--villages", type=int, default=600)
    ap.add_argument("--segment-m", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    layer = city(a.villages, a.segment_m)
    old = ZoneIndex.load().units
    with tempfile.TemporaryDirectory() as d:
        shp = Path(d) / "CJDCQ.shp"
        pyogrio.write_dataframe(layer, shp, encoding="GBK")
        shp.with_suffix(".cpg").unlink()
        gpkg = Path(d) / "v.gpkg"
        layer.to_crs(4490).to_file(gpkg, engine="pyogrio")
        gj = Path(d) / "v.geojson"
        w = layer.to_crs(4326)
        w.set_geometry(shift_vertices(w.geometry.values, wgs84_to_gcj02), crs=4326).to_file(gj, engine="pyogrio")
        print(f"{len(layer)} villages, {shapely.get_num_coordinates(layer.geometry.values).sum():,} vertices; "
              f"medians of {a.repeat} runs")
        rows = []
        for label, path, kw in (("Shapefile GBK, no .cpg, 4547", shp, {}), ("GeoPackage 4490", gpkg, {}),
                                ("GeoJSON GCJ-02", gj, {"crs": "gcj02"})):
            t_new, gdf = median_time(lambda path=path, kw=kw: read_layer(path, **kw), a.repeat)
            t_old, _ = median_time(lambda path=path: read_boundaries(path), a.repeat)
            rows.append((f"read_layer: {label}", t_new, f"{t_new / t_old:.2f}× read_boundaries ({t_old * 1e3:.0f} ms)"))
        gdf = read_layer(shp)
        t_map, frame = median_time(lambda: apply_mapping(gdf, guess_mapping(gdf)), a.repeat)
        t_chk, _ = median_time(lambda: check_codes(frame), a.repeat)
        t_zone, zoned = median_time(lambda: zone_for_codes(frame, old, {c: ("QS-01", None) for c in frame.code}),
                                    a.repeat)
        t_cov, gaps = median_time(lambda: coverage_gaps(old, frame, 1.0), a.repeat)
        t_val, _ = median_time(lambda: validate(zoned[0], id_field="code", tolerance_m2=1.0), a.repeat)
        official = rows[0][1] + t_map + t_chk + t_zone + t_cov
        rows += [("guess_mapping + apply_mapping", t_map, ""), ("check_codes", t_chk, ""),
                 ("zone_for_codes", t_zone, ""), ("coverage_gaps vs the shipped towns", t_cov, f"{len(gaps)} gaps"),
                 ("gis.boundaries.validate (overlaps, gaps, rings)", t_val, ""),
                 ("official path (Shapefile read … coverage)", official, f"{official / t_val:.2f}× validate")]
        for what, t, note in rows:
            print(f"  {what:<48} {t * 1e3:8.1f} ms  {note}")


if __name__ == "__main__":
    main()
