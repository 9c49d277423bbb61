"""GPS tracks as arrays: reading GPX, splitting at gaps, and the checks a track must pass (issue 17).

Pure helpers for zonechief.patrols: times are int64 microseconds since 1970 (UTC), positions
WGS-84 degrees; metric distances are in EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E,
the project's metric CRS for Dongguan).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from gis.crs import from_wgs84
from gis.errors import ZonechiefError
from gis.localtime import as_local

METRIC = "EPSG:4547"
GAP_S = 30 * 60  # a new patrol after a gap longer than this
MAX_SPEED_KMH = 150.0
MAX_OUTSIDE_SHARE = 0.10  # above this share of fixes outside both towns, the track is rejected


class TrackFileError(ZonechiefError, ValueError):
    """A whole file that cannot be read (not XML, no track, a CSV without the needed columns)."""


@dataclass
class RawTrack:
    """One source track as read: a person's fixes in file order (a GPX <trk>, or a CSV person's rows)."""

    person_id: str | None
    label: str  # where it came from, for reports: "file.gpx trk 2", "file.csv QS-I01"
    t_us: np.ndarray  # int64 µs since 1970 UTC
    x: np.ndarray  # in the input's CRS
    y: np.ndarray
    ordered: bool = True  # the file's order means something (GPX): times going backwards are an error
    problems: list[str] = field(default_factory=list)


def read_gpx(data: bytes, name: str, person: str | None = None) -> list[RawTrack]:
    """The tracks (<trk>, its segments joined) and routes of a GPX file; the person is `person` or the track's
    name (else the file's). Raises TrackFileError if it is not GPX (not XML, or XML of another kind)."""
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
    except (gpxpy.gpx.GPXXMLSyntaxException, gpxpy.gpx.GPXException, UnicodeDecodeError, ValueError) as exc:
        raise TrackFileError(f"{name}: not a GPX file (not well-formed XML): {str(exc).splitlines()[0][:200]}") from None
    out = []
    for k, trk in enumerate(gpx.tracks, start=1):
        pts = [p for seg in trk.segments for p in seg.points]
        who = person or trk.name or gpx.name
        problems = [] if who else ["no person: give --person or a <name> on the track"]
        missing = sum(p.time is None for p in pts)
        if missing:
            problems.append(f"{missing} of {len(pts)} fixes have no time")
        t = np.array([_us(p.time) if p.time else 0 for p in pts], np.int64)
        out.append(RawTrack(str(who).strip() if who else None, f"{name} trk {k}" + (f" ({trk.name})" if trk.name else ""),
                            t, np.array([p.longitude for p in pts], float), np.array([p.latitude for p in pts], float),
                            True, problems))
    if not out and not gpx.routes and not gpx.waypoints:
        raise TrackFileError(f"{name}: a GPX file with no track")
    return out


def _us(t: datetime) -> int:
    """µs since 1970 of a GPX time; one without an offset is Asia/Shanghai wall time (gis.localtime)."""
    return round(as_local(t).timestamp() * 1_000_000)


def split_at_gaps(t_us: np.ndarray, gap_s: float = GAP_S) -> list[slice]:
    """Runs of time-sorted fixes with no gap longer than `gap_s` between neighbours."""
    if len(t_us) == 0:
        return []
    cut = np.flatnonzero(np.diff(t_us) > gap_s * 1_000_000) + 1
    edges = np.r_[0, cut, len(t_us)]
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def backwards_at(t_us: np.ndarray) -> int | None:
    """The first index whose time is before its predecessor's, or None."""
    bad = np.flatnonzero(np.diff(t_us) < 0)
    return int(bad[0]) + 1 if len(bad) else None


def metric_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 degrees to EPSG:4547 metres."""
    return from_wgs84(lon, lat, METRIC)


def path_length_m(mx: np.ndarray, my: np.ndarray) -> float:
    """Length of the polyline through the metric points."""
    return float(np.hypot(np.diff(mx), np.diff(my)).sum()) if len(mx) > 1 else 0.0


def fastest_jump(t_us: np.ndarray, mx: np.ndarray, my: np.ndarray) -> tuple[int, float, float] | None:
    """(index, metres, km/h) of the fastest step between neighbouring fixes faster than MAX_SPEED_KMH, or None.

    Fixes at the same time count as infinitely fast if they are more than 1 m apart."""
    if len(t_us) < 2:
        return None
    d = np.hypot(np.diff(mx), np.diff(my))
    dt = np.diff(t_us) / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        kmh = np.where(dt > 0, d / dt * 3.6, np.where(d > 1.0, np.inf, 0.0))
    k = int(np.argmax(kmh))
    return (k + 1, float(d[k]), float(kmh[k])) if kmh[k] > MAX_SPEED_KMH else None
