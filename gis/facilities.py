"""Facilities carrying city service codes (城市服务码): toilets, stations."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from gis.shipped import DATA_DIR

REQUIRED = ["facility_id", "kind", "service_code", "zone_id"]


def load_facilities(path: str | Path | None = None) -> gpd.GeoDataFrame:
    """The facilities layer (default: the shipped one) in WGS-84; missing columns or duplicate service codes are refused."""
    path = Path(path) if path else DATA_DIR / "facilities.geojson"
    gdf = gpd.read_file(path, engine="pyogrio")
    missing = [c for c in REQUIRED if c not in gdf.columns]
    if missing:
        raise ValueError(f"{path}: facilities need columns {missing}")
    if gdf["service_code"].duplicated().any():
        raise ValueError(f"{path}: duplicate service codes {sorted(gdf.service_code[gdf.service_code.duplicated()])}")
    return gdf.to_crs(4326)
