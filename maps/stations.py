"""Station siting map: existing stations, proposed sites, their coverage rings and the demand left uncovered.

The plan is zonechief.planning's (the same answer as GET /v1/plan/stations); this module only draws it.
"""
from __future__ import annotations

import folium
import numpy as np
import shapely

from gis.boundaries import METRIC
from gis.crs import from_wgs84, to_wgs84
from maps.aggregate import ReportFilter
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.common import Legend, base_map, esc, feature, geojson_layer, popup_table, swatch
from maps.zones import select_zones

EXISTING, PROPOSED, UNCOVERED, RING = "#1f5fbf", "#d62f27", "#ff9f1c", "#555555"


def _rings(points: list[dict], radius: float) -> list:
    """Circles of `radius` metres (drawn in EPSG:4547, so round on the ground) as WGS-84 polygons."""
    if not points:
        return []
    x, y = from_wgs84(np.array([p["lon"] for p in points]), np.array([p["lat"] for p in points]), METRIC)
    circles = shapely.buffer(shapely.points(np.asarray(x), np.asarray(y)), radius, quad_segs=16)

    def back(c):
        lon, lat = to_wgs84(c[:, 0], c[:, 1], METRIC)
        return np.column_stack([lon, lat])

    return list(shapely.transform(circles, back))


def stations_map(plan, index, *, basemap: str = "none", flt: ReportFilter | None = None, ring_metres: bool = True,
                 tianditu_key: str | None = None, static_url: str | None = None) -> folium.Map:
    """The plan on a map; rings only when the radius is in metres (not with a travel-time matrix)."""
    proj = Projector(basemap)
    flt = flt or ReportFilter()
    zones = select_zones(index, flt.town, flt.zone_ids)
    r = plan.result
    m = base_map(zones.total_bounds, proj, "站点选址 Station siting", tianditu_key)
    outline = [feature(g, {"style": {"color": "#444444", "weight": 1.2, "fill": False},
                           "tooltip": f"{esc(z.zone_id)} {esc(z.name)}"})
               for g, z in zip(proj.geoms(zones.geometry.values), zones.itertuples())]
    geojson_layer(outline, "片区边界 Zone outlines", popup=False).add_to(m)
    if r.radius and ring_metres:
        for pts, colour, name in ((plan.existing, EXISTING, "现有站点覆盖 Existing coverage"),
                                  (plan.sites, PROPOSED, "新增站点覆盖 Proposed coverage")):
            rings = [feature(g, {"style": {"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.08},
                                 "tooltip": esc(f"{p['id']}: {r.radius:g} m")})
                     for g, p in zip(proj.geoms(_rings(pts, r.radius)), pts)]
            geojson_layer(rings, name, popup=False).add_to(m)
    unc = plan.uncovered
    if unc:
        x, y = proj.xy([u["lon"] for u in unc], [u["lat"] for u in unc])
        feats = [feature(shapely.Point(a, b), {
            "style": {"color": UNCOVERED, "fillColor": UNCOVERED, "fillOpacity": 0.7, "weight": 0.5},
            "tooltip": esc(f"{u['id']}: {u['weight']:g} 报告 reports")}) for a, b, u in zip(x, y, unc)]
        geojson_layer(feats, "未覆盖需求 Uncovered demand", popup=False, point_radius=4).add_to(m)
    for pts, colour, name, zh in ((plan.existing, EXISTING, "现有站点 Existing stations", "现有站点"),
                                  (plan.sites, PROPOSED, "建议新站点 Proposed sites", "建议新站点")):
        x, y = proj.xy([p["lon"] for p in pts], [p["lat"] for p in pts]) if pts else ([], [])
        feats = []
        for a, b, p in zip(x, y, pts):
            rows = [("编号", "Id", p["id"]), ("名称", "Name", p.get("name", "")), ("片区", "Zone", p.get("zone_id")),
                    ("服务需求", "Demand served", p.get("demand_served", ""))]
            feats.append(feature(shapely.Point(a, b), {
                "style": {"color": "#ffffff", "fillColor": colour, "fillOpacity": 1, "weight": 2},
                "popup": popup_table(f"{zh} {p['id']}", rows), "tooltip": esc(p.get("name") or p["id"])}))
        geojson_layer(feats, name, point_radius=8).add_to(m)
    b, a = r.before, r.after
    lines = [f"模型 Model: {r.model} ({r.method}, {r.solver})",
             f"状态 Status: {r.status}" + ("" if r.proven_optimal else " — 未证明最优 NOT proven optimal")
             + (f", gap {r.gap:.2%}" if r.gap is not None else "")]
    if r.radius and a:
        lines.append(f"{r.radius:g} m 内需求 Demand within {r.radius:g} m: {b.get('covered') or 0:g} → {a.get('covered') or 0:g}"
                     f" / {a['demand']:g}")
    if a and a.get("mean_cost") is not None:
        mb = b.get("mean_cost")
        lines.append(f"平均距离 Mean distance: {'—' if mb is None else f'{mb:.0f}'} → {a['mean_cost']:.0f}")
    body = (swatch(EXISTING, f"现有站点 Existing ({len(plan.existing)})", "dot")
            + swatch(PROPOSED, f"建议新站点 Proposed ({len(plan.sites)})", "dot")
            + swatch(UNCOVERED, f"未覆盖需求网格 Uncovered demand cells ({len(unc)})", "dot"))
    for line in lines + flt.describe():
        body += f'<div class="zc-note" style="color:#333">{esc(line)}</div>'
    body += '<div class="zc-note">现有站点位置为示意 Existing station positions are illustrative.</div>'
    Legend("站点选址 Station siting", body).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)
