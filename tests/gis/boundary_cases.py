"""Synthetic boundary sets for the diff tests and benchmark: a whole "city" of villages tessellating the shipped
towns' bounding box, and redrawings of it (edges moved, villages merged, split, renamed, dropped, re-zoned).

The city is built from shared edges: every edge between two cells is one wiggly polyline used by both, so the
cells are an exact partition (no gaps, no overlaps) and moving an edge moves area between exactly two villages.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.boundaries import METRIC
from gis.shipped import DATA_DIR

COLUMNS = ["unit_id", "zone_id", "village_code", "village_name", "village_short_name", "town", "town_code", "zone_name"]


def towns_bbox_metric() -> tuple[float, float, float, float]:
    """The shipped towns' bounding box in METRIC."""
    return tuple(gpd.read_file(DATA_DIR / "towns.geojson").to_crs(METRIC).total_bounds)  # type: ignore[return-value]


@dataclass
class City:
    """A grid of rows x cols cells with jittered nodes and wiggly shared edges, in METRIC."""

    rows: int
    cols: int
    nodes: np.ndarray  # (rows+1, cols+1, 2)
    wiggle: dict = field(default_factory=dict)  # edge key -> perpendicular offsets of its interior points (metres)
    vertices_per_edge: int = 8
    zone_block: tuple[int, int] = (2, 5)

    @classmethod
    def make(cls, rows: int = 24, cols: int = 25, seed: int = 0, bbox=None, vertices_per_edge: int = 8,
             zone_block: tuple[int, int] = (2, 5)) -> "City":
        """A city over `bbox` (METRIC; default: the shipped towns' box)."""
        rng = np.random.default_rng(seed)
        x0, y0, x1, y1 = bbox or towns_bbox_metric()
        xs, ys = np.linspace(x0, x1, cols + 1), np.linspace(y0, y1, rows + 1)
        dx, dy = (x1 - x0) / cols, (y1 - y0) / rows
        nodes = np.stack(np.meshgrid(xs, ys), axis=-1)
        jitter = rng.uniform(-0.2, 0.2, nodes.shape) * [dx, dy]
        jitter[0, :, 1] = jitter[-1, :, 1] = 0  # the outline stays a rectangle
        jitter[:, 0, 0] = jitter[:, -1, 0] = 0
        nodes = nodes + jitter
        city = cls(rows, cols, nodes, vertices_per_edge=vertices_per_edge, zone_block=zone_block)
        for key in city.edges():
            city.wiggle[key] = city.random_wiggle(rng, key)
        return city

    def cell_size(self) -> float:
        """The smaller of a cell's nominal width and height."""
        return float(min(np.ptp(self.nodes[..., 0]) / self.cols, np.ptp(self.nodes[..., 1]) / self.rows))

    def edges(self):
        """Keys of all edges: ("h", r, c) from node (r, c) to (r, c+1); ("v", r, c) from (r, c) to (r+1, c)."""
        for r in range(self.rows + 1):
            for c in range(self.cols):
                yield ("h", r, c)
        for r in range(self.rows):
            for c in range(self.cols + 1):
                yield ("v", r, c)

    def interior(self, key) -> bool:
        """Whether the edge lies between two cells (not on the outline)."""
        kind, r, c = key
        return 0 < r < self.rows if kind == "h" else 0 < c < self.cols

    def random_wiggle(self, rng, key, amplitude: float = 0.08) -> np.ndarray:
        """Offsets for an edge's interior points: zero on the outline, at most `amplitude` of a cell elsewhere."""
        if not self.interior(key):
            return np.zeros(self.vertices_per_edge)
        return rng.uniform(-amplitude, amplitude, self.vertices_per_edge) * self.cell_size()

    def edge_line(self, key) -> np.ndarray:
        """The edge's vertices, node to node; interior points pushed sideways, tapering to zero at the nodes."""
        kind, r, c = key
        a = self.nodes[r, c]
        b = self.nodes[r, c + 1] if kind == "h" else self.nodes[r + 1, c]
        t = np.linspace(0, 1, self.vertices_per_edge + 2)[1:-1]
        d = b - a
        normal = np.array([-d[1], d[0]]) / np.hypot(*d)
        mid = a + t[:, None] * d + (self.wiggle[key] * np.sin(np.pi * t))[:, None] * normal
        return np.vstack([a, mid, b])

    def cell(self, r: int, c: int) -> shapely.Polygon:
        """Cell (r, c) from its four shared edges, counter-clockwise."""
        ring = np.vstack([self.edge_line(("h", r, c))[:-1], self.edge_line(("v", r, c + 1))[:-1],
                          self.edge_line(("h", r + 1, c))[::-1][:-1], self.edge_line(("v", r, c))[::-1][:-1]])
        return shapely.Polygon(ring)

    def units(self, crs=4326) -> gpd.GeoDataFrame:
        """The villages in the ZoneIndex.units layout (WGS-84 unless `crs`); zones are blocks of zone_block cells."""
        rows = []
        zr, zc = self.zone_block
        for r in range(self.rows):
            for c in range(self.cols):
                k = r * self.cols + c
                code = f"4419001{r:02d}{c:03d}"
                zone = f"Z-{r // zr:02d}{c // zc:02d}"
                rows.append({"unit_id": code, "zone_id": zone, "village_code": code, "village_name": f"第{k}村村民委员会",
                             "village_short_name": f"第{k}村", "town": "示例镇", "town_code": "441900199",
                             "zone_name": f"{zone}片区", "geometry": self.cell(r, c)})
        return gpd.GeoDataFrame(rows, columns=COLUMNS + ["geometry"], geometry="geometry", crs=METRIC).to_crs(crs)


