"""Report heat maps: weights per grid cell (aggregated on the server), still or animated by week / month."""
from __future__ import annotations

import folium
import folium.plugins
import numpy as np

from maps.aggregate import LOCAL, HeatCells, ReportFilter, aggregate_store, map_grid, period_label, recent_reports
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.common import Legend, base_map, esc, feature, geojson_layer, popup_table
from maps.zones import select_zones
from zonechief.workflow import STATUS_NAMES

# A page stays well under 3 MB: ~26 bytes per cell in the page, so 60,000 cells are ~1.6 MB.
MAX_CELLS = 60_000
MAX_CELLS_ANIMATED = 50_000
GRADIENT = {0.4: "blue", 0.6: "cyan", 0.7: "lime", 0.8: "yellow", 1.0: "red"}  # Leaflet.heat's default


def _zone_outlines(m, zones, proj):
    feats = [feature(g, {"style": {"color": "#555555", "weight": 1, "fill": False, "opacity": 0.8},
                         "tooltip": f"{esc(z.zone_id)} {esc(z.name)}"})
             for g, z in zip(proj.geoms(zones.geometry.values), zones.itertuples())]
    geojson_layer(feats, "片区边界 Zone outlines", popup=False).add_to(m)


def _recent_layer(m, recent, proj, category_names):
    if not recent:
        return
    x, y = proj.xy([r["lon"] for r in recent], [r["lat"] for r in recent])
    feats = []
    for k, r in enumerate(recent):
        when = r["created_at"].astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")
        cat = f"{r['category']} {category_names.get(r['category'], '')}".strip()
        rows = [("时间", "Reported", when), ("类别", "Category", cat),
                ("状态", "Status", f"{STATUS_NAMES.get(r['status'], '')} {r['status']}".strip()),
                ("片区", "Zone", r["zone_id"] or "—"), ("描述", "Description", r["description"])]
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x[k]), float(y[k])]},
                      "properties": {"style": {"color": "#222222", "weight": 1, "fillColor": "#ffffff", "fillOpacity": 0.9},
                                     "tooltip": esc(cat), "popup": popup_table(f"报告 Report #{r['id']}", rows)}})
    geojson_layer(feats, f"最新报告 Latest reports ({len(recent)})", show=False, point_radius=4).add_to(m)


def _legend_body(heat: HeatCells, flt: ReportFilter | None, category_names: dict, animated: bool) -> str:
    ramp = ", ".join(f"{c} {int(s * 100)}%" for s, c in GRADIENT.items())
    parts = [f'<i class="zc-ramp" style="background: linear-gradient(to right, transparent 0%, {ramp})"></i>'
             '<div class="zc-ramp-labels"><span>少 few</span><span>多 many</span></div>',
             f"<div>{esc(f'{heat.n_reports:,} 条报告 reports')}，"
             f"{esc(f'{heat.grid.cell_m:.0f} m 网格 grid (aggregated on the server)')}</div>"]
    if animated:
        parts.append(f"<div>{esc('按' + ('周' if heat.by == 'week' else '月') + ' by ' + str(heat.by))}</div>")
    for line in (flt.describe(category_names) if flt else []):
        parts.append(f"<div>{esc(line)}</div>")
    if heat.n_outside:
        parts.append(f"<div>{esc(f'{heat.n_outside:,} 条报告在地图范围外 reports outside the map area, not drawn')}</div>")
    for note in heat.notes:
        parts.append(f"<div>{esc(note)}</div>")
    return "".join(parts)


def heat_points(heat: HeatCells, proj: Projector) -> np.ndarray:
    """[lat, lon, count] rows in the map datum, rounded to ~1 m to keep the page small."""
    lon, lat = heat.centres()
    x, y = proj.xy(lon, lat)
    return np.column_stack([np.round(y, 5), np.round(x, 5), heat.count])


