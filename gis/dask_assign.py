"""Zone assignment past one machine: partitioned GeoParquet in, partitioned GeoParquet out, with dask-geopandas.

>>> assign_parquet("reports/", "assigned/")                       # doctest: +SKIP
>>> assign_parquet("reports/", "assigned/", client=Client("tcp://scheduler:8786"))  # doctest: +SKIP

Paths are local paths: on a cluster, the workers must see them too (a shared file system).

Each partition goes through ``assign_frame``, which does what the in-memory
engine (``zonechief assign``) does with a whole table: ZoneIndex.assign on its
points, input columns kept (``_zc`` on clashes), WGS-84 points out. The output
is therefore the in-memory engine's row for row: same rows, same order, same
columns and values (tests/test_dask.py checks this on a LocalCluster). Memory per worker is one partition plus the
zone index (about 100 kB pickled), which each worker receives once.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.crs import normalize_crs

__all__ = ["assign_parquet", "assign_frame", "AssignResult"]


@dataclass
class AssignResult:
    """What assign_parquet wrote: rows, partitions, the output files and the number of rows per status."""

    rows: int
    partitions: int
    files: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rows per status

    def __str__(self):
        return (f"{self.rows} rows in {self.partitions} partitions: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))


def _xy(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates; missing, empty or non-point geometries become NaN (later "invalid"), as in read_points."""
    import shapely

    geoms = np.asarray(gdf.geometry.array, dtype=object)
    ok = shapely.get_type_id(geoms) == 0  # Point; None is -1
    ok[ok] = ~shapely.is_empty(geoms[ok])
    x = np.full(len(geoms), np.nan)
    y = np.full(len(geoms), np.nan)
    x[ok], y[ok] = shapely.get_x(geoms[ok]), shapely.get_y(geoms[ok])
    return x, y


def assign_frame(index, gdf: gpd.GeoDataFrame, crs: str | None = None, at=None) -> gpd.GeoDataFrame:
    """The in-memory engine on one table: its columns (without geometry), the assignment columns, WGS-84 points.

    ``crs`` names the coordinates' CRS; default the table's own, else WGS-84.
    Assignment columns that clash with input columns get a ``_zc`` suffix.
    """
    c = normalize_crs(crs or (gdf.crs.to_string() if gdf.crs is not None else None) or "wgs84")
    x, y = _xy(gdf)
    res = index.assign(x, y, crs=c, at=at)
    out = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    for col in res.columns:
        v = res[col]
        if isinstance(v.dtype, pd.CategoricalDtype):  # plain str/None: every part file gets the same schema
            v = v.astype(object).where(v.notna(), None)
        out[col if col not in out.columns else f"{col}_zc"] = v.to_numpy()
    lon, lat = res["lon_wgs84"].to_numpy(), res["lat_wgs84"].to_numpy()
    ok = np.isfinite(lon) & np.isfinite(lat)
    geom = gpd.GeoSeries(gpd.points_from_xy(np.where(ok, lon, 0), np.where(ok, lat, 0), crs=4326)).where(ok, None)
    return gpd.GeoDataFrame(out, geometry=geom.values, crs=4326)


def _schema(meta: gpd.GeoDataFrame, src: Path):
    """The output's Arrow schema, given in full: object columns are strings (or their source type), so every
    part file has one schema (an all-None part is not "null") and dask need not guess from fake rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = src if src.is_file() else next(iter(sorted(src.rglob("*.parquet"))), None)
    given = pq.read_schema(first) if first is not None else pa.schema([])
    fields = []
    for col, dt in meta.dtypes.items():
        if col == meta.geometry.name:
            fields.append(pa.field(col, pa.binary()))  # WKB, as geopandas writes it
        elif dt == object:
            fields.append(pa.field(col, given.field(col).type if col in given.names else pa.string()))
        else:
            fields.append(pa.Schema.from_pandas(pd.DataFrame({col: meta[col]}), preserve_index=False).field(col))
    return pa.schema(fields)


class _Shipped:
    """A ZoneIndex that pickles as what it is built from (units, roster table, snap tolerance).

    The index itself holds prepared geometries, locks and caches that do not
    pickle; workers rebuild it with the public constructor, once per process.
    """

    def __init__(self, index, token: str):
        self.index, self.token = index, token

    def __reduce__(self):
        i = self.index
        roster = i.roster.table if i.roster is not None else None
        return _rebuild, (i.units, roster, i.snap_tolerance_m, self.token)


_REBUILT: dict[str, _Shipped] = {}


def _rebuild(units, roster_table, snap_tolerance_m, token):
    hit = _REBUILT.get(token)
    if hit is None:
        from gis.lookup import ZoneIndex
        from gis.roster import Roster

        index = ZoneIndex(units, Roster(roster_table) if roster_table is not None else None, snap_tolerance_m)
        _REBUILT.clear()  # keep only the latest run's index in a long-lived worker
        hit = _REBUILT[token] = _Shipped(index, token)
    return hit


def _part(gdf, shipped, crs, at):
    index = shipped.index if isinstance(shipped, _Shipped) else shipped
    return assign_frame(index, gdf, crs=crs, at=at)


def assign_parquet(src, dst_dir, crs: str | None = None, npartitions: int | None = None, client=None,
                   index=None, at=None, overwrite: bool = False) -> AssignResult:
    """Assign every point of a GeoParquet file or directory of GeoParquet files; write ``dst_dir``/part.NNNNN.parquet.

    ``crs``: CRS of the coordinates (default: the file's, else WGS-84).
    ``npartitions``: repartition first (default: as read, about one per file).
    ``client``: a dask.distributed Client to run on (default: the current
    scheduler, e.g. local threads). ``index``: a ZoneIndex (default: the
    shipped or configured one). ``at``: roster date. An existing non-empty
    ``dst_dir`` is an error unless ``overwrite``.
    """
    import dask
    import dask_geopandas

    from gis.lookup import ZoneIndex

    src, dst = Path(src), Path(dst_dir)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or directory")
    if dst.exists() and any(dst.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dst} is not empty; choose a new directory or pass overwrite=True")
        for p in dst.glob("part.*.parquet"):
            p.unlink()
    index = ZoneIndex.load() if index is None else index
    ddf = dask_geopandas.read_parquet(str(src))
    if npartitions:
        ddf = ddf.repartition(npartitions=int(npartitions))
    # Resolve the CRS once, on the client: the same name for every partition.
    crs = crs or (ddf.crs.to_string() if ddf.crs is not None else None) or "wgs84"
    normalize_crs(crs)  # fail here, not in a worker, on an unknown CRS
    meta = _part(ddf._meta, index, crs, at)
    # One task holds the index: each worker receives it once, and dask need not hash it.
    token = uuid.uuid4().hex
    shipped = dask.delayed(_Shipped(index, token), name=f"zone-index-{token}", traverse=False)
    out = ddf.map_partitions(_part, shipped, crs, at, meta=meta)
    out.to_parquet(str(dst), write_index=False, name_function=lambda i: f"part.{i:05d}.parquet",
                   schema=_schema(meta, src), compute_kwargs={"scheduler": client} if client is not None else None)
    files = sorted(dst.glob("part.*.parquet"))
    col = "status_zc" if "status" in ddf.columns else "status"  # an input "status" column keeps its name
    status = pd.concat([pd.read_parquet(f, columns=[col]) for f in files], ignore_index=True)[col] \
        if files else pd.Series([], dtype=object)
    return AssignResult(rows=len(status), partitions=out.npartitions, files=files,
                        counts={str(k): int(v) for k, v in status.value_counts().items()})
