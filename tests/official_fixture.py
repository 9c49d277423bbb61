"""A synthetic official-style village layer: the shipped villages with 三调 columns, in the files cities deliver.

Columns as a 村级调查区 export has them: BSM (标识码), XZQDM/XZQMC (the town: 行政区代码/名称, 9 digits),
ZLDWDM (坐落单位代码: the 12-digit village code + 7 zeros), ZLDWMC (坐落单位名称), MJ (area, m²).
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import geopandas as gpd
import pyogrio

from gis.crs import wgs84_to_gcj02
from gis.official_layers import shift_vertices
from gis.shipped import DATA_DIR

METRIC = "EPSG:4547"


@cache
def _shipped() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA_DIR / "villages.geojson")


def shipped_villages() -> gpd.GeoDataFrame:
    """The shipped villages (WGS-84: code, name, short_name, town, town_code, zone_id, geometry); a fresh copy."""
    return _shipped().copy()


def official_frame(villages: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """The villages with 三调-style columns only (no zone column), still in WGS-84."""
    v = shipped_villages() if villages is None else villages
    out = gpd.GeoDataFrame({
        "BSM": range(1, len(v) + 1),
        "XZQDM": v["town_code"].to_numpy(),
        "XZQMC": v["town"].to_numpy(),
        "ZLDWDM": (v["code"] + "0000000").to_numpy(),
        "ZLDWMC": v["name"].to_numpy(),
        "MJ": v.to_crs(METRIC).area.round(2).to_numpy(),
    }, geometry=v.geometry.values, crs=v.crs)
    return out


def write_shapefile(folder: Path, frame: gpd.GeoDataFrame | None = None, *, crs="EPSG:4547", cpg: bool = True,
                    prj: bool = True, name: str = "CJDCQ") -> Path:
    """The layer as a Shapefile in `crs` with a GBK .dbf; without .cpg (and LDID 0, as many exports) if not `cpg`."""
    frame = official_frame() if frame is None else frame
    path = Path(folder) / f"{name}.shp"
    pyogrio.write_dataframe(frame.to_crs(crs), path, encoding="GBK")
    if not cpg:
        path.with_suffix(".cpg").unlink()
        dbf = path.with_suffix(".dbf")
        data = bytearray(dbf.read_bytes())
        data[29] = 0  # language driver id: none, so GDAL cannot tell the code page either
        dbf.write_bytes(bytes(data))
    if not prj:
        path.with_suffix(".prj").unlink()
    return path


def write_gpkg(folder: Path, frame: gpd.GeoDataFrame | None = None, *, crs="EPSG:4490") -> Path:
    """The layer as a GeoPackage in CGCS2000 (EPSG:4490)."""
    frame = official_frame() if frame is None else frame
    path = Path(folder) / "villages.gpkg"
    frame.to_crs(crs).to_file(path, layer="CJDCQ", engine="pyogrio")
    return path


def write_geojson_gcj02(folder: Path, frame: gpd.GeoDataFrame | None = None) -> Path:
    """The layer as GeoJSON with GCJ-02 coordinates (declared, as GeoJSON must be, as WGS-84)."""
    frame = (official_frame() if frame is None else frame).to_crs(4326)
    frame = frame.set_geometry(shift_vertices(frame.geometry.values, wgs84_to_gcj02), crs=4326)
    path = Path(folder) / "villages_gcj02.geojson"
    frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def write_filegdb(folder: Path, frame: gpd.GeoDataFrame | None = None, *, crs="EPSG:4547") -> Path:
    """The layer as an Esri FileGDB (GDAL's OpenFileGDB driver writes it from GDAL 3.6)."""
    frame = official_frame() if frame is None else frame
    path = Path(folder) / "villages.gdb"
    pyogrio.write_dataframe(frame.to_crs(crs), path, driver="OpenFileGDB", layer="CJDCQ")
    return path


def write_geoparquet(folder: Path, frame: gpd.GeoDataFrame | None = None, *, crs="EPSG:4547") -> Path:
    """The layer as GeoParquet."""
    frame = official_frame() if frame is None else frame
    path = Path(folder) / "villages.parquet"
    frame.to_crs(crs).to_parquet(path)
    return path
