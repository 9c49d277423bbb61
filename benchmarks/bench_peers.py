"""Peers side by side: ZoneIndex.assign against geopandas, DuckDB spatial and SedonaDB; dask-geopandas against --engine dask.

    .venv/bin/pip install -e '.[bench]'
    nice -n 10 .venv/bin/python benchmarks/bench_peers.py --n 1000000 --n 10000000 --repeats 5
    nice -n 10 .venv/bin/python benchmarks/bench_peers.py --dask 100000000 --parts 400 --dir /tmp/zonechief-peers

In memory (the first command): the same random points for every engine, from a fixed seed:
uniform over the two towns' bounding boxes (by area), and a share (--outside) uniform over
the villages' bounding box grown by 0.05 degrees, most of those outside every village. Every
engine does point-in-polygon of these points against the 31 shipped village polygons
(ZoneIndex.load().units) and gives each point its village or none:

  ZoneIndex.assign / assign(nearest=False) / locate: lon/lat float64 arrays in, as bench_assign.py
  geopandas.sjoin(predicate="within"): point geometries built beforehand, and including points_from_xy
  DuckDB spatial: ST_Contains(village, ST_Point(x, y)) over an Arrow table of x, y (a SPATIAL_JOIN),
      and over a DuckDB table of points built beforehand. The extension is LOADed from the
      duckdb-extension-spatial wheel's file: nothing is downloaded at run time
  SedonaDB: ST_Contains(village, ST_SetSRID(ST_Point(x, y), 4326)) over an Arrow table of x, y
      (a SpatialJoinExec), villages as a geoarrow WKB column

As in bench_assign.py, every method runs once per round, in turn (a noisy moment hits all of
them), after one untimed round; "x assign" is the median over rounds of the method's time over
ZoneIndex.assign's time in the same round (above 1: slower than assign). Before anything is
printed the answers are checked: on every point farther than 1 m from every village boundary
(measured in metres, in a transverse Mercator centred on the villages) all engines give the same
village or none. Points within 1 m may differ (on an edge: sjoin's "within" says none, assign
gives a village); their counts are printed. RSS rise: the rise of the peak resident set during
one call, in a fresh process per method that first runs it on 10,000 points (first use) and
builds the same inputs (so GEOS, Arrow, DuckDB's and SedonaDB's own memory are all counted).

Dask (the second command): N points in --parts GeoParquet files (WKB points, a `pid` column)
under --dir, written once and reused; then on one dask LocalCluster (--workers processes, one
thread each, --memory-limit each), side by side:
  zonechief assign --engine dask SRC DST, the CLI's own code in a process whose default
      client is the cluster's (the CLI has no scheduler option: it takes the current client);
  dask-geopandas: read_parquet -> sjoin(villages, predicate="within") -> to_parquet, the same
      way (dask-geopandas' sjoin is inner-only, so it writes the matched points only);
and, unless --no-threaded, the plain CLI on dask's default threaded scheduler in one process.
Reported: wall time, the workers' peak RSS (each, and their sum), polled every 0.2 s, and the
driver process's peak RSS. Their outputs are compared on interior points of a few parts.
--keep keeps the files; by default everything under --dir is deleted at the end.
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_assign import rss_rise, sjoin  # noqa: E402

from gis.lookup import ZoneIndex  # noqa: E402
from gis.shipped import DATA_DIR  # noqa: E402

SEED = 20261203
MARGIN_M = 1.0  # "interior": farther than this from every village boundary


# ---------------------------------------------------------------- the points and the reference


def villages() -> tuple[ZoneIndex, gpd.GeoDataFrame]:
    """The shipped index and its village polygons, positions 0..30 (the answer of every engine)."""
    idx = ZoneIndex.load()
    return idx, idx.units.reset_index(drop=True)


@functools.cache
def _boxes() -> np.ndarray:
    """The two towns' bounding boxes, then the villages' bounding box grown by 0.05 degrees (about 5 km)."""
    towns = gpd.read_file(DATA_DIR / "towns.geojson").bounds.to_numpy()
    return np.vstack([towns, villages()[1].total_bounds + np.array([-0.05, -0.05, 0.05, 0.05])])


def sample_points(n: int, rng: np.random.Generator, outside: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform over the two towns' bounding boxes (by area), and `outside` of them over the grown village bbox."""
    boxes = _boxes()
    area = (boxes[:-1, 2] - boxes[:-1, 0]) * (boxes[:-1, 3] - boxes[:-1, 1])
    b = boxes[rng.choice(len(boxes), size=n, p=np.append(area / area.sum() * (1 - outside), outside))]
    x = b[:, 0] + rng.random(n) * (b[:, 2] - b[:, 0])
    y = b[:, 1] + rng.random(n) * (b[:, 3] - b[:, 1])
    return x, y


