"""WGS-84 -> METRIC for the lookup paths: pyproj, and a fitted polynomial the compiled loops can call."""
from __future__ import annotations

import numpy as np

from gis import crs as _crs
from gis.boundaries import METRIC

DEGREE = 4  # of the fitted polynomial, as lookup_kernels.DEGREE (tests check they agree)


def to_metric(x, y):
    """WGS-84 -> METRIC through gis.crs's cached transformer (scalars or arrays)."""
    return _crs._transformer("wgs84", _crs.normalize_crs(METRIC)).transform(x, y)


def from_metric(x, y):
    """METRIC -> WGS-84, as to_metric."""
    return _crs._transformer(_crs.normalize_crs(METRIC), "wgs84").transform(x, y)


class LocalProjection:
    """WGS-84 -> METRIC as a degree-4 polynomial fitted over a lon/lat box.

    pyproj costs ~100 ns a point and cannot be called inside the compiled loop; the
    fit is checked against pyproj when built and used only if it is within 1 mm
    everywhere in the box (over the shipped towns plus 5 km: 1e-7 m). Outside the
    box, or if the check fails (boundaries far from the METRIC CRS's meridian),
    pyproj is used.
    """

    TOLERANCE_M = 1e-3

    def __init__(self, box):
        lon_min, lat_min, lon_max, lat_max = box
        self.lon0, self.lat0 = (lon_min + lon_max) / 2, (lat_min + lat_max) / 2
        d = DEGREE
        terms = [(i, j) for i in range(d + 1) for j in range(d + 1 - i)]

        def design(lon, lat):
            du, dv = lon - self.lon0, lat - self.lat0
            return np.column_stack([du ** i * dv ** j for i, j in terms])

        g = np.linspace(0.0, 1.0, 61)
        u, v = (a.ravel() for a in np.meshgrid(g, g))
        lon, lat = lon_min + u * (lon_max - lon_min), lat_min + v * (lat_max - lat_min)
        X, Y = to_metric(lon, lat)
        A = design(lon, lat)
        self.coef_x, self.coef_y = np.zeros((d + 1, d + 1)), np.zeros((d + 1, d + 1))
        for coef, target in ((self.coef_x, X), (self.coef_y, Y)):
            sol = np.linalg.lstsq(A, np.asarray(target), rcond=None)[0]
            for (i, j), c in zip(terms, sol):
                coef[i, j] = c
        rng = np.random.default_rng(0)
        lon = np.r_[rng.uniform(lon_min, lon_max, 20000), lon_min, lon_min, lon_max, lon_max]
        lat = np.r_[rng.uniform(lat_min, lat_max, 20000), lat_min, lat_max, lat_min, lat_max]
        X, Y = to_metric(lon, lat)
        mx, my = self._poly(self.coef_x, lon - self.lon0, lat - self.lat0), self._poly(self.coef_y, lon - self.lon0, lat - self.lat0)
        self.max_error_m = float(max(np.abs(mx - X).max(), np.abs(my - Y).max()))
        ok = np.isfinite(self.max_error_m) and self.max_error_m <= self.TOLERANCE_M
        self.box = (lon_min, lat_min, lon_max, lat_max) if ok else (np.inf, np.inf, -np.inf, -np.inf)
        self.params = np.array([self.lon0, self.lat0, *self.box], dtype="f8")
        self._cx, self._cy = self.coef_x.tolist(), self.coef_y.tolist()

    @classmethod
    def around(cls, x0: float, y0: float, x1: float, y1: float) -> "LocalProjection":
        """Fitted over the lon/lat box around a METRIC rectangle (its outline, projected back)."""
        t = np.linspace(0.0, 1.0, 201)
        mx = np.r_[x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)]
        my = np.r_[np.full_like(t, y0), y0 + t * (y1 - y0), np.full_like(t, y1), y1 - t * (y1 - y0)]
        lon, lat = from_metric(mx, my)
        return cls((float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))))

    def covers(self, x: float, y: float) -> bool:
        """Whether the fit is used at this lon/lat (an empty box when the fit was rejected)."""
        return self.box[0] <= x <= self.box[2] and self.box[1] <= y <= self.box[3]

    @staticmethod
    def _poly(c, du, dv):  # lookup_kernels._poly in plain Python (floats, or numpy arrays elementwise), same order
        acc = 0.0
        for i in range(DEGREE, -1, -1):
            inner = 0.0
            for j in range(DEGREE - i, -1, -1):
                inner = inner * dv + c[i][j]
            acc = acc * du + inner
        return acc

    def one(self, x: float, y: float) -> tuple[float, float]:
        """The polynomial for one point, in plain Python: the same bits as the compiled loop."""
        du, dv = x - self.lon0, y - self.lat0
        return self._poly(self._cx, du, dv), self._poly(self._cy, du, dv)

    def many(self, x, y):
        """Metric coordinates: the polynomial inside the box (as in the compiled loop), pyproj elsewhere."""
        from gis import lookup_kernels  # here, not at the top: single lookups never import numba

        x, y = np.ascontiguousarray(x, dtype="f8"), np.ascontiguousarray(y, dtype="f8")
        mx, my = np.empty(len(x)), np.empty(len(x))
        lookup_kernels.project(x, y, self.lon0, self.lat0, self.coef_x, self.coef_y, mx, my)
        off = np.flatnonzero(~((x >= self.box[0]) & (x <= self.box[2]) & (y >= self.box[1]) & (y <= self.box[3])))
        if len(off):
            mx[off], my[off] = to_metric(x[off], y[off])
        return mx, my
