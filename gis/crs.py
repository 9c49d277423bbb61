"""Coordinate reference systems used in China, vectorised with numpy.

Chinese web maps do not publish WGS-84 coordinates: AMap/Tencent/WeChat use the
obfuscated GCJ-02 ("Mars") datum and Baidu adds its own BD-09 offset on top of
that.  Official surveying data uses CGCS2000 (EPSG:4490) and its Gauss-Krüger
projections (e.g. EPSG:4547 for Dongguan).  This module converts between all of
these and WGS-84.

Every transform accepts scalars, sequences or numpy arrays, broadcasts ``lon``
against ``lat`` and returns a ``(lon, lat)`` tuple of float64 arrays (0-d for
scalar input).  NaN passes through as NaN.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyproj
from pyproj.exceptions import CRSError

from gis.errors import ZonechiefError

__all__ = [
    "UnknownCRSError",
    "normalize_crs",
    "is_geographic",
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "gcj02_to_bd09",
    "bd09_to_gcj02",
    "wgs84_to_bd09",
    "bd09_to_wgs84",
    "to_wgs84",
    "from_wgs84",
]

# GCJ-02 is defined on the Krasovsky 1940 ellipsoid.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

_MAX_ITER = 30
_TOL_DEG = 1e-10  # ~10 µm; far below the 1 mm we promise

_ALIASES = {
    **dict.fromkeys(["wgs84", "wgs-84", "epsg:4326", "4326", "crs84", "ogc:crs84"], "wgs84"),
    **dict.fromkeys(["gcj02", "gcj-02", "amap", "tencent", "wechat", "mars"], "gcj02"),
    **dict.fromkeys(["bd09", "bd-09", "baidu"], "bd09"),
    "cgcs2000": "EPSG:4490",
}
_OFFSET_CRS = ("wgs84", "gcj02", "bd09")


class UnknownCRSError(ZonechiefError, ValueError):
    """Raised when a CRS name is neither a known alias nor parseable by pyproj."""

    def __init__(self, name: object):
        super().__init__(
            f"unknown CRS {name!r}; use wgs84, gcj02, bd09, cgcs2000, "
            "or any EPSG code such as EPSG:4547"
        )
        self.name = name


# --------------------------------------------------------------------------- CRS names


def normalize_crs(name: str) -> str:
    """Return the canonical name of a CRS.

    ``"wgs84"``, ``"gcj02"`` and ``"bd09"`` for the three lon/lat systems (any
    common alias, case-insensitive); otherwise ``"EPSG:nnnn"`` when pyproj can
    identify an EPSG code, else pyproj's ``to_string()``.

    Raises UnknownCRSError for empty or unparseable input.
    """
    if name is None or isinstance(name, bool):
        raise UnknownCRSError(name)
    text = str(name).strip()
    if not text:
        raise UnknownCRSError(name)
    try:
        return _normalize(text)
    except UnknownCRSError:
        raise UnknownCRSError(name) from None


@lru_cache(maxsize=256)
def _normalize(text: str) -> str:
    alias = _ALIASES.get(text.lower())
    if alias:
        return alias
    try:
        crs = pyproj.CRS.from_user_input(text)
    except (CRSError, TypeError, ValueError):
        raise UnknownCRSError(text) from None
    code = crs.to_epsg()
    if code == 4326:
        return "wgs84"  # so that "urn:ogc:def:crs:EPSG::4326" etc. take the fast path
    return f"EPSG:{code}" if code else crs.to_string()


@lru_cache(maxsize=64)
def _pyproj_crs(normalized: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input("EPSG:4326" if normalized == "wgs84" else normalized)


def is_geographic(crs: str) -> bool:
    """True if coordinates in ``crs`` are longitude/latitude degrees."""
    c = normalize_crs(crs)
    return c in _OFFSET_CRS or _pyproj_crs(c).is_geographic


# --------------------------------------------------------------------------- helpers


def _xy(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return x, y


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    # NaN compares False, so NaN counts as "outside" and is passed through untouched.
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS-84 point (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    px, py = x * np.pi, y * np.pi
    common = 20.0 * np.sin(6.0 * px) + 20.0 * np.sin(2.0 * px)
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (common + 20.0 * np.sin(py) + 40.0 * np.sin(py / 3.0)
               + 160.0 * np.sin(py / 12.0) + 320.0 * np.sin(py / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (common + 20.0 * np.sin(px) + 40.0 * np.sin(px / 3.0)
               + 150.0 * np.sin(px / 12.0) + 300.0 * np.sin(px / 30.0)) * 2.0 / 3.0)
    rad = np.radians(lat)
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _gcj_raw(lon, lat):
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def _bd_raw(lon, lat):
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _gcj_inverse_guess(lon, lat):
    dlon, dlat = _gcj_delta(lon, lat)
    return lon - dlon, lat - dlat


def _bd_inverse_guess(lon, lat):
    # The textbook closed-form bd09->gcj02; only good to ~1e-6 deg, hence the refinement.
    x, y = lon - 0.0065, lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _forward(raw, lon, lat):
    lon, lat = _xy(lon, lat)
    with np.errstate(all="ignore"):
        inside = _in_china(lon, lat)
        flon, flat = raw(lon, lat)
        return np.where(inside, flon, lon), np.where(inside, flat, lat)


def _inverse(raw, guess, lon, lat):
    """Solve raw(w) = (lon, lat) by fixed-point iteration.

    Both offsets are nearly translations (Jacobian ≈ identity, off by < 1 %), so
    w <- w - (raw(w) - target) contracts by ~100x per step and converges in a
    handful of iterations. Each point stops on its own error, so its answer does not
    depend on what else is in the batch.
    """
    lon, lat = _xy(lon, lat)
    shape = lon.shape
    lon, lat = lon.ravel(), lat.ravel()
    with np.errstate(all="ignore"):
        inside = _in_china(lon, lat)
        wlon, wlat = guess(lon, lat)
        active = np.flatnonzero(inside)
        for _ in range(_MAX_ITER):
            if not len(active):
                break
            flon, flat = raw(wlon[active], wlat[active])
            elon, elat = flon - lon[active], flat - lat[active]
            wlon[active] -= elon
            wlat[active] -= elat
            active = active[np.maximum(np.abs(elon), np.abs(elat)) >= _TOL_DEG]  # NaN stops too
        return np.where(inside, wlon, lon).reshape(shape), np.where(inside, wlat, lat).reshape(shape)


# --------------------------------------------------------------------------- public transforms


def wgs84_to_gcj02(lon, lat):
    """WGS-84 -> GCJ-02 (AMap, Tencent, WeChat). Points outside China are unchanged."""
    return _forward(_gcj_raw, lon, lat)


def gcj02_to_wgs84(lon, lat):
    """GCJ-02 -> WGS-84, iterated to ~1e-10 deg (the classic one-step inverse is off by metres)."""
    return _inverse(_gcj_raw, _gcj_inverse_guess, lon, lat)


def gcj02_to_bd09(lon, lat):
    """GCJ-02 -> BD-09 (Baidu). Points outside China are unchanged."""
    return _forward(_bd_raw, lon, lat)


def bd09_to_gcj02(lon, lat):
    """BD-09 -> GCJ-02, iterated to ~1e-10 deg."""
    return _inverse(_bd_raw, _bd_inverse_guess, lon, lat)


def wgs84_to_bd09(lon, lat):
    """WGS-84 -> BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    """BD-09 -> WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> pyproj.Transformer:
    # pyproj >= 3.1 Transformers are thread-safe, so one cached instance can serve all threads.
    return pyproj.Transformer.from_crs(_pyproj_crs(src), _pyproj_crs(dst), always_xy=True)


def _pyproj_transform(src: str, dst: str, x, y):
    x, y = _xy(x, y)
    tx, ty = _transformer(src, dst).transform(np.ascontiguousarray(x), np.ascontiguousarray(y))
    return np.asarray(tx, dtype=np.float64).reshape(x.shape), np.asarray(ty, dtype=np.float64).reshape(y.shape)


def to_wgs84(x, y, crs: str):
    """Convert coordinates in ``crs`` (see normalize_crs) to WGS-84 (lon, lat).

    Projected CRSs take (easting, northing) in their own units.
    """
    c = normalize_crs(crs)
    if c == "wgs84":
        lon, lat = _xy(x, y)
        return lon.copy(), lat.copy()
    if c == "gcj02":
        return gcj02_to_wgs84(x, y)
    if c == "bd09":
        return bd09_to_wgs84(x, y)
    return _pyproj_transform(c, "wgs84", x, y)


def from_wgs84(lon, lat, crs: str):
    """Convert WGS-84 (lon, lat) to coordinates in ``crs``; inverse of to_wgs84."""
    c = normalize_crs(crs)
    if c == "wgs84":
        x, y = _xy(lon, lat)
        return x.copy(), y.copy()
    if c == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if c == "bd09":
        return wgs84_to_bd09(lon, lat)
    return _pyproj_transform("wgs84", c, lon, lat)