class Interior:
    """Which points lie farther than MARGIN_M from every village boundary, in metres (a local transverse Mercator)."""

    def __init__(self, units: gpd.GeoDataFrame):
        from pyproj import Transformer

        lon0, lat0 = units.union_all().centroid.coords[0]
        self.tr = Transformer.from_crs(4326, f"+proj=tmerc +lon_0={lon0} +lat_0={lat0} +ellps=WGS84 +units=m", always_xy=True)
        edges = shapely.transform(shapely.union_all(shapely.boundary(units.geometry.values)), self._m, interleaved=False)
        # 1 % more: a buffer's arcs are chords, a hair inside the true 1 m circle
        self.band = shapely.buffer(edges, MARGIN_M * 1.01, quad_segs=16)
        shapely.prepare(self.band)

    def _m(self, x, y):
        return self.tr.transform(x, y)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty(len(x), dtype=bool)
        for s in range(0, len(x), 1_000_000):  # bounded temporaries at 1e7
            mx, my = self.tr.transform(x[s:s + 1_000_000], y[s:s + 1_000_000])
            out[s:s + 1_000_000] = ~shapely.contains_xy(self.band, mx, my)
        return out


def village_of_assign(units: gpd.GeoDataFrame, df: pd.DataFrame) -> np.ndarray:
    """ZoneIndex.assign's frame -> village position per point, -1 where the point is in none (snapped ones too)."""
    pos = {c: k for k, c in enumerate(units["village_code"])}
    cat = df["village_code"].astype("category")
    lut = np.array([pos[c] for c in cat.cat.categories] + [-1], dtype=np.int32)
    k = lut[cat.cat.codes.to_numpy()]
    k[df["snapped"].to_numpy()] = -1
    return k


