"""What every map shares: the base map, legend, labels, notices and HTML escaping."""
from __future__ import annotations

import html
import json
from typing import Iterable

import folium
from branca.element import MacroElement
from folium.template import Template

from maps.basemaps import Projector, tile_layers

ILLUSTRATIVE = ("区划为示意，仅供参考，非官方边界。"
                "Boundaries are illustrative and approximate, not official.")


def esc(value) -> str:
    """Text for HTML: every name and description goes through here before it reaches a page."""
    return "" if value is None else html.escape(str(value), quote=True)


def js_literal(value) -> str:
    """JSON for a script block, with <, >, & and ' escaped so no text can end the <script> element."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("'", "\\u0027"))


def popup_table(title: str, rows: Iterable[tuple[str, str, object]], note: str | None = None) -> str:
    """A popup as HTML; `rows` are (中文, English, value) and all of it is escaped here."""
    out = [f'<div class="zc-popup"><div class="zc-popup-title">{esc(title)}</div><table>']
    for zh, en, value in rows:
        out.append(f"<tr><th>{esc(zh)}<br><small>{esc(en)}</small></th><td>{esc(value) or '—'}</td></tr>")
    out.append("</table>")
    if note:
        out.append(f'<div class="zc-note">{esc(note)}</div>')
    out.append("</div>")
    return "".join(out)


def cell_popup_js(styles: dict, names: dict, rows: list, fallback: dict) -> str:
    """on_each_feature for grid cells whose property `c` is their class: its style (`fallback` for an unknown one),
    a tooltip with its name, and a popup table of `rows` (label zh, label en, property or "label"), built as
    DOM text nodes, never HTML."""
    return """function (feature, layer) {
    var STYLES = %s, NAMES = %s, ROWS = %s, FALLBACK = %s;
    var p = feature.properties, label = NAMES[p.c] || String(p.c);
    layer.setStyle(STYLES[p.c] || FALLBACK);
    function text(tag, s, cls) { var e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; }
    layer.bindTooltip(function () { return text('span', label); }, {sticky: true});
    layer.bindPopup(function () {
        var box = text('div', '', 'zc-popup'), table = document.createElement('table');
        box.appendChild(text('div', label, 'zc-popup-title'));
        ROWS.forEach(function (r) {
            var tr = table.insertRow(), th = text('th', r[0]);
            th.appendChild(document.createElement('br'));
            th.appendChild(text('small', r[1]));
            tr.appendChild(th);
            tr.insertCell().textContent = r[2] === 'label' ? label : String(p[r[2]]);
        });
        box.appendChild(table);
        return box;
    }, {autoPanPaddingTopLeft: [20, 60]});
}""" % tuple(js_literal(v) for v in (styles, names, rows, fallback))


def base_map(bounds_wgs84, projector: Projector, title: str, tianditu_key: str | None = None) -> folium.Map:
    """An empty map fitted to `bounds_wgs84` (minx, miny, maxx, maxy) with the chosen tiles, scale bar and title."""
    layers = tile_layers(projector.basemap, tianditu_key)  # raises BasemapError before anything is built
    (south, west), (north, east) = projector.bounds(bounds_wgs84)
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=False, zoom_start=12, zoom_snap=0.25,
                   location=[(south + north) / 2, (west + east) / 2])
    m.get_root().title = title
    for t in layers:
        folium.TileLayer(t.url, attr=t.attribution, name=t.name, subdomains=t.subdomains, max_zoom=t.max_zoom,
                         overlay=False, control=len(layers) > 1 and "注记" not in t.name).add_to(m)
    m.fit_bounds([[south, west], [north, east]], padding=(10, 10))
    Title(title).add_to(m)
    return m


class Title(MacroElement):
    """A title box at the top centre of the map (text, escaped)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var box = L.DomUtil.create('div', 'zc-title');
            box.textContent = {{ this.text|tojson }};
            {{ this._parent.get_name() }}.getContainer().appendChild(box);
        })();
        {% endmacro %}
    """)

    def __init__(self, text: str):
        super().__init__()
        self._name = "Title"
        self.text = text


class Legend(MacroElement):
    """A collapsible legend control; `html_body` must be built from esc()'d parts."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var legend = L.control({position: {{ this.position|tojson }}});
            legend.onAdd = function () {
                var div = L.DomUtil.create('div', 'zc-legend leaflet-control');
                div.innerHTML = {{ this.html_body|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            legend.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, title: str, body_html: str, position: str = "bottomright"):
        super().__init__()
        self._name = "Legend"
        self.position = position
        self.html_body = (f'<details open><summary>{esc(title)}</summary>{body_html}'
                          f'<div class="zc-note">{esc(ILLUSTRATIVE)}</div></details>')


def swatch(colour: str, label: str, shape: str = "box") -> str:
    """One legend row: a colour box (or "dot", "line") and its label, both escaped."""
    return f'<div class="zc-row"><i class="zc-{shape}" style="background:{esc(colour)}"></i>{esc(label)}</div>'


class Labels(folium.map.Layer):
    """Text labels at points (lat, lon, text, name); set with textContent, never parsed as HTML.

    `name` is shown only from zoom `names_from_zoom` on.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.layerGroup();
        {{ this.data|tojson }}.forEach(function (d) {
            var el = document.createElement('span'), name = document.createElement('b');
            el.textContent = d[2];
            name.textContent = d[3] ? ' ' + d[3] : '';
            el.appendChild(name);
            L.marker([d[0], d[1]], {
                icon: L.divIcon({className: 'zc-label', html: el, iconSize: null}),
                interactive: false, keyboard: false
            }).addTo({{ this.get_name() }});
        });
        (function (map) {
            // Names only when zoomed in far enough for them not to pile up.
            function toggle() { map.getContainer().classList.toggle('zc-zoom-low', map.getZoom() < {{ this.names_from_zoom }}); }
            map.on('zoomend', toggle);
            toggle();
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, data: list[tuple], name: str, show: bool = True, names_from_zoom: float = 12.5):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "Labels"
        self.names_from_zoom = float(names_from_zoom)
        self.data = [[round(float(d[0]), 6), round(float(d[1]), 6), str(d[2]), str(d[3]) if len(d) > 3 and d[3] else ""]
                     for d in data]


def geojson_layer(features: list[dict], name: str, *, show: bool = True, popup: bool = True,
                  tooltip: bool = True, point_radius: float | None = None) -> folium.GeoJson:
    """A GeoJSON overlay whose features carry their own `style`, and pre-escaped `popup`/`tooltip` HTML."""
    js = ["function (feature, layer) {"]
    if popup:
        js.append("  if (feature.properties.popup) layer.bindPopup(feature.properties.popup, {maxWidth: 380, autoPanPaddingTopLeft: [20, 60]});")
    if tooltip:
        js.append("  if (feature.properties.tooltip) layer.bindTooltip(feature.properties.tooltip, {sticky: true});")
    js.append("}")
    marker = folium.CircleMarker(radius=point_radius, fill=True) if point_radius else None
    return folium.GeoJson({"type": "FeatureCollection", "features": features}, name=name, show=show,
                          on_each_feature=folium.JsCode("\n".join(js)), marker=marker)


def feature(geom, properties: dict) -> dict:
    """A GeoJSON Feature (dict) for a shapely geometry and its properties."""
    import shapely

    return {"type": "Feature", "geometry": json.loads(shapely.to_geojson(geom)), "properties": properties}