def heatmap_map(heat: HeatCells, index, *, basemap: str = "none", flt: ReportFilter | None = None,
                recent: list[dict] | None = None, category_names: dict | None = None,
                tianditu_key: str | None = None, static_url: str | None = None,
                max_cells: int = MAX_CELLS) -> folium.Map:
    """A heat map of counts per grid cell, over zone outlines; optional layer of the latest reports."""
    proj = Projector(basemap)
    flt = flt or ReportFilter()
    category_names = category_names or {}
    heat = heat.within(max_cells)
    zones = select_zones(index, flt.town, flt.zone_ids)
    m = base_map(zones.total_bounds, proj, "报告热力图 Report heat map", tianditu_key)
    _zone_outlines(m, zones, proj)
    pts = heat_points(heat, proj)
    data = [[a, b, int(c)] for a, b, c in zip(pts[:, 0].tolist(), pts[:, 1].tolist(), pts[:, 2].tolist())]
    layer = folium.plugins.HeatMap(data, name="热力 Heat",
                                   radius=12, blur=14, min_opacity=0.25, gradient=GRADIENT)
    layer.default_js = [*type(layer).default_js, ("zonechief-heat-scale", "zonechief:zonechief/heat-scale.js")]
    layer.add_to(m)
    _recent_layer(m, recent, proj, category_names)
    Legend("报告热力 Reports", _legend_body(heat, flt, category_names, False)).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)


def heatmap_time_map(heat: HeatCells, index, *, basemap: str = "none", flt: ReportFilter | None = None,
                     category_names: dict | None = None, tianditu_key: str | None = None,
                     static_url: str | None = None, max_cells: int = MAX_CELLS_ANIMATED) -> folium.Map:
    """An animated heat map, one frame per week or month (HeatMapWithTime), every period shown even if empty."""
    if heat.by is None:
        raise ValueError("heatmap_time_map needs counts by period (aggregate with by='week' or 'month')")
    proj = Projector(basemap)
    flt = flt or ReportFilter()
    heat = heat.within(max_cells)
    zones = select_zones(index, flt.town, flt.zone_ids)
    m = base_map(zones.total_bounds, proj, "报告热力随时间变化 Reports over time", tianditu_key)
    _zone_outlines(m, zones, proj)
    pts = heat_points(heat, proj)
    # heatmap.js wants weights in (0, 1]; one scale for all frames, so frames compare.
    top = max(1.0, float(np.quantile(heat.count, 0.99))) if len(heat) else 1.0
    w = np.round(np.clip(heat.count / top, 0.001, 1.0), 3)
    frames, labels = [], []
    for p in heat.periods():
        sel = heat.period == p
        frames.append([[float(a), float(b), float(c)] for (a, b, _), c in zip(pts[sel], w[sel])])
        labels.append(period_label(p, heat.by))
    if not frames:
        frames, labels = [[]], ["—"]
    folium.plugins.HeatMapWithTime(frames, index=labels, name="热力 Heat", radius=12, min_opacity=0.0,
                                   max_opacity=0.75, auto_play=False, position="bottomleft").add_to(m)
    Legend("报告热力 Reports", _legend_body(heat, flt, category_names or {}, True)).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)


def report_heatmap(db, index, flt: ReportFilter, *, by: str | None = None, cell_m: float = 150.0,
                   basemap: str = "none", recent: int = 200, category_names: dict | None = None,
                   tianditu_key: str | None = None, static_url: str | None = None) -> folium.Map:
    """The heat map of the reports in a store: counted on the server, then drawn (still, or by `by`)."""
    Projector(basemap)  # an unknown base map fails before the query
    heat = aggregate_store(db, index, flt, map_grid(index, cell_m), by)
    if by:
        return heatmap_time_map(heat, index, basemap=basemap, flt=flt, category_names=category_names,
                                tianditu_key=tianditu_key, static_url=static_url)
    return heatmap_map(heat, index, basemap=basemap, flt=flt, category_names=category_names,
                       recent=recent_reports(db, index, flt, recent), tianditu_key=tianditu_key,
                       static_url=static_url)


__all__ = ["heatmap_map", "heatmap_time_map", "report_heatmap", "heat_points", "MAX_CELLS", "MAX_CELLS_ANIMATED"]
