"""Point input: coordinate checks with messages a person can act on, one point as a
GeocodeResult (``geocode_coordinates``), and point files in and out.

``misplaced_problems`` is the one rule for points that are evidently not in the CRS they
came with (degrees sent as metres of a projected CRS): the intake of reports and the
lookups call it.

Files: CSV (lon/lat columns), GeoJSON, GeoPackage, GeoParquet; the output
format follows the output file's extension.
"""
from __future__ import annotations

import math
import weakref
from pathlib import Path
from types import SimpleNamespace

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
# The two towns span ~30 km; a point in the wrong units or CRS lands thousands of km away, while
# real reports from elsewhere in Guangdong (up to ~500 km) are only outside every zone.
FAR_KM = 1000.0
_EARTH_R_KM = 6371.0088
_AREAS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # index → its bounds, computed once


class CoordinateError(ZonechiefError, ValueError):
    """A coordinate cannot be used; the message says which and why."""


class MisplacedError(CoordinateError):
    """Coordinates in a projected CRS that land thousands of km from the area served: degrees, or the wrong CRS."""


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


def served_area(index) -> tuple[float, float, float, float]:
    """(minlon, minlat, maxlon, maxlat) of the zones of `index` (a ZoneIndex), once per index."""
    area = _AREAS.get(index)
    if area is None:
        area = _AREAS[index] = tuple(float(v) for v in index.units.total_bounds)
    return area


def _km_from(area, lon, lat, m=np):
    """Great-circle km from each WGS-84 point to the nearest point of the box `area` (0 inside); NaN stays NaN.

    numpy arrays, or with m=_SCALAR finite Python floats (one point: 20x faster than numpy's calls).
    """
    clon, clat = m.minimum(m.maximum(lon, area[0]), area[2]), m.minimum(m.maximum(lat, area[1]), area[3])
    p1, p2, dl = m.radians(lat), m.radians(clat), m.radians(clon - lon)
    h = m.sin((p2 - p1) / 2) ** 2 + m.cos(p1) * m.cos(p2) * m.sin(dl / 2) ** 2
    return 2 * _EARTH_R_KM * m.arcsin(m.sqrt(m.minimum(m.maximum(h, 0.0), 1.0)))


_SCALAR = SimpleNamespace(minimum=min, maximum=max, radians=math.radians, sin=math.sin, cos=math.cos,
                          arcsin=math.asin, sqrt=math.sqrt)


def _problem(x: float, y: float, name: str, km: float) -> str:
    hint = ("these look like degrees; did you mean crs=wgs84?" if abs(x) <= 180 and abs(y) <= 180
            else "check the coordinates and their crs")
    return f"x {x:g}, y {y:g} in {name} land {km:,.0f} km from the area served; {hint}"


def misplaced_problems(index, x, y, crs: str, lon=None, lat=None) -> np.ndarray | None:
    """Per point (x, y) given in `crs`: why it is evidently not in that CRS, or None; None for
    the whole array when no point is (the common case costs no per-point work).

    Only a projected CRS is judged: points that land more than FAR_KM from the area
    served by `index` were typed in degrees ("these look like degrees; did you mean
    crs=wgs84?") or in another CRS. Degrees in a geographic CRS are degrees: far away,
    they are just outside every zone. `lon`, `lat`: the points in WGS-84, if already
    converted. Unusable coordinates (NaN) are left to check_coordinates.
    """
    if _crs.is_geographic(crs):
        return None
    x = np.atleast_1d(np.asarray(x, dtype="f8"))
    y = np.atleast_1d(np.asarray(y, dtype="f8"))
    if lon is None or lat is None:
        lon, lat = _crs.to_wgs84(x, y, crs)
    with np.errstate(invalid="ignore"):
        km = _km_from(served_area(index), np.atleast_1d(np.asarray(lon, dtype="f8")),
                      np.atleast_1d(np.asarray(lat, dtype="f8")))
        far = np.flatnonzero(km > FAR_KM)
    if not len(far):
        return None
    out = np.full(len(x), None, object)
    name = _crs.quoted(_crs.normalize_crs(crs))
    for i in far:
        out[i] = _problem(float(x[i]), float(y[i]), name, float(km[i]))
    return out


def check_placed(index, x, y, crs: str, lon: float | None = None, lat: float | None = None) -> None:
    """Raise MisplacedError if the point (x, y) in `crs` is evidently not in that CRS (see misplaced_problems).

    The same rule for one point, in plain Python: numpy's per-call cost would be most of a lookup's.
    """
    if _crs.is_geographic(crs):
        return
    if lon is None or lat is None:
        lon, lat = (float(v) for v in _crs.to_wgs84(float(x), float(y), crs))
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return  # unusable coordinates: check_coordinates says why
    km = _km_from(served_area(index), lon, lat, _SCALAR)
    if km > FAR_KM:
        raise MisplacedError(_problem(float(x), float(y), _crs.quoted(_crs.normalize_crs(crs)), km))


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
