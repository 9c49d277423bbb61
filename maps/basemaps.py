"""Base maps, and the datum every overlay is drawn in to line up with them.

- none: no tiles at all (isolated intranets); overlays in WGS-84.
- osm: OpenStreetMap tiles, WGS-84.
- tianditu: 天地图 vector tiles + Chinese labels; CGCS2000, which is WGS-84 to
  well under a metre, so overlays stay WGS-84. Needs a key (ZONECHIEF_TIANDITU_KEY).
- amap: 高德 tiles, drawn in GCJ-02 (~600 m off in Dongguan), so every overlay
  coordinate is shifted to GCJ-02 before it goes into the page.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gis.crs import wgs84_to_gcj02
from gis.errors import ZonechiefError

BASEMAPS = ("none", "osm", "tianditu", "amap")


class BasemapError(ZonechiefError, ValueError):
    """An unknown base map, or one that is not configured (e.g. Tianditu without a key)."""


@dataclass(frozen=True)
class Tiles:
    """One tile layer of a base map: URL template, attribution, subdomains, maximum zoom and layer name."""

    url: str
    attribution: str
    subdomains: str = "abc"
    max_zoom: int = 18
    name: str = ""


def tile_layers(basemap: str, tianditu_key: str | None = None) -> list[Tiles]:
    """The tile layers of a base map, drawn in order (none for "none"); Tianditu needs `tianditu_key`."""
    if basemap == "none":
        return []
    if basemap == "osm":
        return [Tiles("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                      '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
                      subdomains="abc", max_zoom=19, name="OpenStreetMap")]
    if basemap == "tianditu":
        if not tianditu_key:
            raise BasemapError("the tianditu base map needs a key: set ZONECHIEF_TIANDITU_KEY")
        wmts = ("https://t{s}.tianditu.gov.cn/%s_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=%s"
                "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tianditu_key)
        attribution = "&copy; 天地图 Tianditu"
        return [Tiles(wmts % ("vec", "vec"), attribution, "01234567", 18, "天地图 Tianditu"),
                Tiles(wmts % ("cva", "cva"), attribution, "01234567", 18, "天地图注记 Tianditu labels")]
    if basemap == "amap":
        return [Tiles("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
                      "&copy; 高德地图 AutoNavi", subdomains="1234", max_zoom=18, name="高德地图 Amap")]
    raise BasemapError(f"unknown base map {basemap!r}; use one of {', '.join(BASEMAPS)}")


class Projector:
    """WGS-84 → the datum of the chosen base map (GCJ-02 for Amap, unchanged otherwise)."""

    def __init__(self, basemap: str):
        if basemap not in BASEMAPS:
            raise BasemapError(f"unknown base map {basemap!r}; use one of {', '.join(BASEMAPS)}")
        self.basemap = basemap
        self.shifts = basemap == "amap"

    def xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat arrays in the base map's datum (GCJ-02 for Amap, unchanged otherwise)."""
        lon = np.asarray(lon, dtype="f8")
        lat = np.asarray(lat, dtype="f8")
        if not self.shifts:
            return lon, lat
        return wgs84_to_gcj02(lon, lat)

    def geoms(self, geoms) -> np.ndarray:
        """Shapely geometries (array-like), shifted; vertices rounded to 1e-6° (~0.1 m) to keep pages small."""
        def move(coords):
            x, y = self.xy(coords[:, 0], coords[:, 1])
            return np.round(np.column_stack([x, y]), 6)

        return shapely.transform(np.asarray(geoms, dtype=object), move)

    def bounds(self, bounds) -> list[list[float]]:
        """(minx, miny, maxx, maxy) in WGS-84 → Leaflet [[south, west], [north, east]] in the map datum."""
        x, y = self.xy([bounds[0], bounds[2]], [bounds[1], bounds[3]])
        return [[float(y[0]), float(x[0])], [float(y[1]), float(x[1])]]


def tile_origins(basemap: str, tianditu_key: str | None = None) -> list[str]:
    """The origins (scheme://host) the chosen tiles load from, e.g. for a Content-Security-Policy."""
    out = []
    for t in tile_layers(basemap, tianditu_key):
        for s in (t.subdomains if "{s}" in t.url else "_"):
            host = t.url.replace("{s}", s).split("/")[2]
            origin = "https://" + host
            if origin not in out:
                out.append(origin)
    return out
