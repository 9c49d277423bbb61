"""Browser assets: folium's CDN links replaced by the vendored copies, served or inlined.

folium elements name their scripts and stylesheets in `default_js` /
`default_css` as CDN URLs. `use_assets` walks a map, maps every such URL to a
file under maps/static/ (see maps/vendor.py), and puts the links (or, with
`base_url=None`, the inlined files) in the page header in dependency order.
A URL it does not know is an error: no page may quietly fetch from a CDN.
"""
from __future__ import annotations

import base64
import mimetypes
import re
from functools import lru_cache
from pathlib import Path

import folium
import folium.plugins
from branca.element import Element, Figure

from gis.errors import ZonechiefError

STATIC = Path(__file__).resolve().parent / "static"

# folium's CDN URL -> file under maps/static, or None when no zonechief page needs it.
CDN: dict[str, str | None] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "vendor/leaflet/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "vendor/leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery/jquery.min.js",
    "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js":
        "vendor/leaflet.heat/leaflet-heat.js",
    "https://cdn.jsdelivr.net/npm/iso8601-js-period@0.2.1/iso8601.min.js": "vendor/iso8601-js-period/iso8601.js",
    "https://cdn.jsdelivr.net/npm/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.min.js":
        "vendor/leaflet-timedimension/leaflet.timedimension.min.js",
    "https://cdn.jsdelivr.net/npm/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.control.css":
        "vendor/leaflet-timedimension/leaflet.timedimension.control.css",
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/pa7_hm.min.js":
        "vendor/heatmap.js/heatmap.min.js",
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/pa7_leaflet_hm.min.js":
        "vendor/heatmap.js/leaflet-heatmap.js",
    # Map's defaults for Marker icons and Bootstrap-styled popups; our pages use neither.
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": None,
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": None,
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": None,
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": None,
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": None,
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": None,
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css": None,
}
JQUERY = "https://code.jquery.com/jquery-3.7.1.min.js"
# Elements whose templates call jQuery ($); the Map itself does not need it.
_NEEDS_JQUERY = (folium.plugins.HeatMapWithTime, folium.Popup)
OWN_CSS = ("zonechief_css", "zonechief/zonechief.css")


class UnvendoredAsset(ZonechiefError, RuntimeError):
    """A folium element wants a script or stylesheet that is not vendored."""


class _Inline(Element):
    """A script or stylesheet written into the page."""

    def __init__(self, tag: str, code: str):
        super().__init__()
        self.tag, self.code = tag, code
        self._template = None

    def render(self, **kwargs):
        return f"<{self.tag}>\n{self.code}\n</{self.tag}>"


def _walk(element):
    yield element
    for child in element._children.values():
        yield from _walk(child)


def _needed(m: folium.Map) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(name, static path) of the scripts and stylesheets the map's elements ask for, in order."""
    js: dict[str, str] = {}
    css: dict[str, str] = {}
    wants_jquery = any(isinstance(e, _NEEDS_JQUERY) for e in _walk(m))
    for e in _walk(m):
        own = e.__dict__.get("_zc_assets")  # already localized: a second call keeps the result
        for attr, out in (("default_js", js), ("default_css", css)):
            for name, url in (own or {}).get(attr, getattr(e, attr, None) or []):
                if e is m and url == JQUERY and not wants_jquery:
                    continue
                if url.startswith("zonechief:"):
                    path = url.split(":", 1)[1]
                elif url in CDN:
                    path = CDN[url]
                else:
                    raise UnvendoredAsset(f"{type(e).__name__} needs {url}, which is not vendored; "
                                          "add it to maps/vendor.py and maps.assets.CDN")
                if path is None:
                    continue
                out.setdefault(name, path)
    if wants_jquery and "jquery" not in js:
        js = {"jquery": CDN[JQUERY], **js}
    css.setdefault(*OWN_CSS)
    return list(js.items()), list(css.items())


def use_assets(m: folium.Map, base_url: str | None = "/static") -> folium.Map:
    """Point every script and stylesheet of `m` at `base_url` (e.g. "/static"), or inline them (None).

    Call it after the last layer is added. Returns `m`.
    """
    js, css = _needed(m)
    for e in _walk(m):
        if (hasattr(e, "default_js") or hasattr(e, "default_css")) and "_zc_assets" not in e.__dict__:
            # Keep what the element asked for (a later call needs it), then stop folium linking the CDN.
            e._zc_assets = {"default_js": list(getattr(e, "default_js", [])),
                            "default_css": list(getattr(e, "default_css", []))}
            e.default_js, e.default_css = [], []
    fig = m.get_root()
    if not isinstance(fig, Figure):
        fig = Figure()
        fig.add_child(m)
    header = fig.header
    others = [(k, v) for k, v in header._children.items() if not k.startswith("zc_asset_")]
    header._children.clear()
    for name, path in css:
        header.add_child(_Inline("style", inline_css(path)) if base_url is None
                         else Element(f'<link rel="stylesheet" href="{base_url}/{path}"/>'), name=f"zc_asset_css_{name}")
    for name, path in js:
        header.add_child(_Inline("script", inline_js(path)) if base_url is None
                         else Element(f'<script src="{base_url}/{path}"></script>'), name=f"zc_asset_js_{name}")
    # Libraries first (after the charset meta): a rendered map already has header scripts that use them.
    assets = list(header._children.items())
    header._children.clear()
    header._children.update([kv for kv in others if kv[0] == "meta_http"] + assets
                            + [kv for kv in others if kv[0] != "meta_http"])
    return m


# ------------------------------------------------------------------ inlining
@lru_cache(maxsize=None)
def inline_js(path: str) -> str:
    """A vendored script's text, made safe to sit inside an inline <script> element."""
    code = (STATIC / path).read_text(encoding="utf-8")
    # "</script" or "<!--" inside a script element would end or confuse it; "\/" and "\!" mean the same in JS.
    return re.sub(r"<(/script|!--)", lambda mo: "<\\" + mo.group(1), code, flags=re.I)


@lru_cache(maxsize=None)
def inline_css(path: str) -> str:
    """The stylesheet with its url(...) images made data: URIs, so it needs no other file."""
    css_file = STATIC / path
    code = css_file.read_text(encoding="utf-8")

    def data_uri(mo):
        url = mo.group(2)
        if url.startswith(("data:", "#")):
            return mo.group(0)
        target = (css_file.parent / url).resolve()
        if STATIC not in target.parents or not target.is_file():
            raise UnvendoredAsset(f"{path} refers to {url}, which is not under maps/static")
        mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return f'url("data:{mime};base64,{base64.b64encode(target.read_bytes()).decode()}")'

    code = re.sub(r"url\(\s*(['\"]?)([^'\")]+)\1\s*\)", data_uri, code)
    return re.sub(r"</style", r"<\\/style", code, flags=re.I)


def standalone_html(m: folium.Map) -> str:
    """One HTML file with every script and stylesheet inlined: opens from disk with no network."""
    use_assets(m, None)
    return m.get_root().render()


def page_html(m: folium.Map, base_url: str = "/static") -> str:
    """The map as an HTML page loading its scripts and stylesheets from `base_url` (as the API serves maps)."""
    use_assets(m, base_url)
    return m.get_root().render()



_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def inline_script_hashes(page: str) -> list[str]:
    """CSP source expressions ('sha256-…') for every inline <script> of a rendered page."""
    import hashlib

    out = []
    for body in _INLINE_SCRIPT.findall(page):
        h = "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"
        if h not in out:
            out.append(h)
    return out
