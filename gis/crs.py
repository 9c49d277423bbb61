"""Coordinate reference systems used in China, vectorised with numpy.

Chinese web maps do not publish WGS-84 coordinates: AMap/Tencent/WeChat use the
obfuscated GCJ-02 ("Mars") datum and Baidu adds its own BD-09 offset on top of
that.  Official surveying data uses CGCS2000 (EPSG:4490) and its Gauss-Krüger
projections (e.g. EPSG:4547 for Dongguan).  This module converts between all of
these and WGS-84.

Whether a CRS can be used at all is decided once, in ``normalize_crs``: other
celestial bodies, vertical, geocentric and engineering CRSs, grid files, absurd
parameters and huge strings are refused with UnknownCRSError (the API's 400),
which lists what is supported.

Every transform accepts scalars, sequences or numpy arrays, broadcasts ``lon``
against ``lat`` and returns a ``(lon, lat)`` tuple of float64 arrays (0-d for
scalar input).  NaN passes through as NaN.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyproj
from pyproj.exceptions import CRSError

from gis.errors import ZonechiefError

__all__ = [
    "SUPPORTED",
    "UnknownCRSError",
    "normalize_crs",
    "pyproj_crs",
    "quoted",
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

SUPPORTED = ("wgs84 (GPS)", "gcj02 (AMap, Tencent, WeChat)", "bd09 (Baidu)", "cgcs2000 (EPSG:4490)",
             "any other geographic or projected CRS on the Earth that covers Dongguan, "
             "as an EPSG code (e.g. EPSG:4547, EPSG:32650), WKT or a PROJ string")
MAX_CRS_CHARS = 8192  # a WKT or PROJJSON definition is 1-3 KB; pyproj spends ~4 ms per KB of garbage
# Where a usable CRS must transform to and from WGS-84 and back: Dongguan, corners and middle.
_PROBE_LON, _PROBE_LAT = (a.ravel() for a in np.meshgrid(np.linspace(113.5, 114.3, 3), np.linspace(22.6, 23.2, 3)))
_ROUND_TRIP_DEG = 1e-7  # ~1 cm; pyproj's own round trips are ~1e-12
_MAX_COORD = 1e8  # no CRS unit puts Dongguan 1e8 units from its origin (1e8 m is 2.5 times round the Earth)
_EARTH_A_M = (6.35e6, 6.40e6)  # every Earth ellipsoid and sphere in use (Krasovsky 6,378,245 m, authalic 6,371,007 m)
_FILE_REFS = re.compile(r"(?i)\binit\s*=")  # PROJ opens the named file while parsing
_GRID_FILES = re.compile(r'PARAMETERFILE\["[^"]*","([^"]*)"')
_NO_FILE = ("@null", "null")  # PROJ's built-in empty grid, in old Web Mercator definitions
_USABLE: dict[str, str] = {}  # input text → canonical name, for inputs found usable (bounded)


class UnknownCRSError(ZonechiefError, ValueError):
    """A CRS that is neither a known alias nor a CRS pyproj can parse and this service can use.

    ``reason`` says why a parseable one cannot be used (None: it does not parse);
    ``supported`` lists what can be used, for the message and for clients.
    """

    def __init__(self, name: object, reason: str | None = None):
        what = f"unusable CRS {quoted(name)} ({reason})" if reason else f"unknown CRS {quoted(name)}"
        super().__init__(f"{what}; use {', '.join(SUPPORTED)}")
        self.name = name
        self.reason = reason
        self.supported = SUPPORTED


def quoted(name: object) -> str:
    """repr(name) for a message, cut short: a message must not echo kilobytes back."""
    text = name if isinstance(name, str) else str(name)
    return repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text)} characters)"


# --------------------------------------------------------------------------- CRS names


def normalize_crs(name: str | pyproj.CRS) -> str:
    """Return the canonical name of a usable CRS.

    ``"wgs84"``, ``"gcj02"`` and ``"bd09"`` for the three lon/lat systems (any
    common alias, case-insensitive); otherwise ``"EPSG:nnnn"`` when pyproj can
    identify an EPSG code, else pyproj's ``to_string()``. A pyproj CRS (a file's)
    is judged the same way.

    Usable means: at most MAX_CRS_CHARS, parsed by pyproj, a geographic or
    projected CRS (or one with such a horizontal part) on the Earth, naming no
    grid or init files, and transforming to and from WGS-84 with finite values
    that come back around Dongguan. Decided once per input (cached).

    Raises UnknownCRSError for anything else: empty, unparseable or unusable input.
    """
    if type(name) is str:  # every lookup passes here, several times: a name seen before costs one dict lookup
        seen = _USABLE.get(name)
        if seen is not None:
            return seen
    if name is None or isinstance(name, bool):
        raise UnknownCRSError(name)
    if isinstance(name, pyproj.CRS):
        code = name.to_epsg()
        text = f"EPSG:{code}" if code else name.to_wkt()
    else:
        text = str(name).strip()
    if not text:
        raise UnknownCRSError(name)
    if len(text) > MAX_CRS_CHARS:
        raise UnknownCRSError(name, f"too long: {len(text)} characters, at most {MAX_CRS_CHARS}")
    normalized, reason = _verdict(text)
    if normalized is None:
        raise UnknownCRSError(name, reason)
    if type(name) is str and len(_USABLE) < 1024:
        _USABLE[name] = normalized
    return normalized


@lru_cache(maxsize=512)
def _verdict(text: str) -> tuple[str | None, str | None]:
    """(canonical name, None) for a usable CRS; (None, why not) otherwise, why None if it does not parse.

    Cached, refusals too: a client repeating a hostile CRS costs a dict lookup.
    """
    alias = _ALIASES.get(text.lower())
    if alias:
        return alias, None
    if _FILE_REFS.search(text):
        return None, "it refers to files, which this service does not read"
    try:
        crs = pyproj.CRS.from_user_input(text)
        code = crs.to_epsg()
    except (CRSError, TypeError, ValueError, RuntimeError):  # RuntimeError: pyproj's ProjError
        return None, None
    if code == 4326:
        return "wgs84", None  # so that "urn:ogc:def:crs:EPSG::4326" etc. take the fast path
    normalized = f"EPSG:{code}" if code else crs.to_string()
    try:
        reason = _unusable(crs) or _unusable(_pyproj_crs(normalized)) or _probe(normalized)
    except (CRSError, TypeError, ValueError, RuntimeError) as exc:
        reason = f"pyproj cannot use it: {str(exc)[:120]}"
    return (None, reason) if reason else (normalized, None)


def _horizontal(crs: pyproj.CRS) -> pyproj.CRS | None:
    """The part of `crs` that places a point: itself, a bound CRS's source, a compound's non-vertical part."""
    h: pyproj.CRS | None = crs.source_crs if crs.is_bound else crs
    if h is not None and h.is_compound:  # e.g. WGS 84 + EGM2008 height
        h = next((s for s in h.sub_crs_list if not s.is_vertical), None)
        if h is not None and h.is_bound:
            h = h.source_crs
    return h


def _unusable(crs: pyproj.CRS) -> str | None:
    """Why `crs`, by its kind alone, cannot place a point in Dongguan; None if it may."""
    h = _horizontal(crs)
    if h is None:
        return "a compound CRS without a horizontal part"
    if h.is_geocentric:
        return "a geocentric CRS: give longitude and latitude, or x and y in a projected CRS"
    if not (h.is_geographic or h.is_projected):
        kind = h.type_name[0].lower() + h.type_name[1:]  # "vertical CRS"
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} gives no position on the Earth's surface"
    a = h.ellipsoid.semi_major_metre if h.ellipsoid is not None else None
    if a is None or not _EARTH_A_M[0] <= a <= _EARTH_A_M[1]:
        return f"not on the Earth: its ellipsoid's semi-major axis is {a or 0:,.0f} m, the Earth's 6,378 km"
    grids = [f for f in _GRID_FILES.findall(crs.to_wkt() or "") if f not in _NO_FILE]
    if grids:
        return "it refers to grid files, which this service does not read"
    return None


def _probe(normalized: str) -> str | None:
    """Why WGS-84 ↔ `normalized` fails around Dongguan; None if every probe point comes back."""
    try:
        _transformer("wgs84", normalized)
        _transformer(normalized, "wgs84")
    except (CRSError, RuntimeError):
        return "it cannot be transformed to WGS-84"
    with np.errstate(all="ignore"):
        x, y = _pyproj_transform("wgs84", normalized, _PROBE_LON, _PROBE_LAT)
        lon, lat = _pyproj_transform(normalized, "wgs84", x, y)
        ok = (np.isfinite(x) & np.isfinite(y) & (np.abs(x) < _MAX_COORD) & (np.abs(y) < _MAX_COORD)
              & (np.abs(lon - _PROBE_LON) < _ROUND_TRIP_DEG) & (np.abs(lat - _PROBE_LAT) < _ROUND_TRIP_DEG))
    return None if ok.all() else "its coordinates around Dongguan do not convert to WGS-84 and back"


@lru_cache(maxsize=64)
def _pyproj_crs(normalized: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input("EPSG:4326" if normalized == "wgs84" else normalized)


def pyproj_crs(crs: str | pyproj.CRS) -> pyproj.CRS:
    """The pyproj CRS of a usable CRS, for layers read with geopandas; GCJ-02 and BD-09 have none.

    Raises UnknownCRSError as normalize_crs does, and for the two offset datums.
    """
    c = normalize_crs(crs)
    if c in ("gcj02", "bd09"):
        raise UnknownCRSError(crs, f"{c} is an offset applied to single points, not a CRS a file can declare; "
                                   "convert the file to WGS-84 first")
    return _pyproj_crs(c)


def is_geographic(crs: str) -> bool:
    """True if coordinates in ``crs`` are longitude/latitude degrees."""
    c = normalize_crs(crs)
    return c in _OFFSET_CRS or _geographic(c)


@lru_cache(maxsize=256)
def _geographic(normalized: str) -> bool:
    return _pyproj_crs(normalized).is_geographic  # pyproj asks PROJ each time (~2 µs)


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
