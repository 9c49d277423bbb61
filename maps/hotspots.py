"""Hot and cold spots: statistically significant clusters of reports (Getis-Ord Gi*), not raw density.

The statistics are gis.hotspots' (the analysis issue); this module only asks it
for cells and draws them. `compute_hotspots` is the one place that knows its
signature.
"""
from __future__ import annotations

import folium
import numpy as np

from maps.aggregate import ReportFilter, fetch_points
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.common import Legend, base_map, cell_popup_js, esc, feature, geojson_layer, swatch
from maps.zones import select_zones

# ESRI's Hot Spot Analysis colours, by class label as gis.hotspots writes it.
CLASSES = {
    "hot 99%": ("#d62f27", "热点 99% 置信 Hot spot, 99% confidence"),
    "hot 95%": ("#ed7551", "热点 95% 置信 Hot spot, 95% confidence"),
    "hot 90%": ("#fab984", "热点 90% 置信 Hot spot, 90% confidence"),
    "not significant": ("#f2f2f2", "不显著 Not significant"),
    "cold 90%": ("#c0ccbe", "冷点 90% 置信 Cold spot, 90% confidence"),
    "cold 95%": ("#849eba", "冷点 95% 置信 Cold spot, 95% confidence"),
    "cold 99%": ("#4575b5", "冷点 99% 置信 Cold spot, 99% confidence"),
}
REQUIRED = ("geometry", "class")


def compute_hotspots(lon, lat, zones, *, cell_m: float = 500.0, permutations: int = 9999, seed: int = 0):
    """Gi* cells over `zones` (a ZoneIndex or zones GeoDataFrame) from gis.hotspots.

    A WGS-84 GeoDataFrame: geometry, class ("hot 99%" … "not significant"),
    gi_z, p_value, q_value, count, cell_id, …
    """
    import geopandas as gpd

    from gis import hotspots

    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326)
    return hotspots.gi_star(pts, zones, cell_size=cell_m, permutations=permutations, seed=seed)


POPUP_ROWS = [("类别", "Class", "label"), ("报告数", "Reports in cell", "n"), ("Gi* z 值", "Gi* z-score", "z"),
              ("p 值", "p-value", "p"), ("q 值 (FDR)", "q-value (FDR)", "q"), ("网格", "Cell", "id")]


def _cell_js() -> str:
    styles = {c: {"fillColor": col, "fillOpacity": 0.35 if c == "not significant" else 0.75,
                  "color": "#cccccc" if c == "not significant" else "#777777",
                  "weight": 0.3 if c == "not significant" else 0.6} for c, (col, _) in CLASSES.items()}
    names = {c: text for c, (_, text) in CLASSES.items()}
    return cell_popup_js(styles, names, POPUP_ROWS, {"fillColor": "#999999", "fillOpacity": 0.5, "color": "#777777", "weight": 0.6})


def _cells_layer(features, name, js):
    return folium.GeoJson({"type": "FeatureCollection", "features": features}, name=name,
                          on_each_feature=folium.JsCode(js))


def _num(v, fmt):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(f) else format(f, fmt)


def hotspots_map(cells, index, *, basemap: str = "none", flt: ReportFilter | None = None,
                 method_note: str | None = None, category_names: dict | None = None,
                 tianditu_key: str | None = None, static_url: str | None = None) -> folium.Map:
    """Grid cells coloured by Gi* class (hot/cold at 99/95/90 %, or not significant), with z and p in popups."""
    missing = [c for c in REQUIRED if c not in cells.columns]
    if missing:
        raise ValueError(f"hotspot cells need columns {missing}")
    proj = Projector(basemap)
    flt = flt or ReportFilter()
    zones = select_zones(index, flt.town, flt.zone_ids)
    m = base_map(zones.total_bounds, proj, "热点分析 Hot spots (Getis-Ord Gi*)", tianditu_key)
    cells = cells.to_crs(4326) if cells.crs is not None and cells.crs.to_epsg() != 4326 else cells
    geoms = proj.geoms(cells.geometry.values)
    labels = cells["class"].astype(str).to_numpy()
    get = lambda col: cells[col].to_numpy() if col in cells.columns else np.full(len(cells), np.nan)  # noqa: E731
    z, p, q, n = get("gi_z"), get("p_value"), get("q_value"), get("count")
    ids = cells["cell_id"].to_numpy() if "cell_id" in cells.columns else np.arange(len(cells)).astype(str)
    layers: dict[bool, list] = {True: [], False: []}
    for k in range(len(cells)):
        # Numbers only (plus the class key and cell id); the popup is built with textContent in the page.
        layers[labels[k] != "not significant"].append(feature(geoms[k], {
            "c": labels[k], "n": _num(n[k], ".0f"), "z": _num(z[k], ".2f"), "p": _num(p[k], ".4f"),
            "q": _num(q[k], ".4f"), "id": str(ids[k])}))
    outline = [feature(g, {"style": {"color": "#444444", "weight": 1.2, "fill": False}, "tooltip": f"{esc(zz.zone_id)} {esc(zz.name)}"})
               for g, zz in zip(proj.geoms(zones.geometry.values), zones.itertuples())]
    js = _cell_js()
    _cells_layer(layers[False], "不显著网格 Not significant cells", js).add_to(m)
    _cells_layer(layers[True], "冷热点 Hot and cold spots", js).add_to(m)
    geojson_layer(outline, "片区边界 Zone outlines", popup=False).add_to(m)
    counts = {c: int((labels == c).sum()) for c in CLASSES}
    body = "".join(swatch(colour, f"{text} ({counts[c]})") for c, (colour, text) in CLASSES.items())
    for line in ([method_note] if method_note else []) + flt.describe(category_names or {}):
        body += f'<div class="zc-note" style="color:#333">{esc(line)}</div>'
    Legend("热点 Hot spots", body).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)


def report_hotspots(db, index, flt: ReportFilter, *, cell_m: float = 500.0, permutations: int = 9999,
                    basemap: str = "none", category_names: dict | None = None, tianditu_key: str | None = None,
                    static_url: str | None = None) -> folium.Map:
    """Hot spots of the reports in a store that match `flt`."""
    Projector(basemap)
    lon, lat, _ = fetch_points(db, index, flt)
    # The lattice covers only the zones asked for, so the rest of the city does not count as "cold".
    cells = compute_hotspots(lon, lat, select_zones(index, flt.town, flt.zone_ids), cell_m=cell_m,
                             permutations=permutations)
    note = (f"Getis-Ord Gi*，{cell_m:.0f} m 网格，{permutations} 次置换，FDR 校正；{len(lon):,} 条报告。"
            f"Gi* on a {cell_m:.0f} m grid, {permutations} permutations, Benjamini–Hochberg FDR; {len(lon):,} reports.")
    return hotspots_map(cells, index, basemap=basemap, flt=flt, method_note=note, category_names=category_names,
                        tianditu_key=tianditu_key, static_url=static_url)
