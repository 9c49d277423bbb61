"""Zones coloured by chief, with villages, chiefs and inspectors in popups, and the facilities."""
from __future__ import annotations

import folium
import numpy as np
import shapely

from gis.boundaries import METRIC
from gis.errors import ZonechiefError
from gis.zone_select import select_zones as gis_select_zones
from gis.zone_staff import staff_by_zone, zones_with_staff
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.colouring import zone_colours
from maps.common import ILLUSTRATIVE, Labels, Legend, base_map, esc, feature, geojson_layer, popup_table, swatch

FACILITY_KINDS = {  # kind -> (中文, English, colour)
    "public_toilet": ("公共厕所", "Public toilet", "#1f78b4"),
    "community_service_station": ("社区服务站", "Community service station", "#33a02c"),
    "chengguan_station": ("城管驿站", "City-management station", "#b2182b"),
}
OTHER_KIND = ("其他设施", "Other facility", "#6a3d9a")


class MapInputError(ZonechiefError, ValueError):
    """A filter that selects nothing that exists (unknown town or zone)."""


def select_zones(index, town: str | None = None, zone_ids=None):
    """The zones of `index` in a town (name or code) and/or with the given ids; MapInputError if none match."""
    return gis_select_zones(index, town, zone_ids, MapInputError)


def _people(ps) -> str:
    return "、".join(f"{p.name} ({p.phone})" if p.phone else p.name for p in ps)


def zones_map(index, facilities=None, *, basemap: str = "none", town: str | None = None, at=None,
              tianditu_key: str | None = None, static_url: str | None = None) -> folium.Map:
    """Zones coloured by chief (neighbours never alike), labels, popups, facilities, legend, layer control.

    `static_url` is where the page loads the vendored scripts from, e.g. "/static" when the API
    serves it; None (the default) inlines them, so the map works in a notebook with no network.
    """
    proj = Projector(basemap)
    zones = select_zones(index, town).reset_index(drop=True)
    chiefs, insp = staff_by_zone(index.roster, at)
    # Colour over all zones, so a zone keeps its colour whatever the town filter.
    all_zones = zones_with_staff(index.zones, index.roster, at).reset_index(drop=True)
    owners = all_zones.chief_id.tolist()
    cidx, fills = zone_colours(all_zones.to_crs(METRIC).geometry.values, owners)
    fill_of = dict(zip(all_zones.zone_id, fills))
    hue_of = dict(zip(all_zones.zone_id, cidx))

    m = base_map(zones.total_bounds, proj, "片区与片长 Zones and chiefs", tianditu_key)
    villages = index.units.groupby("zone_id")["village_name"].apply(lambda s: "、".join(str(v) for v in s if v))
    geoms = proj.geoms(zones.geometry.values)
    feats = []
    for i, z in enumerate(zones.itertuples()):
        chief = chiefs.get(z.zone_id)
        rows = [("片区", "Zone", f"{z.zone_id} {z.name}"),
                ("村（社区）", "Village / community", villages.get(z.zone_id, "")),
                ("镇街", "Town", z.town),
                ("片长", "Zone chief", _people([chief]) if chief else "（无 none in force）"),
                ("巡查员", "Patrol inspectors", _people(insp.get(z.zone_id, [])) or "（无 none）")]
        feats.append(feature(geoms[i], {
            "zone_id": z.zone_id, "chief_id": chief.person_id if chief else None,
            "fill": fill_of[z.zone_id], "chief_colour": int(hue_of[z.zone_id]),
            "style": {"fillColor": fill_of[z.zone_id], "color": "#444444", "weight": 1.2, "fillOpacity": 0.6},
            "tooltip": f"{esc(z.zone_id)} {esc(z.name)}<br>片长 {esc(chief.name if chief else '—')}",
            "popup": popup_table(f"{z.zone_id} {z.name}", rows, ILLUSTRATIVE),
        }))
    geojson_layer(feats, "片区 Zones").add_to(m)

    pts = shapely.point_on_surface(np.asarray(zones.geometry.values, dtype=object))
    lx, ly = proj.xy(shapely.get_x(pts), shapely.get_y(pts))
    Labels([(ly[i], lx[i], z.zone_id, str(z.name).removesuffix("片区")) for i, z in enumerate(zones.itertuples())],
           "片区名称 Zone labels").add_to(m)

    kinds_shown = {}
    if facilities is not None and len(facilities):
        f = facilities[facilities.zone_id.isin(set(zones.zone_id))]
        fx, fy = proj.xy(f.geometry.x.to_numpy(), f.geometry.y.to_numpy())
        ffeats = []
        for k, r in enumerate(f.itertuples()):
            zh, en, colour = FACILITY_KINDS.get(r.kind, OTHER_KIND)
            kinds_shown[r.kind] = (zh, en, colour)
            chief = chiefs.get(r.zone_id)
            rows = [("类型", "Kind", f"{zh} {en}"), ("城市服务码", "City service code", r.service_code),
                    ("片区", "Zone", r.zone_id), ("片长", "Zone chief", _people([chief]) if chief else "—")]
            ffeats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(fx[k]), float(fy[k])]},
                           "properties": {"kind": r.kind,
                                          "style": {"color": "#ffffff", "weight": 1.5, "fillColor": colour, "fillOpacity": 0.95},
                                          "tooltip": esc(r.name),
                                          "popup": popup_table(str(r.name), rows, "位置为示意 Location illustrative")}})
        geojson_layer(ffeats, "设施 Facilities (城市服务码)", point_radius=6).add_to(m)

    legend = []
    seen = set()
    for z in zones.itertuples():
        chief = chiefs.get(z.zone_id)
        key = chief.person_id if chief else z.zone_id
        if key in seen:
            continue
        seen.add(key)
        mine = [zz for zz in zones.zone_id if (chiefs.get(zz).person_id if chiefs.get(zz) else zz) == key]
        who = chief.name if chief else "无片长 no chief"
        legend.append(swatch(fill_of[z.zone_id], f"{who}: {', '.join(mine)}"))
    body = '<div class="zc-legend-h">片长（颜色）Chief (colour)</div><div class="zc-legend-scroll">' + "".join(legend) + "</div>"
    if kinds_shown:
        body += '<div class="zc-legend-h">设施 Facilities</div>' + "".join(
            swatch(c, f"{zh} {en}", "dot") for zh, en, c in kinds_shown.values())
    Legend("图例 Legend", body).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)
