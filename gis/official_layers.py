"""Read official village layers as cities deliver them: formats, encodings and CRSs; check they cover the old towns.

An official layer (a 第三次全国国土调查 export, a 行政区 layer) arrives as a Shapefile whose .dbf is in
GBK with or without a .cpg, a GeoPackage, GeoJSON, FileGDB or GeoParquet; in CGCS2000 (EPSG:4490, or
Gauss-Krüger metres such as EPSG:4547), WGS-84 or AMap's GCJ-02. read_layer gives it in WGS-84;
gis.official_fields (re-exported here) maps its 三调 columns to the project's (code, name, short_name,
town, town_code, zone_id, zone_name) and lists what stops an import; prepare_official does it all in
one call. Guessing is never silent: what was guessed, detected or cut is said in `mapping.confidence`
and the notes. Overlaps, gaps and invalid rings are checked by gis.boundaries.validate, as for any layer.
"""
from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.boundaries import METRIC
from gis.crs import bd09_to_wgs84, gcj02_to_wgs84, normalize_crs, pyproj_crs
from gis.official_fields import (
    CODE_RE,
    FieldMapping,
    LayerProblem,
    OfficialLayerError,
    apply_mapping,
    check_codes,
    describe_mapping,
    format_problems,
    guess_mapping,
    normalize_code,
    read_zone_map,
    zone_for_codes,
)

__all__ = [
    "CODE_RE", "FieldMapping", "LayerProblem", "OfficialLayer", "OfficialLayerError", "apply_mapping",
    "check_codes", "coverage_gaps", "describe_mapping", "format_problems", "guess_mapping", "normalize_code",
    "prepare_official", "read_layer", "read_zone_map", "shift_vertices", "zone_for_codes",
]
GBK_CODEPAGES = {"936", "CP936", "GBK", "GB2312", "GB18030", "ANSI 936", "WINDOWS-936", "MS936", "EUC-CN", "CP54936"}


# ---------------------------------------------------------------------------------------------- reading


def read_layer(path: str | Path, *, layer: str | None = None, crs: str | None = None,
               encoding: str | None = None) -> gpd.GeoDataFrame:
    """Read an official layer into WGS-84 (EPSG:4326), 2-D.

    GeoPackage, Shapefile (also zipped), GeoJSON, FileGDB (a ``.gdb`` folder, where GDAL has OpenFileGDB) and
    GeoParquet. A Shapefile's .dbf encoding is `encoding`, else its .cpg (936/GBK/GB2312 read as
    GB18030), else UTF-8 if every byte decodes strictly, else GB18030. `crs` is used when the file
    declares none; ``gcj02`` / ``bd09`` also apply to a file declaring WGS-84 or CGCS2000 lon/lat
    (GeoJSON always does), converting every vertex exactly (gis.crs). A file without a CRS is
    refused with a hint (Gauss-Krüger zone, lon/lat) rather than guessed.
    ``attrs``: ``source_crs`` (what the layer was read as) and ``notes`` (what was detected).
    """
    path = Path(path)
    if not path.exists():
        raise OfficialLayerError(f"{path}: no such file")
    notes: list[str] = []
    kind = _kind(path)
    if kind == "FileGDB" and "OpenFileGDB" not in pyogrio.list_drivers():
        raise OfficialLayerError(f"{path}: this GDAL ({pyogrio.__gdal_version_string__}) cannot read FileGDB; "
                                 "export the layer as GeoPackage or Shapefile")
    try:
        if kind == "GeoParquet":
            gdf = gpd.read_parquet(path)
        else:
            source: str | Path = path
            if kind == "Shapefile":
                member, cpg, dbf = _shapefile_parts(path, layer)
                if member is not None:  # in a zip, perhaps in a folder: GDAL finds it only when named
                    source, layer = f"/vsizip/{path.resolve()}/{member}", None
                if encoding is None:
                    encoding = _shapefile_encoding(member or path.name, cpg, dbf, notes)
            layer = layer if layer is not None else _only_polygon_layer(source)
            gdf = gpd.read_file(source, layer=layer, engine="pyogrio", encoding=encoding)
    except OfficialLayerError:
        raise
    except Exception as exc:  # pyogrio/arrow raise many types; the admin needs the file and the reason
        raise OfficialLayerError(f"{path}: cannot read as a vector layer ({exc})") from exc
    if len(gdf) and gdf.geometry.has_z.any():
        gdf["geometry"] = shapely.force_2d(gdf.geometry.values)
    gdf = _to_wgs84(gdf, crs, path, notes)
    gdf.attrs["notes"] = notes
    return gdf


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        return "GeoParquet"
    if suffix == ".gdb" or (path.is_dir() and any(path.glob("*.gdbtable"))):
        return "FileGDB"
    if suffix in (".shp", ".dbf"):
        return "Shapefile"
    if suffix == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(n.lower().endswith(".shp") for n in z.namelist()):
                return "Shapefile"
    return "GDAL"  # GeoPackage, GeoJSON, and whatever else GDAL reads


