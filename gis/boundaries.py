"""Read and validate zone / village boundary layers.

Any format GDAL reads through pyogrio (GeoJSON, GeoPackage, Shapefile,
GeoParquet, ...) in any CRS gis.crs can use (CGCS2000 EPSG:4490,
Gauss-Kruger EPSG:4547, ...). The result is always WGS-84 (EPSG:4326).

Invalid polygons are repaired (make_valid, keeping the polygonal part) and the
repair is reported; empty or non-polygonal features are rejected. Overlaps and
gaps between features larger than a tolerance are reported with area and
location, so nothing is silently accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.crs import normalize_crs, pyproj_crs
from gis.errors import ZonechiefError

METRIC = "EPSG:4547"  # CGCS2000 3-degree GK CM 114E: metres over Dongguan
ID_CANDIDATES = ("code", "village_code", "unit_id", "zone_id", "id")


class BoundaryError(ZonechiefError, ValueError):
    """The boundary layer cannot be used; the message says why and where."""

    def __init__(self, message: str, report: "ValidationReport | None" = None):
        super().__init__(message)
        self.report = report


@dataclass
class Issue:
    """One validation finding: an error, a repair, an overlap or a gap, with the features involved and, where known, area and place."""

    kind: str  # "error", "repaired", "overlap", "gap"
    message: str
    features: list[str] = field(default_factory=list)
    area_m2: float | None = None
    lon: float | None = None
    lat: float | None = None

    def __str__(self) -> str:
        where = f" at ({self.lon:.6f}, {self.lat:.6f})" if self.lon is not None else ""
        area = f", {self.area_m2:.1f} m²" if self.area_m2 is not None else ""
        return f"{self.kind}: {self.message}{area}{where}"


@dataclass
class ValidationReport:
    """What validating a boundary layer found: its source, feature count, source CRS and every issue."""

    source: str
    n_features: int = 0
    crs: str | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        """Issues of kind error: features or ids that cannot be used (repairs, overlaps and gaps are not among them)."""
        return [i for i in self.issues if i.kind == "error"]

    @property
    def problems(self) -> list[Issue]:
        """Errors plus overlaps and gaps above tolerance: what blocks loading."""
        return [i for i in self.issues if i.kind in ("error", "overlap", "gap")]

    @property
    def ok(self) -> bool:
        """True when nothing blocks loading; repairs alone do not."""
        return not self.problems

    def __str__(self) -> str:
        head = f"{self.source}: {self.n_features} features, CRS {self.crs}"
        if not self.issues:
            return head + ", valid"
        return "\n".join([head] + [f"  - {i}" for i in self.issues])


def id_column(gdf: pd.DataFrame, id_field: str | None = None) -> str:
    """The column holding feature ids: `id_field` when given, else the first of ID_CANDIDATES the layer has."""
    if id_field:
        if id_field not in gdf.columns:
            raise BoundaryError(f"id field {id_field!r} not found; columns are {list(gdf.columns)}")
        return id_field
    for c in ID_CANDIDATES:
        if c in gdf.columns:
            return c
    raise BoundaryError(f"no id column: expected one of {list(ID_CANDIDATES)} (or pass id_field); columns are {[c for c in gdf.columns if c != 'geometry']}")


def read_boundaries(path: str | Path, layer: str | None = None, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer into WGS-84. `crs` is required only when the file has none."""
    path = Path(path)
    if not path.exists():
        raise BoundaryError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # pyogrio/arrow raise many types; the user needs the file and the reason
        raise BoundaryError(f"{path}: cannot read as a vector layer ({exc})") from exc
    if gdf.crs is None:
        if crs is None:
            raise BoundaryError(f"{path}: the file has no CRS; pass its CRS (e.g. EPSG:4547 for CGCS2000 Gauss-Kruger CM 114E)")
        gdf = gdf.set_crs(pyproj_crs(crs))
    else:
        normalize_crs(gdf.crs)  # a declared CRS that cannot be used (the Moon, absurd parameters): UnknownCRSError
    gdf.attrs["source_crs"] = gdf.crs.to_string()
    return gdf.to_crs(4326)