def _by_code(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return units.set_index("unit_id", drop=False)


def merge(units: gpd.GeoDataFrame, keep: str, absorbed: list[str]) -> gpd.GeoDataFrame:
    """`absorbed` villages joined into `keep` (which keeps its code, name and zone); in the frame's own CRS."""
    m = _by_code(units)
    m.loc[keep, "geometry"] = shapely.union_all(m.loc[[keep, *absorbed]].geometry.values)
    return m.drop(index=absorbed).reset_index(drop=True)


def split(units: gpd.GeoDataFrame, code: str, new_code: str, fraction: float = 0.5, vertical: bool = True,
          name: str | None = None) -> gpd.GeoDataFrame:
    """Cut a village by a straight line at `fraction` of its box; the far part becomes `new_code` (same zone)."""
    m = _by_code(units)
    g = m.loc[code, "geometry"]
    x0, y0, x1, y1 = g.bounds
    pad = max(x1 - x0, y1 - y0)
    if vertical:
        half = shapely.box(x0 - pad, y0 - pad, x0 + fraction * (x1 - x0), y1 + pad)
    else:
        half = shapely.box(x0 - pad, y0 - pad, x1 + pad, y0 + fraction * (y1 - y0))
    row = m.loc[[code]].copy()
    m.loc[code, "geometry"] = shapely.intersection(g, half)
    row["unit_id"] = row["village_code"] = new_code
    row["village_name"] = name or f"{row['village_name'].iloc[0]}（分）"
    row["geometry"] = [shapely.difference(g, half)]
    return gpd.GeoDataFrame(pd.concat([m, row]), geometry="geometry", crs=units.crs).reset_index(drop=True)


def redraw(city: City, seed: int, *, edges: int = 30, merges: int = 10, splits: int = 10, renames: int = 10,
           rezoned: int = 10, drops: int = 0) -> gpd.GeoDataFrame:
    """A plausible new version of the city: some edges redrawn, villages merged, split, renamed, moved
    to another zone and dropped; returns the new units (WGS-84)."""
    rng = np.random.default_rng(seed)
    keys = [k for k in city.edges() if city.interior(k)]
    moved = City(city.rows, city.cols, city.nodes, dict(city.wiggle), city.vertices_per_edge, city.zone_block)
    for n in rng.choice(len(keys), size=min(edges, len(keys)), replace=False):
        moved.wiggle[keys[n]] = moved.random_wiggle(rng, keys[n], amplitude=0.15)
    units = moved.units(crs=METRIC)  # one projection at the end: untouched villages stay bit-identical
    cells = rng.permutation(city.rows * (city.cols - 1))
    used: set[str] = set()
    code = lambda r, c: f"4419001{r:02d}{c:03d}"  # noqa: E731
    for n in cells[:merges]:
        r, c = divmod(int(n), city.cols - 1)
        a, b = code(r, c), code(r, c + 1)
        if {a, b} & used:
            continue
        used |= {a, b}
        units = merge(units, a, [b])
    left = [k for k in units.unit_id if k not in used]
    for k in rng.choice(left, size=splits, replace=False):
        used.add(k)
        units = split(units, k, k[:-3] + f"{900 + len(used) % 100:03d}", fraction=float(rng.uniform(0.3, 0.7)),
                      vertical=bool(rng.integers(2)))
    idx = rng.choice(len(units), size=renames + rezoned + drops, replace=False)
    units = units.copy()
    for n in idx[:renames]:
        units.loc[units.index[n], "village_name"] = units.loc[units.index[n], "village_name"] + "（更名）"
    zones = sorted(set(units.zone_id))
    for n in idx[renames:]:
        z = zones[int(rng.integers(len(zones)))]
        units.loc[units.index[n], ["zone_id", "zone_name"]] = [z, f"{z}片区"]
    units = units.drop(index=units.index[idx[renames + rezoned:]])
    return units.reset_index(drop=True).to_crs(4326)