def _only_polygon_layer(path: str | Path) -> str | None:
    """The layer to read from a file with several: the only polygon one, or a refusal naming them all."""
    try:
        layers = pyogrio.list_layers(path)
    except Exception:  # let read_file give GDAL's own message
        return None
    if len(layers) <= 1:
        return None
    polygons = [str(n) for n, g in layers if g and "polygon" in str(g).lower()]
    if len(polygons) == 1:
        return polygons[0]
    listed = ", ".join(f"{n} ({g})" for n, g in layers)
    hint = "; in a 三调 database CJDCQ (村级调查区) is the village layer" if any(
        str(n).upper() == "CJDCQ" for n, _ in layers) else ""
    raise OfficialLayerError(f"{path} has {len(layers)} layers: {listed}; say which one (layer=... / --layer){hint}")


def _sibling(path: Path, suffix: str) -> Path | None:
    for cand in path.parent.glob(path.stem + ".*"):
        if cand.suffix.lower() == suffix and cand.stem == path.stem:
            return cand
    return None


def _shapefile_parts(path: Path, layer: str | None) -> tuple[str | None, bytes | None, bytes | None]:
    """(member, .cpg bytes, .dbf bytes) of a Shapefile, or of the one (or `layer`) in a .zip; None: absent.

    `member` is the .shp's path inside the zip (None for a plain Shapefile).
    """
    if path.suffix.lower() != ".zip":
        cpg_file, dbf_file = _sibling(path, ".cpg"), _sibling(path, ".dbf")
        return None, cpg_file.read_bytes() if cpg_file else None, dbf_file.read_bytes() if dbf_file else None
    with zipfile.ZipFile(path) as z:
        members = {n.lower(): n for n in z.namelist()}
        shps = [n for n in z.namelist() if n.lower().endswith(".shp")]
        pick = next((n for n in shps if Path(n).stem == layer), shps[0] if shps else None)
        if pick is None:
            return None, None, None
        parts = [members.get((pick[:-4] + ext).lower()) for ext in (".cpg", ".dbf")]
        cpg, dbf = (z.read(n) if n else None for n in parts)
        return pick, cpg, dbf


def _shapefile_encoding(name: str, cpg: bytes | None, dbf: bytes | None, notes: list[str]) -> str | None:
    """The encoding to read a Shapefile's .dbf with (None: what GDAL decides from its .cpg)."""
    if cpg is not None:
        declared = cpg.decode("ascii", "replace").strip().upper()
        if declared in GBK_CODEPAGES:
            notes.append(f"{name}: its .cpg says {declared}: read as GB18030 (a superset of GBK and GB2312)")
            return "GB18030"
        return None
    if dbf is None:
        return None
    try:
        _dbf_text_bytes(dbf).decode("utf-8", "strict")
    except UnicodeDecodeError:
        notes.append(f"{name} has no .cpg and its .dbf is not UTF-8: read as GB18030 (GBK)")
        return "GB18030"
    notes.append(f"{name} has no .cpg; its .dbf decodes as UTF-8")
    return "UTF-8"


def _dbf_text_bytes(data: bytes) -> bytes:
    """The bytes of a .dbf that hold text: field names and records (not the binary header numbers)."""
    if len(data) < 32:
        return b""
    n_records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    descriptors = data[32:header_len]
    names = b"".join(descriptors[i:i + 11].split(b"\0")[0] for i in range(0, len(descriptors) - 31, 32))
    return names + data[header_len:header_len + n_records * record_len]


