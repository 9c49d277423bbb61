"""Patrol coverage vs demand: hot-spot cells by class, patrol tracks and stops (numbers from gis.patrol_coverage)."""
from __future__ import annotations

import folium
import numpy as np
import shapely

from gis.patrol_coverage import CLASSES, Coverage
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.common import Legend, base_map, cell_popup_js, esc, feature, geojson_layer, swatch

# class -> (fill colour, legend text); "other" cells are drawn faintly, only where there is something to say.
STYLE = {
    "well covered": ("#1a9850", "覆盖充分 Well covered (hot spot, dosed)"),
    "under-patrolled hot spot": ("#d73027", "巡查不足的热点 Under-patrolled hot spot"),
    "over-patrolled quiet area": ("#4575b4", "巡查过多的平静区 Over-patrolled quiet area"),
    "other": ("#f0f0f0", "其他 Other cells with reports or patrol time"),
}
assert set(STYLE) == set(CLASSES)
DOSE_COLOUR, LONG_COLOUR, TRACK_COLOUR = "#fdae61", "#762a83", "#404040"
MAX_TRACK_VERTICES = 150_000  # keeps a month's page in megabytes, not tens of them
MAX_STOPS = 5000

POPUP_ROWS = [("类别", "Class", "label"), ("片区", "Zone", "zone"), ("报告", "Reports", "reports"),
              ("200 m 内报告", "Reports within 200 m of a track", "within"), ("到访次数", "Visits", "visits"),
              ("停留分钟", "Dwell minutes", "dwell"), ("10–16 分钟停留", "10–16 min stops", "dose"),
              ("达标时段", "Dosed windows", "dosed"), ("剂量率", "Dose rate", "rate"),
              ("距上次到访 (小时)", "Hours since last visit", "since"), ("Gi* z", "Gi* z-score", "z"), ("网格", "Cell", "id")]


def _num(v, fmt: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(f) else format(f, fmt)


def _cell_js() -> str:
    styles = {c: {"fillColor": col, "fillOpacity": 0.3 if c == "other" else 0.7, "color": "#999999" if c == "other" else "#555555",
                  "weight": 0.3 if c == "other" else 0.8} for c, (col, _) in STYLE.items()}
    names = {c: text for c, (_, text) in STYLE.items()}
    return cell_popup_js(styles, names, POPUP_ROWS, styles["other"])


def _cells_features(cells, proj, windows: int) -> list[dict]:
    show = cells[(cells["class"] != "other") | (cells["reports"] > 0) | (cells["dwell_min"] > 0)]
    col = {c: show[c].to_numpy() for c in show.columns if c != "geometry"}
    out = []
    for k, g in enumerate(proj.geoms(show.geometry.values)):
        # Numbers and keys only; the popup is built with textContent in the page.
        out.append(feature(g, {"c": str(col["class"][k]), "zone": str(col["zone_id"][k] or "—"),
                               "reports": int(col["reports"][k]), "within": int(col["reports_within"][k]),
                               "visits": int(col["visits"][k]), "dwell": _num(col["dwell_min"][k], ".0f"),
                               "dose": int(col["dose_stops"][k]), "dosed": f"{int(col['dosed_windows'][k])} / {windows}",
                               "rate": _num(col["dose_rate"][k], ".2f"),
                               "since": _num(col["hours_since_last_visit"][k], ".1f"), "z": _num(col["gi_z"][k], ".2f"),
                               "id": str(col["cell_id"][k])}))
    return out


def _track_features(tracks, proj, tolerance_deg: float = 1.5e-4) -> tuple[list[dict], int]:
    """Tracks simplified again for drawing (about 15 m); stops adding lines past MAX_TRACK_VERTICES."""
    lines = shapely.simplify(tracks.geometry.values, tolerance_deg, preserve_topology=False)
    counts = shapely.get_num_coordinates(lines)
    keep = np.cumsum(counts) <= MAX_TRACK_VERTICES
    out = []
    for g, r in zip(proj.geoms(lines[keep]), tracks[keep].itertuples()):
        tip = f"{esc(r.person_id)} · {r.start.tz_convert('Asia/Shanghai'):%m-%d %H:%M}–{r.end.tz_convert('Asia/Shanghai'):%H:%M}"
        out.append(feature(g, {"style": {"color": TRACK_COLOUR, "weight": 1.2, "opacity": 0.55}, "tooltip": tip}))
    return out, int((~keep).sum())


def _stop_features(stops, proj) -> tuple[list[dict], int]:
    s = stops[stops["dose"] | stops["long"]]
    dropped = max(0, len(s) - MAX_STOPS)
    s = s.iloc[:MAX_STOPS]
    x, y = proj.xy(s.geometry.x.to_numpy(), s.geometry.y.to_numpy())
    out = []
    for k, r in enumerate(s.itertuples()):
        colour = DOSE_COLOUR if r.dose else LONG_COLOUR
        start = r.start.tz_convert("Asia/Shanghai")
        out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x[k]), float(y[k])]},
                    "properties": {"style": {"color": "#ffffff", "weight": 1, "fillColor": colour, "fillOpacity": 0.9},
                                   "tooltip": esc(f"{r.person_id} {start:%m-%d %H:%M} · {r.duration_min:.0f} min")}})
    return out, dropped