def scatter(n: int, i: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Join rows (point i, village k) -> village position per point, -1 for no row."""
    out = np.full(n, -1, dtype=np.int32)
    out[i] = k
    return out


# ---------------------------------------------------------------- the peers


def duckdb_spatial_path() -> Path:
    """The extension file inside the duckdb-extension-spatial wheel (extensions/v<duckdb version>/)."""
    import duckdb
    import duckdb_extension_spatial

    p = Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
    if not p.exists():
        have = sorted(x.name for x in p.parent.parent.glob("v*"))
        raise SystemExit(f"duckdb {duckdb.__version__} but the spatial wheel has {have}: pip install 'duckdb=={have[-1][1:]}'")
    return p


class DuckSpatial:
    """DuckDB with the spatial extension loaded from the wheel; villages as a GEOMETRY table."""

    def __init__(self, units: gpd.GeoDataFrame):
        import duckdb

        self.con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        self.con.execute(f"LOAD '{duckdb_spatial_path()}'")
        wkb = pa.table({"k": np.arange(len(units), dtype=np.int32), "wkb": shapely.to_wkb(units.geometry.values)})
        self.con.register("villages_wkb", wkb)
        self.con.execute("CREATE TABLE villages AS SELECT k, ST_GeomFromWKB(wkb) AS geom FROM villages_wkb")
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]

    def use(self, x: np.ndarray, y: np.ndarray, prebuilt: bool):
        self.con.register("pts", pa.table({"i": np.arange(len(x), dtype=np.int64), "x": x, "y": y}))
        if prebuilt:
            self.con.execute("CREATE OR REPLACE TABLE pts_geom AS SELECT i, ST_Point(x, y) AS geom FROM pts")

    def from_xy(self):
        r = self.con.execute("SELECT p.i, v.k FROM pts p JOIN villages v ON ST_Contains(v.geom, ST_Point(p.x, p.y))").fetchnumpy()
        return r["i"], r["k"]

    def prebuilt(self):
        r = self.con.execute("SELECT p.i, v.k FROM pts_geom p JOIN villages v ON ST_Contains(v.geom, p.geom)").fetchnumpy()
        return r["i"], r["k"]


class Sedona:
    """SedonaDB: villages as a geoarrow WKB column (EPSG:4326), points as an Arrow table of x, y."""

    def __init__(self, units: gpd.GeoDataFrame):
        import geoarrow.pyarrow as ga
        import sedonadb

        self.sd = sedonadb.connect()
        geom = ga.with_crs(ga.as_wkb(pa.array(shapely.to_wkb(units.geometry.values))), "EPSG:4326")
        self.sd.create_data_frame(pa.table({"k": np.arange(len(units), dtype=np.int32), "geom": geom})).to_view("villages")
        self.threads = os.cpu_count()  # DataFusion's target partitions: one per CPU

    def use(self, x: np.ndarray, y: np.ndarray):
        self.sd.create_data_frame(pa.table({"i": np.arange(len(x), dtype=np.int64), "x": x, "y": y})).to_view("pts", overwrite=True)

    def from_xy(self):
        t = self.sd.sql("SELECT p.i, v.k FROM pts p JOIN villages v "
                        "ON ST_Contains(v.geom, ST_SetSRID(ST_Point(p.x, p.y), 4326))").to_arrow_table()
        return t["i"].to_numpy(), t["k"].to_numpy()


def methods_for(idx: ZoneIndex, units: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> dict:
    """name -> (timed call, untimed conversion of its answer to a village position per point)."""
    n = len(x)
    duck, sed = DuckSpatial(units), Sedona(units)
    duck.use(x, y, prebuilt=True)
    sed.use(x, y)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
    sj = units[["geometry"]].assign(zone_id=np.arange(len(units)))  # sjoin's answer: the village position
    unit_of = np.append(np.arange(len(units), dtype=np.int32), -1)

    def from_sjoin(v):  # village position, NaN where none
        return pd.Series(v, dtype="float64").fillna(-1).to_numpy().astype(np.int32)

    def joined(r):
        return scatter(n, *r)

    return {
        ASSIGN: (lambda: idx.assign(x, y), lambda df: village_of_assign(units, df)),
        "ZoneIndex.assign(nearest=False)": (lambda: idx.assign(x, y, nearest=False), lambda df: village_of_assign(units, df)),
        "ZoneIndex.locate (village + interior flag only)": (lambda: idx.locate(x, y), lambda r: unit_of[r[0]]),
        "geopandas.sjoin(within), points prebuilt": (lambda: sjoin(sj, pts), from_sjoin),
        "geopandas.sjoin(within) incl. points_from_xy": (
            lambda: sjoin(sj, gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)), from_sjoin),
        f"DuckDB spatial {duck_version()}, ST_Contains(ST_Point(x, y))": (duck.from_xy, joined),
        f"DuckDB spatial {duck_version()}, points table prebuilt": (duck.prebuilt, joined),
        f"SedonaDB {sedona_version()}, ST_Contains(ST_Point(x, y))": (sed.from_xy, joined),
    }, {"duckdb threads": duck.threads, "sedonadb partitions": sed.threads}


ASSIGN = "ZoneIndex.assign (nearest zone+distance)"


def duck_version():
    import duckdb

    return duckdb.__version__


def sedona_version():
    import sedonadb

    return sedonadb.__version__


def in_memory(n: int, repeats: int, outside: float, rss: bool) -> None:
    """One size: rounds of every method, the answers checked, a table printed."""
    idx, units = villages()
    x, y = sample_points(n, np.random.default_rng(SEED), outside)
    methods, threads = methods_for(idx, units, x, y)
    times = {name: [] for name in methods}
    answers = {}
    for r in range(repeats + 1):  # round 0: first use (numba, extension, plans), not counted
        for name, (run, _) in methods.items():
            gc.collect()
            t = time.perf_counter()
            out = run()
            dt = time.perf_counter() - t
            if r:
                times[name].append(dt)
            if r == repeats:
                answers[name] = out
            del out
    ks = {name: methods[name][1](answers.pop(name)) for name in methods}

    # ---- the answers agree on every interior point (else nothing is printed)
    interior = Interior(units)(x, y)
    ref = ks["geopandas.sjoin(within), points prebuilt"]
    agree = {}
    for name, k in ks.items():
        bad = np.flatnonzero(interior & (k != ref))
        assert not len(bad), f"{name} differs from sjoin at {len(bad)} interior points, e.g. {x[bad[0]]!r}, {y[bad[0]]!r}"
        agree[name] = int(((k != ref) & ~interior).sum())
    mem = {}
    if rss:
        for name in methods:
            out = subprocess.run([sys.executable, __file__, "--n", str(n), "--outside", str(outside), "--rss-of", name],
                                 capture_output=True, text=True, timeout=1800, check=True).stdout
            mem[name] = json.loads(out.strip().splitlines()[-1])["rss"]

    ratio = {name: statistics.median(t / a for t, a in zip(times[name], times[ASSIGN])) for name in methods}
    print(f"n={n:,} points, seed {SEED}: {1 - outside:.0%} uniform over the towns' bboxes, {outside:.0%} over the villages' bbox "
          f"+ 0.05 deg; {repeats} rounds (+1 untimed), median")
    print(f"in a village: {(ref >= 0).mean():.1%}; interior (> {MARGIN_M:g} m from every village boundary): {interior.sum():,}, "
          f"within {MARGIN_M:g} m: {(~interior).sum():,}; threads: zonechief {_zc_threads()}, "
          + ", ".join(f"{k} {v}" for k, v in threads.items()) + ", geopandas 1")
    print(f"answers checked: all {len(methods)} give the same village (or none) at all {interior.sum():,} interior points")
    w = max(len(k) for k in methods)
    print(f"{'method':<{w}}  {'median s':>9}  {'min s':>8}  {'M pts/s':>8}  {'x assign':>8}  {'rss MB':>7}  {'differs<1m':>10}")
    for name in methods:
        med = statistics.median(times[name])
        r = mem.get(name)
        rs = f"{r / 2**20:7.0f}" if r is not None else f"{'-':>7}"
        print(f"{name:<{w}}  {med:9.4f}  {min(times[name]):8.4f}  {n / med / 1e6:8.2f}  {ratio[name]:7.2f}x  {rs}  {agree[name]:10d}")
    print()


def _zc_threads():
    from gis.parallel import thread_count

    return thread_count()


def rss_of(name: str, n: int, outside: float) -> None:
    """In a fresh process: the method once on 10,000 points (first use), then the rise of the peak RSS on the same inputs."""
    idx, units = villages()
    warm = sample_points(10_000, np.random.default_rng(SEED), outside)
    methods_for(idx, units, *warm)[0][name][0]()
    x, y = sample_points(n, np.random.default_rng(SEED), outside)
    print(json.dumps({"rss": rss_rise(methods_for(idx, units, x, y)[0][name][0])}))


# ---------------------------------------------------------------- dask, 1e8 points from GeoParquet


def write_parts(d: Path, n: int, parts: int, outside: float) -> float:
    """n points in `parts` GeoParquet files under d (pid, WKB point geometry); reused when already there."""
    stamp = d / "points.json"
    want = {"n": n, "parts": parts, "outside": outside, "seed": SEED}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return 0.0
    shutil.rmtree(d / "points", ignore_errors=True)
    (d / "points").mkdir(parents=True)
    t = time.perf_counter()
    per = -(-n // parts)
    for j in range(parts):
        m = min(per, n - j * per)
        x, y = sample_points(m, np.random.default_rng([SEED, j]), outside)
        write_geoparquet(d / "points" / f"part.{j:05d}.parquet", np.arange(j * per, j * per + m, dtype=np.int64), x, y)
    stamp.write_text(json.dumps(want))
    return time.perf_counter() - t


def write_geoparquet(path: Path, pid: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """What GeoDataFrame({"pid"}, points_from_xy(x, y), crs=4326).to_parquet writes, with the WKB made by numpy:
    no shapely objects, so 1e8 points are written in minutes."""
    import pyarrow.parquet as pq
    from pyproj import CRS

    rec = np.empty(len(x), dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])  # packed: 21 B
    rec["order"], rec["type"], rec["x"], rec["y"] = 1, 1, x, y  # little-endian Point
    offsets = np.arange(len(x) + 1, dtype=np.int32) * rec.itemsize
    wkb = pa.BinaryArray.from_buffers(pa.binary(), len(x), [None, pa.py_buffer(offsets), pa.py_buffer(rec.view(np.uint8))])
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {
        "encoding": "WKB", "geometry_types": ["Point"], "crs": CRS(4326).to_json_dict(),
        "bbox": [float(x.min()), float(y.min()), float(x.max()), float(y.max())]}}}
    table = pa.table({"pid": pid, "geometry": wkb}).replace_schema_metadata({"geo": json.dumps(geo)})
    pq.write_table(table, path)


class Peaks:
    """Polls the resident set of this process's children every 0.2 s: the driver's tree, and the rest (the workers)."""

    def __init__(self):
        import psutil

        self.psutil, self.me = psutil, psutil.Process()
        self.driver = None
        self.worker_peak: dict[int, int] = {}
        self.sum_peak = self.driver_peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()

    def reset(self, driver_pid: int | None):
        self.driver, self.worker_peak, self.sum_peak, self.driver_peak = driver_pid, {}, 0, 0

    def _poll(self):
        while not self._stop.wait(0.2):
            drv, workers = 0, {}
            for p in self.me.children(recursive=True):
                try:
                    rss = p.memory_info().rss
                    parents = {q.pid for q in p.parents()}
                    tracker = "resource_tracker" in " ".join(p.cmdline())
                except self.psutil.Error:  # gone, or a zombie
                    continue
                if self.driver is not None and (p.pid == self.driver or self.driver in parents):
                    drv += rss
                elif not tracker:
                    workers[p.pid] = rss
            for pid, rss in workers.items():
                self.worker_peak[pid] = max(self.worker_peak.get(pid, 0), rss)
            self.sum_peak = max(self.sum_peak, sum(workers.values()))
            self.driver_peak = max(self.driver_peak, drv)

    def close(self):
        self._stop.set()
        self._t.join()


def _timed(peaks: Peaks, cmd: list[str], workers: bool) -> dict:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks.reset(p.pid)
    t = time.perf_counter()
    out, err = p.communicate(timeout=3600)
    dt = time.perf_counter() - t
    time.sleep(0.3)  # one more poll
    last = [ln for ln in (out + err).strip().splitlines() if ln.strip()][-1:]
    if p.returncode:  # e.g. KilledWorker: a worker passed its memory limit
        last = ["FAILED: " + " ".join(last)[:300]]
    res = {"s": dt, "driver": peaks.driver_peak, "tail": last, "ok": not p.returncode}
    if workers:
        res.update(each=max(peaks.worker_peak.values()), sum=peaks.sum_peak, pids=len(peaks.worker_peak))
    return res


def on_cluster(addr: str, what: str, src: str, dst: str) -> None:
    """In the timed process: the default client is the cluster's; run the CLI, or dask-geopandas' sjoin."""
    from distributed import Client

    with Client(addr):
        if what == "cli":
            from zonechief.cli import main as cli

            cli(["assign", "--engine", "dask", src, dst], standalone_mode=False)
        else:
            import dask_geopandas

            units = ZoneIndex.load().units[["unit_id", "village_code", "geometry"]]
            ddf = dask_geopandas.read_parquet(src)
            out = dask_geopandas.sjoin(ddf, units, how="inner", predicate="within")
            out.to_parquet(dst, write_index=False)
            print(f"{out.npartitions} parts")


def _warm():
    import dask_geopandas  # noqa: F401

    import gis.dask_assign  # noqa: F401
    import gis.lookup_kernels  # noqa: F401


def check_parts(d: Path, parts: list[int]) -> tuple[int, int]:
    """Outputs of both engines on a few parts: same village (or none) at every interior point. (points, interior)."""
    _, units = villages()
    interior_of = Interior(units)
    pos = {c: k for k, c in enumerate(units["village_code"])}
    total = inner = 0
    for j in parts:
        src = gpd.read_parquet(d / "points" / f"part.{j:05d}.parquet")
        a = pd.read_parquet(d / "out_cli" / f"part.{j:05d}.parquet", columns=["pid", "village_code", "snapped"])
        s = pd.read_parquet(next((d / "out_sjoin").glob(f"part.{j}.parquet")), columns=["pid", "village_code"])
        assert a["pid"].tolist() == src["pid"].tolist(), f"part {j}: --engine dask rows differ from the input's"
        ka = np.array([-1 if sn or pd.isna(v) else pos[v] for v, sn in zip(a["village_code"], a["snapped"])], dtype=np.int32)
        ks = np.full(len(src), -1, dtype=np.int32)
        ks[(s["pid"] - src["pid"].iloc[0]).to_numpy()] = [pos[v] for v in s["village_code"]]
        inside = interior_of(src.geometry.x.to_numpy(), src.geometry.y.to_numpy())
        bad = int((inside & (ka != ks)).sum())
        assert not bad, f"part {j}: --engine dask and dask-geopandas differ at {bad} interior points"
        total, inner = total + len(src), inner + int(inside.sum())
    return total, inner


def dask_compare(n: int, parts: int, d: Path, workers: int, memory_limit: str, outside: float, threaded: bool, keep: bool):
    """Write the points, start a LocalCluster, run both engines on it (and the plain CLI), print a table."""
    from distributed import Client, LocalCluster

    d.mkdir(parents=True, exist_ok=True)
    gen_s = write_parts(d, n, parts, outside)
    size = sum(f.stat().st_size for f in (d / "points").glob("*.parquet"))
    peaks = Peaks()
    rows = {}
    try:
        with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit, processes=True,
                          dashboard_address=None) as cluster:
            with Client(cluster) as client:  # both engines find the workers with their imports done
                client.run(_warm)
            me = [sys.executable, __file__, "--on-cluster", cluster.scheduler_address]
            for name, what in (("zonechief assign --engine dask (LocalCluster)", "cli"),
                               ("dask_geopandas.sjoin(within) + to_parquet (LocalCluster)", "sjoin")):
                out = d / f"out_{what}"
                shutil.rmtree(out, ignore_errors=True)
                rows[name] = _timed(peaks, me + [what, str(d / "points"), str(out)], workers=True)
        if threaded:
            out = d / "out_threaded"
            shutil.rmtree(out, ignore_errors=True)
            cli = str(Path(sys.executable).with_name("zonechief"))
            rows["zonechief assign --engine dask (threaded scheduler, one process)"] = _timed(
                peaks, [cli, "assign", "--engine", "dask", str(d / "points"), str(out)], workers=False)
    finally:
        peaks.close()
    if all(r["ok"] for r in rows.values()):
        checked, inner = check_parts(d, sorted({0, parts // 2, parts - 1}))
        checked_s = f"answers checked on {checked:,} points of 3 parts: same village (or none) at all {inner:,} interior points"
    else:
        checked_s = "answers not checked: a run failed"
    print(f"dask: n={n:,} points in {parts} GeoParquet files ({size / 2**30:.2f} GiB, WKB points + pid) under {d}"
          + (f", written in {gen_s:.0f} s" if gen_s else ", reused"))
    print(f"LocalCluster: {workers} worker processes x 1 thread, memory_limit {memory_limit} each; RSS polled every 0.2 s")
    print(checked_s)
    w = max(len(k) for k in rows)
    print(f"{'engine':<{w}}  {'wall s':>7}  {'M pts/s':>7}  {'worker peak MB':>14}  {'workers sum MB':>14}  {'driver peak MB':>14}  output")
    for name, r in rows.items():
        wk = f"{r['each'] / 2**20:14.0f}  {r['sum'] / 2**20:14.0f}" if "each" in r else f"{'-':>14}  {'-':>14}"
        print(f"{name:<{w}}  {r['s']:7.0f}  {n / r['s'] / 1e6:7.2f}  {wk}  {r['driver'] / 2**20:14.0f}  {' '.join(r['tail'])[:200]}")
    restarted = [k for k, r in rows.items() if r.get("pids", workers) > workers]
    if restarted:
        print(f"worker processes were restarted during: {', '.join(restarted)} (memory limit)")
    if not keep:
        shutil.rmtree(d)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="points, in memory (repeatable; default 1e6 and 1e7)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--outside", type=float, default=0.1, help="share of points over the grown bbox")
    ap.add_argument("--no-rss", action="store_true", help="skip the per-method RSS processes")
    ap.add_argument("--dask", type=int, metavar="N", help="instead: the dask comparison on N points from GeoParquet")
    ap.add_argument("--parts", type=int, help="GeoParquet files (default: one per 250,000 points)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/zonechief-peers"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--no-threaded", action="store_true", help="skip the plain CLI on the threaded scheduler")
    ap.add_argument("--keep", action="store_true", help="keep the files under --dir")
    ap.add_argument("--rss-of", help=argparse.SUPPRESS)  # internal: one method in a fresh process
    ap.add_argument("--on-cluster", nargs=4, help=argparse.SUPPRESS)  # internal: ADDR cli|sjoin SRC DST
    a = ap.parse_args(argv)
    if a.on_cluster:
        return on_cluster(*a.on_cluster)
    if a.rss_of:
        return rss_of(a.rss_of, a.n[0], a.outside)
    import dask
    import duckdb
    import sedonadb

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), geopandas {gpd.__version__}, "
          f"pyarrow {pa.__version__}, duckdb {duckdb.__version__} (spatial from {duckdb_spatial_path().parent.parent.parent.name} "
          f"wheel), sedonadb {sedonadb.__version__}, dask {dask.__version__}")
    if a.dask:
        return dask_compare(a.dask, a.parts or max(1, a.dask // 250_000), a.dir, a.workers, a.memory_limit, a.outside, not a.no_threaded, a.keep)
    for n in a.n or [1_000_000, 10_000_000]:
        in_memory(n, a.repeats, a.outside, not a.no_rss)


if __name__ == "__main__":
    main()