def _to_wgs84(gdf: gpd.GeoDataFrame, crs: str | None, path: Path, notes: list[str]) -> gpd.GeoDataFrame:
    given = normalize_crs(crs) if crs is not None else None
    offset = given if given in ("gcj02", "bd09") else None
    if gdf.crs is None:
        if given is None:
            raise OfficialLayerError(f"{path}: the file has no CRS (no .prj?); {_crs_hint(gdf)}")
        gdf = gdf.set_crs(4326 if offset else pyproj_crs(given))
        source = given
    else:
        source = normalize_crs(gdf.crs)  # a declared CRS that cannot be used: UnknownCRSError
        if offset and not gdf.crs.is_geographic:
            raise OfficialLayerError(f"{path}: crs={crs!r} is an offset of longitude/latitude, but the file "
                                     f"declares the projected {source}")
        if given is not None and not offset and given != source:
            raise OfficialLayerError(f"{path}: the file declares {source}, not {given}; remove its CRS (.prj) "
                                     "if it is wrong, or do not pass one")
        source = offset or source
    out = gdf.to_crs(4326)
    if offset:
        back = gcj02_to_wgs84 if offset == "gcj02" else bd09_to_wgs84
        out["geometry"] = shift_vertices(out.geometry.values, back)
        notes.append(f"every vertex converted from {offset} to WGS-84")
    _check_in_china(out, source, path, gdf)
    out.attrs["source_crs"] = source
    return out


def shift_vertices(geoms, transform) -> np.ndarray:
    """Geometries with every vertex moved by `transform(lon, lat) -> (lon, lat)` (e.g. gcj02_to_wgs84)."""
    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), move)


def _check_in_china(out: gpd.GeoDataFrame, source: str, path: Path, raw: gpd.GeoDataFrame) -> None:
    geoms = out.geometry.dropna()
    geoms = geoms[~geoms.is_empty]
    if not len(geoms):
        return
    minx, miny, maxx, maxy = geoms.total_bounds
    if np.isfinite([minx, miny, maxx, maxy]).all() and minx >= 72 and maxx <= 138 and miny >= 0.8 and maxy <= 56:
        return
    raise OfficialLayerError(f"{path}: read as {source}, the layer lies at longitude {minx:.2f}..{maxx:.2f}, "
                             f"latitude {miny:.2f}..{maxy:.2f}, not in China; is the CRS right? {_crs_hint(raw)}")