def repair(gdf: gpd.GeoDataFrame, ids: pd.Series, report: ValidationReport) -> gpd.GeoDataFrame:
    """Make every geometry a valid (Multi)Polygon, or record an error."""
    geoms = gdf.geometry.values
    out: list[shapely.Geometry | None] = []
    for fid, g in zip(ids, geoms):
        if g is None or g.is_empty:
            report.issues.append(Issue("error", f"feature {fid} has an empty geometry", [fid]))
            out.append(None)
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            report.issues.append(Issue("error", f"feature {fid} is a {g.geom_type}, not a polygon", [fid]))
            out.append(None)
            continue
        if not g.is_valid:
            reason = shapely.is_valid_reason(g)
            fixed = shapely.make_valid(g)
            polys = [p for p in shapely.get_parts(fixed) if p.geom_type in ("Polygon", "MultiPolygon")]
            fixed = shapely.union_all(polys) if polys else None
            if fixed is None or fixed.is_empty:
                report.issues.append(Issue("error", f"feature {fid} is invalid ({reason}) and has no area once repaired", [fid]))
                out.append(None)
                continue
            p = fixed.representative_point()
            report.issues.append(Issue("repaired", f"feature {fid} was invalid ({reason}) and was repaired", [fid], lon=p.x, lat=p.y))
            g = fixed
        out.append(g)
    res = gdf.copy()
    res["geometry"] = gpd.GeoSeries(out, index=gdf.index, crs=gdf.crs)
    return res


def topology_issues(gdf: gpd.GeoDataFrame, ids: pd.Series, tolerance_m2: float) -> list[Issue]:
    """Overlaps between features and gaps (holes in their union) above tolerance."""
    issues: list[Issue] = []
    m = gdf.to_crs(METRIC).geometry.values
    tree = shapely.STRtree(m)
    left, right = tree.query(m, predicate="intersects")
    keep = left < right
    for i, j in zip(left[keep], right[keep]):
        inter = shapely.intersection(m[i], m[j])
        a = shapely.area(inter)
        if a > tolerance_m2:
            p = gpd.GeoSeries([inter.representative_point()], crs=METRIC).to_crs(4326).iloc[0]
            issues.append(Issue("overlap", f"features {ids.iloc[i]} and {ids.iloc[j]} overlap", [str(ids.iloc[i]), str(ids.iloc[j])], float(a), p.x, p.y))
    union = shapely.union_all(m)
    holes = [shapely.Polygon(r) for poly in shapely.get_parts(union) for r in poly.interiors]
    for h in holes:
        a = h.area
        if a > tolerance_m2:
            p = gpd.GeoSeries([h.representative_point()], crs=METRIC).to_crs(4326).iloc[0]
            near = [str(ids.iloc[k]) for k in tree.query(h, predicate="intersects")]
            issues.append(Issue("gap", "gap between features " + ", ".join(near), near, float(a), p.x, p.y))
    return issues


def validate(gdf: gpd.GeoDataFrame, id_field: str | None = None, tolerance_m2: float = 1.0,
             source: str = "<layer>") -> tuple[gpd.GeoDataFrame, ValidationReport]:
    """Repair what can be repaired and report the rest. Returns (clean layer, report)."""
    report = ValidationReport(source=source, n_features=len(gdf), crs=gdf.attrs.get("source_crs", str(gdf.crs)))
    if len(gdf) == 0:
        report.issues.append(Issue("error", "the layer has no features"))
        return gdf, report
    col = id_column(gdf, id_field)
    ids = gdf[col].astype(str)
    dup = ids[ids.duplicated()].unique()
    for d in dup:
        report.issues.append(Issue("error", f"id {d} is used by more than one feature", [d]))
    clean = repair(gdf, ids, report)
    usable = clean.geometry.notna().to_numpy()
    if usable.any():
        report.issues.extend(topology_issues(clean[usable], ids[usable], tolerance_m2))
    return clean, report


def load_and_validate(path, id_field: str | None = None, tolerance_m2: float = 1.0, layer: str | None = None,
                      crs: str | None = None) -> tuple[gpd.GeoDataFrame, ValidationReport]:
    """Read a boundary file (see read_boundaries) and validate it. Returns (clean layer, report)."""
    gdf = read_boundaries(path, layer=layer, crs=crs)
    return validate(gdf, id_field=id_field, tolerance_m2=tolerance_m2, source=str(path))


def area_km2(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Area of each feature in km², measured in METRIC (metres), not in degrees."""
    return gdf.to_crs(METRIC).area.to_numpy() / 1e6
