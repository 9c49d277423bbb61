"""Assignment past one machine: dask-geopandas over partitioned GeoParquet equals the in-memory engine."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gis.dask_assign import assign_frame, assign_parquet

ZONECHIEF = Path(sys.executable).parent / "zonechief"
N = 50_000
FILES = 5


def _points(index) -> gpd.GeoDataFrame:
    """50k points over the towns and a margin around them, plus every kind of bad input."""
    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = index.zones.total_bounds
    x = np.round(rng.uniform(minx - 0.01, maxx + 0.01, N), 6)
    y = np.round(rng.uniform(miny - 0.01, maxy + 0.01, N), 6)
    geoms = np.asarray(shapely.points(x, y), dtype=object)
    # zone vertices: boundary points; then invalid inputs, spread over the partitions
    verts = shapely.get_coordinates(index.zones.geometry.values)[::7][:200]
    at = rng.choice(N, size=len(verts) + 400, replace=False)
    geoms[at[:len(verts)]] = shapely.points(verts)
    bad = at[len(verts):]
    geoms[bad[:100]] = None
    geoms[bad[100:200]] = shapely.Point()
    geoms[bad[200:300]] = shapely.points(np.full(100, 200.0), np.full(100, 23.0))   # longitude out of range
    geoms[bad[300:]] = shapely.points(np.full(100, 23.05), np.full(100, 114.05))    # lon/lat swapped
    return gpd.GeoDataFrame({"rid": np.arange(N), "note": [f"r{i}" for i in range(N)],
                             "status": "received"},  # clashes with the assignment's own column
                            geometry=list(geoms), crs=4326)


@pytest.fixture(scope="module")
def data(zone_index, tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    pts = _points(zone_index)
    src = d / "src"
    src.mkdir()
    step = N // FILES
    for k in range(FILES):
        pts.iloc[k * step:(k + 1) * step].to_parquet(src / f"part-{k:02d}.parquet")
    pts.to_parquet(d / "all.parquet")
    return d, pts


def _read_dir(path: Path) -> gpd.GeoDataFrame:
    files = sorted(path.glob("part.*.parquet"))
    return pd.concat([gpd.read_parquet(f) for f in files], ignore_index=True)


def test_dask_on_a_local_cluster_equals_the_in_memory_engine(data, zone_index):
    from dask.distributed import Client, LocalCluster

    d, pts = data
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        res = assign_parquet(d / "src", d / "out", client=client, index=zone_index, npartitions=7)
        # the work ran in the worker processes: each rebuilt the index it was sent
        rebuilt = client.run(lambda: len(__import__("gis.dask_assign").dask_assign._REBUILT))
    assert len(rebuilt) == 2 and sum(rebuilt.values()) >= 1
    assert res.partitions == 7 and len(res.files) == 7 and res.rows == N
    got = _read_dir(d / "out")
    # Reference: the public in-memory API on the whole table at once.
    ref = zone_index.assign(pts)
    assert list(got.columns) == [c for c in ref.columns if c != "geometry"] + ["geometry"]
    assert got["rid"].tolist() == list(range(N))
    ref = pd.DataFrame(ref.drop(columns="geometry")).reset_index(drop=True)
    ref = ref.astype({c: str for c, t in ref.dtypes.items() if isinstance(t, pd.CategoricalDtype)})  # written as str
    pd.testing.assert_frame_equal(got.drop(columns="geometry"), ref, check_dtype=False)
    counts = got["status_zc"].value_counts()
    assert res.counts == {k: int(v) for k, v in counts.items()}
    assert counts["invalid"] == 400 and {"inside", "boundary", "outside", "snapped"} <= set(counts.index)
    # output geometry: the WGS-84 point, none for invalid rows
    ok = got["status_zc"] != "invalid"
    assert got.geometry[~ok].isna().all() and got.crs.to_epsg() == 4326
    assert np.allclose(got.geometry[ok].x, got.loc[ok, "lon_wgs84"]) and np.allclose(got.geometry[ok].y, got.loc[ok, "lat_wgs84"])
    assert got.loc[~ok, "problem_zc" if "problem_zc" in got else "problem"].notna().all()


def test_cli_dask_engine_writes_what_the_memory_engine_writes(data, tmp_path):
    d, _ = data
    mem, out = tmp_path / "mem.parquet", tmp_path / "parts"
    for args in (["assign", d / "all.parquet", mem, "--crs", "gcj02", "--at", "2025-06-01"],
                 ["assign", d / "src", out, "--crs", "gcj02", "--at", "2025-06-01", "--engine", "dask",
                  "--partitions", "3"]):
        r = subprocess.run([str(ZONECHIEF), *map(str, args)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    assert "50000 rows" in r.stderr and "(3 parts)" in r.stderr
    a, b = gpd.read_parquet(mem), _read_dir(out)
    assert len(sorted(out.glob("part.*.parquet"))) == 3
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"), check_dtype=False)
    assert a.geometry.equals(b.geometry)
    # the roster date reached the workers: ZMT-03's chief before the 2025-07-01 handover
    assert set(b.loc[b["zone_id"] == "ZMT-03", "chief_id"].dropna()) == {"ZMT-C10"}


def test_cli_refuses_what_the_engines_cannot_read(data, tmp_path):
    d, _ = data
    r = subprocess.run([str(ZONECHIEF), "assign", str(d / "src"), str(tmp_path / "x.parquet")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--engine dask" in r.stderr
    csv = tmp_path / "p.csv"
    csv.write_text("lon,lat\n114.05,23.06\n")
    r = subprocess.run([str(ZONECHIEF), "assign", str(csv), str(tmp_path / "o"), "--engine", "dask"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "GeoParquet" in r.stderr


def test_non_empty_destination_and_non_point_geometries(data, zone_index, tmp_path):
    d, _ = data
    dst = tmp_path / "o"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        assign_parquet(d / "src", dst, index=zone_index)
    assert (dst / "keep.txt").read_text() == "mine"
    g = gpd.GeoDataFrame({"k": [1, 2]}, geometry=[shapely.LineString([(114.0, 23.0), (114.1, 23.0)]),
                                                  shapely.Point(114.05, 23.06)], crs=4326)
    g.to_parquet(tmp_path / "mixed.parquet")
    res = assign_parquet(tmp_path / "mixed.parquet", tmp_path / "m", index=zone_index)  # local threads
    out = _read_dir(tmp_path / "m")
    assert out["status"].tolist()[0] == "invalid" and out["status"].tolist()[1] != "invalid"
    assert res.counts["invalid"] == 1
    assert assign_frame(zone_index, g)["status"].tolist() == out["status"].tolist()