def _crs_hint(gdf: gpd.GeoDataFrame) -> str:
    """What the raw coordinates look like, and the CRS to pass for each reading (never applied by itself)."""
    geoms = gdf.geometry.dropna()
    if not len(geoms):
        return "pass crs=... (e.g. EPSG:4547)"
    minx, miny, maxx, maxy = geoms.total_bounds
    north = 1e6 <= miny and maxy < 1e7
    zone = int(minx // 1e6)
    if north and zone == int(maxx // 1e6) and 25 <= zone <= 45:
        return (f"x ~ {minx:,.0f} with zone prefix {zone}: CGCS2000 3-degree Gauss-Krüger zone {zone}, "
                f"pass crs=EPSG:{4513 + zone - 25} (CM {3 * zone}°E; Dongguan is in zone 38, EPSG:4526)")
    if north and zone == int(maxx // 1e6) and 13 <= zone <= 23:
        return f"x ~ {minx:,.0f}: CGCS2000 6-degree Gauss-Krüger zone {zone}? pass crs=EPSG:{4491 + zone - 13}"
    if north and 1e5 <= minx and maxx <= 9e5:
        return (f"x ~ {minx:,.0f}..{maxx:,.0f}, y ~ {miny:,.0f}..{maxy:,.0f} look like Gauss-Krüger metres without "
                "a zone prefix: pass crs=EPSG:4547 (CGCS2000 3-degree CM 114°E, Dongguan) or the CM zone it was "
                "made in (EPSG:4534–4554)")
    if -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90:
        return ("the coordinates look like longitude/latitude: pass crs=EPSG:4490 (CGCS2000), EPSG:4326 (WGS-84) "
                "or gcj02 (AMap, Tencent)")
    return "pass its CRS, e.g. crs=EPSG:4547 (CGCS2000 Gauss-Krüger CM 114°E)"

def coverage_gaps(old: gpd.GeoDataFrame, new_layer: gpd.GeoDataFrame, tolerance_m2: float) -> list[LayerProblem]:
    """Parts of the old towns that the new layer does not cover, each above `tolerance_m2`.

    `old`: the old towns or units (with ``town`` or ``town_code``; units are united per town).
    Each part says its town, its area in m² (in EPSG:4547) and a point inside it (WGS-84).
    """
    key = "town" if "town" in old.columns else "town_code" if "town_code" in old.columns else None
    groups = old.geometry.groupby(old[key].fillna("?").to_numpy() if key else np.zeros(len(old))) if len(old) else []
    new_m = new_layer.to_crs(METRIC).geometry.dropna()
    cover = shapely.union_all(new_m.values) if len(new_m) else shapely.Polygon()
    problems = []
    for town, geoms in groups:
        town_m = shapely.union_all(gpd.GeoSeries(geoms.values, crs=old.crs).to_crs(METRIC).values)
        missing = shapely.difference(town_m, cover)
        for part in shapely.get_parts(missing):
            if part.geom_type != "Polygon" or part.area <= tolerance_m2:
                continue
            p = gpd.GeoSeries([part.representative_point()], crs=METRIC).to_crs(4326).iloc[0]
            label = town if key else "the old boundaries"
            problems.append(LayerProblem("gap", f"{label}: part not covered by the new layer", [], float(part.area),
                                         float(p.x), float(p.y), what="not_covered",
                                         town=str(town) if key else None))
    return sorted(problems, key=lambda i: -(i.area_m2 or 0))


# ---------------------------------------------------------------------------------------------- all in one


@dataclass
class OfficialLayer:
    """An official layer read and mapped: the frame in the project's columns, how, and what stops importing it."""

    frame: gpd.GeoDataFrame  # code, name, short_name, town, town_code, zone_id, zone_name, feature; WGS-84
    mapping: FieldMapping
    problems: list[LayerProblem] = field(default_factory=list)  # empty: importable as far as this module sees
    notes: list[str] = field(default_factory=list)  # what was detected, guessed or cut, for the admin
    source_crs: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing here stops the import (overlaps and rings: gis.boundaries.validate)."""
        return not self.problems


def prepare_official(path: str | Path, current_units: pd.DataFrame | None = None, *, layer: str | None = None,
                     crs: str | None = None, encoding: str | None = None, columns: dict[str, str] | None = None,
                     zone_map: str | Path | dict | None = None, old: gpd.GeoDataFrame | None = None,
                     tolerance_m2: float = 1.0) -> OfficialLayer:
    """Read, map, zone and check an official layer in one call; every problem listed, nothing refused half-way.

    `columns`: explicit columns by field (code, name, zone, zone_name, town, short_name), overriding the
    guess; an ambiguous guess left unconfirmed is a problem. `current_units` (the units in force, e.g.
    ZoneIndex.units) give zones to villages the layer does not zone, unless `zone_map` (a zones CSV or
    its read_zone_map dict) says otherwise. `old` (towns or units, default `current_units`) must be
    covered by the new layer up to `tolerance_m2`. Raises OfficialLayerError only when the file cannot
    be read at all or has no code column.
    """
    gdf = read_layer(path, layer=layer, crs=crs, encoding=encoding)
    mapping = guess_mapping(gdf, **(columns or {}))
    frame = apply_mapping(gdf, mapping)
    problems = [LayerProblem("error", f"which column is the {f} is ambiguous ({getattr(mapping, f)} or "
                             f"{', '.join(mapping.alternatives[f])}): say which", what="ambiguous_mapping")
                for f in mapping.ambiguous]
    problems += check_codes(frame)
    if current_units is not None or zone_map is not None:
        zmap = read_zone_map(zone_map) if isinstance(zone_map, (str, Path)) else zone_map
        units = current_units if current_units is not None else pd.DataFrame(
            {"village_code": [], "zone_id": [], "zone_name": []})
        frame, zone_problems = zone_for_codes(frame, units, zmap)
        problems += zone_problems
    old = current_units if old is None else old
    if old is not None and len(old) and isinstance(old, gpd.GeoDataFrame):
        problems += coverage_gaps(old, frame, tolerance_m2)
    notes = list(frame.attrs.get("notes", [])) + mapping.notes
    return OfficialLayer(frame, mapping, problems, notes, gdf.attrs.get("source_crs"))
