"""What moved between two boundary sets (gis.boundary_diff) on a map: area gained and lost in two colours,
new and gone villages outlined, the new and old outlines for reference, popups with areas, a legend."""
from __future__ import annotations

import folium

from gis.boundary_diff import BoundaryDiff, Change
from maps.assets import use_assets
from maps.basemaps import Projector
from maps.common import Legend, base_map, esc, feature, geojson_layer, popup_table, swatch

GAINED, LOST = "#1a9641", "#d7191c"  # ColorBrewer RdYlGn ends: readable for most colour-blind viewers too
NEW, GONE = "#2166ac", "#762a83"
TAGS = {"same": "未变 same", "changed": "边界变化 changed", "renamed": "更名 renamed", "moved": "换片区 moved zone", "new": "新增 new",
        "gone": "撤销 gone", "merged": "合并 merged", "split": "拆分 split"}
KINDS = {"gained": ("增加", "gained", GAINED), "lost": ("减少", "lost", LOST)}
LEVELS = {"village": ("村（社区）", "Village / community"), "zone": ("片区", "Zone")}


def _area(m2: float) -> str:
    return f"{m2:,.0f} m² ({m2 / 1e6:,.4f} km²)"


def _flows(pairs) -> str:
    return "、".join(f"{k} ({a:,.0f} m²)" for k, a in pairs)


def _rows(c: Change, kind: str | None = None) -> list[tuple[str, str, object]]:
    """Popup rows for one change; `kind` (gained|lost) when the popup is a piece's."""
    zh, en = LEVELS[c.level]
    rows: list[tuple[str, str, object]] = [(zh, en, f"{c.id} {c.name or ''}".strip()),
                                           ("变化", "Status", "、".join(TAGS[t] for t in c.tags))]
    if kind:
        kzh, ken, _ = KINDS[kind]
        rows.append((f"{kzh}面积", f"Area {ken}", _area(c.gained_m2 if kind == "gained" else c.lost_m2)))
    rows += [("原面积", "Area before", _area(c.area_old_m2)), ("现面积", "Area after", _area(c.area_new_m2))]
    if not kind:
        rows += [("增加", "Gained", _area(c.gained_m2)), ("减少", "Lost", _area(c.lost_m2))]
    if c.gained_from:
        rows.append(("来自", "Gained from", _flows(c.gained_from)))
    if c.lost_to:
        rows.append(("划给", "Lost to", _flows(c.lost_to)))
    if c.renamed_from:
        rows.append(("原名", "Former name", c.renamed_from))
    if c.merged_from:
        rows.append(("合并自", "Merged from", "、".join(c.merged_from)))
    if c.merged_into:
        rows.append(("并入", "Merged into", c.merged_into))
    if c.split_into:
        rows.append(("拆分为", "Split into", "、".join(c.split_into)))
    if c.split_from:
        rows.append(("拆分自", "Split from", c.split_from))
    if c.level == "village" and c.zone_old != c.zone_new:
        rows.append(("片区", "Zone", f"{c.zone_old or '—'} → {c.zone_new or '—'}"))
    if c.villages_in:
        rows.append(("划入村", "Villages in", "、".join(c.villages_in)))
    if c.villages_out:
        rows.append(("划出村", "Villages out", "、".join(c.villages_out)))
    return rows


def _piece_features(diff: BoundaryDiff, proj: Projector, level: str, kind: str) -> list[dict]:
    changes = {c.id: c for c in (diff.villages if level == "village" else diff.zones)}
    p = diff.pieces[(diff.pieces.level == level) & (diff.pieces.kind == kind)].reset_index(drop=True)
    geoms = proj.geoms(p.geometry.values)
    zh, en, colour = KINDS[kind]
    # Area that moved between two features is both one's gain and the other's loss: lost is drawn below with a
    # wide rim, gained on top without one, so such a strip shows green in a red rim; pure losses show red.
    if kind == "lost":
        style = {"fillColor": colour, "color": colour, "weight": 3.0 if level == "village" else 4.0,
                 "fillOpacity": 0.55 if level == "village" else 0.0}
    else:
        style = {"fillColor": colour, "color": colour, "weight": 0 if level == "village" else 2.0,
                 "fillOpacity": 0.75 if level == "village" else 0.0}
    out = []
    for k, r in enumerate(p.itertuples()):
        c = changes[r.id]
        out.append(feature(geoms[k], {
            "level": level, "kind": kind, "id": r.id, "area_m2": round(float(r.area_m2), 2),
            "style": style,
            "tooltip": f"{esc(r.id)} {esc(c.name)}<br>{esc(zh)} {esc(en)} {esc(_area(float(r.area_m2)))}",
            "popup": popup_table(f"{c.id} {c.name or ''} — {zh} {en}", _rows(c, kind)),
        }))
    return out


