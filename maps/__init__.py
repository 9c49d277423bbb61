"""Planner maps (folium), for notebooks and the API alike; every script and stylesheet is vendored.

>>> from maps import zones_map
>>> m = zones_map(ZoneIndex.load(), load_facilities(), static_url=None)   # doctest: +SKIP
>>> m                                             # in a notebook: works offline (assets inlined)

Builders return a folium.Map. `static_url` is where the page loads the vendored
assets from ("/static" when served by the API); None inlines them.
`standalone_html(m)` gives one self-contained HTML file.
"""
from maps.aggregate import Grid, HeatCells, ReportFilter, aggregate_points, aggregate_store, fetch_points, map_grid
from maps.assets import page_html, standalone_html, use_assets
from maps.basemaps import BASEMAPS, BasemapError, Projector
from maps.boundary_diff import boundary_diff_map
from maps.heat import heatmap_map, heatmap_time_map, report_heatmap
from maps.hotspots import compute_hotspots, hotspots_map, report_hotspots
from maps.stations import stations_map
from maps.zones import MapInputError, zones_map

__all__ = ["zones_map", "heatmap_map", "heatmap_time_map", "report_heatmap", "hotspots_map", "report_hotspots",
           "compute_hotspots", "ReportFilter", "Grid", "HeatCells", "aggregate_points", "aggregate_store",
           "fetch_points", "map_grid", "page_html", "standalone_html", "use_assets", "BASEMAPS", "BasemapError",
           "Projector", "MapInputError", "stations_map", "boundary_diff_map"]