def patrols_map(cov: Coverage, zones, *, basemap: str = "none", notes: list[str] | None = None,
                tianditu_key: str | None = None, static_url: str | None = None) -> folium.Map:
    """Cells by coverage class (popups with the numbers), tracks, 10–16 min and longer stops, zone outlines, legend."""
    proj = Projector(basemap)
    m = base_map(zones.total_bounds, proj, "巡查覆盖与需求 Patrol coverage vs demand", tianditu_key)
    nw = int(cov.summary.get("windows") or 0)
    folium.GeoJson({"type": "FeatureCollection", "features": _cells_features(cov.cells, proj, nw)},
                   name="网格覆盖 Coverage per cell", on_each_feature=folium.JsCode(_cell_js())).add_to(m)
    tracks, cut = _track_features(cov.tracks, proj)
    geojson_layer(tracks, "巡查轨迹 Patrol tracks", popup=False).add_to(m)
    stops, dropped = _stop_features(cov.stops, proj)
    geojson_layer(stops, "停留 Stops (≥ 10 min)", popup=False, point_radius=4).add_to(m)
    outline = [feature(g, {"style": {"color": "#222222", "weight": 1.2, "fill": False},
                           "tooltip": f"{esc(z.zone_id)} {esc(z.name)}"})
               for g, z in zip(proj.geoms(zones.geometry.values), zones.itertuples())]
    geojson_layer(outline, "片区边界 Zone outlines", popup=False).add_to(m)
    counts = cov.summary
    body = "".join(swatch(c, f"{text} ({counts.get(k, 0)})") for k, (c, text) in STYLE.items())
    body += swatch(TRACK_COLOUR, "巡查轨迹 Patrol track", "line")
    body += swatch(DOSE_COLOUR, "10–16 分钟停留 10–16 min stop (dose)", "dot")
    body += swatch(LONG_COLOUR, "超过 16 分钟停留 Stop over 16 min", "dot")
    share = counts.get("dose_share")
    within = counts.get("demand_within_share")
    lines = [f"热点剂量覆盖率 Hot-spot dose share: {share:.1%}" if share is not None else "无热点 No hot spots",
             f"200 m 内需求 Demand within 200 m: {within:.1%}" if within is not None else "无报告 No reports",
             f"{counts.get('fixes', 0):,} 定位点 fixes · {counts.get('stops', 0):,} 停留 stops · {nw} 个 2 小时时段 windows"]
    if cut:
        lines.append(f"{cut} 条轨迹未画出以控制页面大小 tracks not drawn to keep the page small")
    if dropped:
        lines.append(f"{dropped} 个停留未画出 stops not drawn")
    for line in lines + list(notes or []):
        body += f'<div class="zc-note" style="color:#333">{esc(line)}</div>'
    Legend("巡查覆盖 Patrol coverage", body).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)


def report_patrols(db, index, req, params=None, *, basemap: str = "none", tianditu_key: str | None = None,
                   static_url: str | None = None) -> folium.Map:
    """The coverage map of a zonechief.patrol_coverage.CoverageRequest, from the store."""
    from gis.localtime import LOCAL
    from zonechief.patrol_coverage import patrol_coverage, select_zones

    Projector(basemap)
    cov = patrol_coverage(db, index, req, params)
    zones = select_zones(index, req.town, req.zone_ids)
    notes = [f"时间 Time: {req.since.astimezone(LOCAL):%Y-%m-%d %H:%M} – {req.until.astimezone(LOCAL):%Y-%m-%d %H:%M}"]
    notes += [f"{k} {v}" for k, v in (("类别 Category:", ", ".join(req.categories)), ("班组 Team:", req.team)) if v]
    return patrols_map(cov, zones, basemap=basemap, notes=notes, tianditu_key=tianditu_key, static_url=static_url)