def _outline_features(diff: BoundaryDiff, proj: Projector, which: str, style: dict, only=None,
                      popups: bool = True) -> list[dict]:
    frame = diff.new_villages if which == "new" else diff.old_villages
    if only is not None:
        frame = frame[frame.code.isin(only)]
    frame = frame.reset_index(drop=True)
    changes = {c.id: c for c in diff.villages}
    geoms = proj.geoms(frame.geometry.values)
    out = []
    for k, r in enumerate(frame.itertuples()):
        props = {"id": r.code, "outline": which, "style": style}
        if popups:  # the reference outlines of the old set have none: half the page for nothing new
            props.update(tooltip=f"{esc(r.code)} {esc(r.name)}",
                         popup=popup_table(f"{r.code} {r.name or ''}", _rows(changes[r.code])))
        out.append(feature(geoms[k], props))
    return out


def boundary_diff_map(diff: BoundaryDiff, *, basemap: str = "none", tianditu_key: str | None = None,
                      title: str = "边界变化 What moved", static_url: str | None = None) -> folium.Map:
    """A map of a boundary diff: gained and lost pieces per village (and, as a layer to switch on, per zone),
    new and gone villages outlined, old and new outlines, popups with areas and what moved where.

    `static_url` is where the page loads the vendored scripts from ("/static" when the API serves it);
    None inlines them.
    """
    proj = Projector(basemap)
    frames = [f for f in (diff.new_villages, diff.old_villages) if len(f)]
    if frames:
        b = [f.total_bounds for f in frames]
        bounds = (min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b))
    else:
        bounds = (113.9, 22.8, 114.2, 23.1)  # nothing on either side: the shipped towns
    m = base_map(bounds, proj, title, tianditu_key)
    gone = [c.id for c in diff.villages if "gone" in c.tags]
    new = [c.id for c in diff.villages if "new" in c.tags]
    geojson_layer(_outline_features(diff, proj, "old", {"color": "#555555", "weight": 1, "dashArray": "4 4",
                                                        "fill": False}, popups=False),
                  "原边界 Old outlines", show=False, popup=False, tooltip=False).add_to(m)
    geojson_layer(_outline_features(diff, proj, "new", {"color": "#444444", "weight": 0.8, "fillColor": "#ffffff",
                                                        "fillOpacity": 0.05}), "现边界 New outlines").add_to(m)
    for level in ("village", "zone"):
        for kind in ("lost", "gained"):  # gained above lost (see _piece_features)
            zh, en, _ = KINDS[kind]
            lzh, len_en = LEVELS[level]
            geojson_layer(_piece_features(diff, proj, level, kind), f"{lzh}{zh} {len_en} area {en}",
                          show=level == "village").add_to(m)
    geojson_layer(_outline_features(diff, proj, "old", {"color": GONE, "weight": 2.5, "dashArray": "6 4",
                                                        "fill": False}, gone), "撤销村（社区）Gone villages").add_to(m)
    geojson_layer(_outline_features(diff, proj, "new", {"color": NEW, "weight": 2.5, "dashArray": "6 4",
                                                        "fill": False}, new), "新增村（社区）New villages").add_to(m)

    s = diff.summary()
    counts = []
    for level, (zh, en) in (("villages", LEVELS["village"]), ("zones", LEVELS["zone"])):
        c = s[level]
        moved = "、".join(f"{c[t]} {TAGS[t]}" for t in ("changed", "renamed", "moved", "new", "gone", "merged", "split") if c.get(t))
        counts.append(f'<div class="zc-row" style="white-space:normal">{esc(zh)} {esc(en)}: {esc(c["before"])} → {esc(c["after"])}; '
                      f'{esc(moved or "无变化 no change")}</div>')
    body = ('<div class="zc-legend-h">面积 Area</div>'
            + swatch(GAINED, f"增加 gained: {s['villages']['gained_m2'] / 1e6:,.4f} km²")
            + swatch(LOST, f"减少 lost: {s['villages']['lost_m2'] / 1e6:,.4f} km²")
            + f'<div class="zc-row" style="white-space:normal"><i class="zc-box" style="background:{GAINED};'
            f'border:2px solid {LOST}"></i>{esc("绿色红边：在村（社区）之间划转 green in a red rim: moved from one to another")}</div>'
            + swatch(NEW, "新增村（社区）New village (outline)", "line")
            + swatch(GONE, "撤销村（社区）Gone village (outline)", "line")
            + '<div class="zc-legend-h">变化 Changes</div>' + "".join(counts)
            + f'<div class="zc-note">{esc(f"容差 tolerance {diff.tolerance_m2:g} m²；面积按 EPSG:4547 计算 areas in EPSG:4547")}</div>')
    Legend("图例 Legend", body).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_assets(m, static_url)
