"""Point input: coordinate checks with messages a person can act on, one point as a
GeocodeResult (``geocode_coordinates``), and point files in and out.

Files: CSV (lon/lat columns), GeoJSON, GeoPackage, GeoParquet; the output
format follows the output file's extension.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gis import crs as _crs
from gis.errors import ZonechiefError
from gis.geocode_result import GeocodeResult

LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
VECTOR_EXT = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
PARQUET_EXT = (".parquet", ".geoparquet")


class CoordinateError(ZonechiefError, ValueError):
    """A coordinate cannot be used; the message says which and why."""


def coordinate_problem(x: float, y: float, crs: str = "wgs84") -> str | None:
    """Why (x, y) in `crs` is unusable, or None if it is fine."""
    names = ("lon", "lat") if _crs.is_geographic(crs) else ("x", "y")
    for name, v in zip(names, (x, y)):
        if v is None or not np.isfinite(v):
            return f"{name} must be a finite number, got {v!r}"
    if _crs.is_geographic(crs):
        lon, lat = x, y
        if abs(lat) > 90:
            hint = "; did you swap lon and lat?" if abs(lon) <= 90 else ""
            return f"lat {lat:g} is out of range [-90, 90]{hint}"
        if abs(lon) > 180:
            return f"lon {lon:g} is out of range [-180, 180]"
        return None
    lon, lat = _crs.to_wgs84(np.array([x]), np.array([y]), crs)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()) or abs(float(lat[0])) > 90 or abs(float(lon[0])) > 180:
        return f"x {x:g}, y {y:g} in {_crs.normalize_crs(crs)} do not map to a valid WGS-84 position"
    return None


def check_coordinates(x, y, crs: str = "wgs84", raise_error: bool = True) -> np.ndarray:
    """Boolean mask of usable coordinates; with raise_error, the first problem raises CoordinateError."""
    x = np.atleast_1d(np.asarray(x, dtype="f8"))
    y = np.atleast_1d(np.asarray(y, dtype="f8"))
    ok = np.isfinite(x) & np.isfinite(y)
    if _crs.is_geographic(crs):
        ok &= (np.abs(x) <= 180) & (np.abs(y) <= 90)
    else:
        lon, lat = _crs.to_wgs84(np.where(ok, x, 0.0), np.where(ok, y, 0.0), crs)
        lon, lat = np.atleast_1d(lon), np.atleast_1d(lat)
        ok &= np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if raise_error and not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CoordinateError(coordinate_problem(float(x[i]), float(y[i]), crs) or "invalid coordinate")
    return ok


def geocode_coordinates(x, y, crs: str = "wgs84", index=None) -> GeocodeResult:
    """Coordinates in `crs` (any name gis.crs accepts) → WGS-84.

    Raises CoordinateError (a ValueError) for unusable coordinates and
    UnknownCRSError for an unknown CRS. With a ZoneIndex, zone_id is filled in.
    """
    check_coordinates(x, y, crs, raise_error=True)
    lon, lat = _crs.to_wgs84(float(x), float(y), crs)
    lon, lat = float(lon), float(lat)
    zone = None
    if index is not None:
        zone = index.lookup(lon, lat).zone_id
    return GeocodeResult("coordinates", lon, lat, 1.0, False, [], zone, None,
                         note=f"coordinates given in {_crs.normalize_crs(crs)}")


def _find(columns, names, given):
    if given:
        if given not in columns:
            raise ValueError(f"column {given!r} not found; columns are {list(columns)}")
        return given
    low = {c.lower(): c for c in columns}
    for n in names:
        if n in low:
            return low[n]
    raise ValueError(f"no coordinate column among {list(columns)}; expected one of {list(names)} (or name it with --lon/--lat)")


def read_points(path: str | Path, lon_col: str | None = None, lat_col: str | None = None):
    """Read a point file. Returns (table, x, y, crs_or_None).

    For CSV the table keeps every column as text, so nothing is altered on the
    way out; unparseable coordinates become NaN and are flagged later, not dropped.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext in (".csv", ".txt"):
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        lc, ac = _find(df.columns, LON_NAMES, lon_col), _find(df.columns, LAT_NAMES, lat_col)
        x = pd.to_numeric(df[lc].str.strip(), errors="coerce").to_numpy(dtype="f8")
        y = pd.to_numeric(df[ac].str.strip(), errors="coerce").to_numpy(dtype="f8")
        return df, x, y, None
    if ext in PARQUET_EXT:
        gdf = gpd.read_parquet(path)
    else:
        gdf = gpd.read_file(path, engine="pyogrio")
    geom = gdf.geometry
    bad = geom.isna() | geom.is_empty | (geom.geom_type != "Point")
    x = np.where(bad, np.nan, geom.x.where(~bad) if not bad.all() else np.nan).astype("f8")
    y = np.where(bad, np.nan, geom.y.where(~bad) if not bad.all() else np.nan).astype("f8")
    return gdf, x, y, (gdf.crs.to_string() if gdf.crs is not None else None)


def write_points(table: pd.DataFrame, path: str | Path, lon: np.ndarray, lat: np.ndarray) -> None:
    """Write `table` to `path`; spatial formats get WGS-84 point geometry from lon/lat."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".csv", ".txt"):
        out = pd.DataFrame(table.drop(columns="geometry", errors="ignore"))
        out.to_csv(path, index=False)
        return
    ok = np.isfinite(lon) & np.isfinite(lat)
    geom = gpd.points_from_xy(np.where(ok, lon, 0), np.where(ok, lat, 0), crs=4326)
    geom = gpd.GeoSeries(geom).where(ok, None)
    gdf = gpd.GeoDataFrame(pd.DataFrame(table.drop(columns="geometry", errors="ignore")).reset_index(drop=True),
                           geometry=geom.values, crs=4326)
    if ext in PARQUET_EXT:
        gdf.to_parquet(path)
    elif ext in VECTOR_EXT:
        gdf.to_file(path, driver=VECTOR_EXT[ext], engine="pyogrio")
    else:
        raise ValueError(f"{path}: unknown output format; use .csv, .geojson, .gpkg or .parquet")
