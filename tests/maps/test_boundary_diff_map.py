"""maps.boundary_diff: the page's layers, popups, escaping and legend; and the page in a real Chromium, served
from 127.0.0.1 with every other request blocked."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis.boundaries import METRIC
from gis.boundary_diff import diff_units
from gis.crs import wgs84_to_gcj02
from maps import boundary_diff_map
from maps.assets import STATIC
from maps.common import ILLUSTRATIVE
from tests.helpers import free_port

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
X0, Y0, KM = 420_000.0, 2_540_000.0, 1000.0
A, B, C, D = "441900105201", "441900105202", "441900105203", "441900105204"


def units(*rows):
    recs = [{"unit_id": c, "zone_id": z, "village_code": c, "village_name": n, "village_short_name": None,
             "town": "企石镇", "town_code": "441900105", "zone_name": f"{z}片区", "geometry": g} for c, z, n, g in rows]
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=METRIC)


def box(col, w=KM, dx=0.0):
    return shapely.box(X0 + col * KM + dx, Y0, X0 + col * KM + w, Y0 + KM)


@pytest.fixture(scope="module")
def diff():
    """A edge moved 100 m into B; C renamed to a hostile name; D gone; E new."""
    old = units((A, "Z1", "甲村", box(0)), (B, "Z2", "乙村", box(1)), (C, "Z2", "丙村", box(2)), (D, "Z3", "丁村", box(3)))
    new = units((A, "Z1", "甲村", box(0, w=KM + 100)), (B, "Z2", "乙村", box(1, dx=100)), (C, "Z2", XSS, box(2)),
                ("441900105205", "Z3", "戊村", box(5)))
    return diff_units(old, new)


def layer(m, prefix):
    found = [c for c in m._children.values() if getattr(c, "layer_name", "").startswith(prefix)]
    assert len(found) == 1, [getattr(c, "layer_name", None) for c in m._children.values()]
    return found[0]


def test_layers_pieces_and_outlines(diff):
    m = boundary_diff_map(diff, static_url="/static")
    gained = layer(m, "村（社区）增加").data["features"]
    lost = layer(m, "村（社区）减少").data["features"]
    assert [(f["properties"]["id"], f["properties"]["area_m2"]) for f in gained] == [(A, 100_000.0), ("441900105205", 1e6)]
    assert [(f["properties"]["id"], f["properties"]["area_m2"]) for f in lost] == [(B, 100_000.0), (D, 1e6)]
    assert {f["properties"]["style"]["fillColor"] for f in gained} == {"#1a9641"}
    assert {f["properties"]["style"]["fillColor"] for f in lost} == {"#d7191c"}
    assert [f["properties"]["id"] for f in layer(m, "新增村").data["features"]] == ["441900105205"]
    assert [f["properties"]["id"] for f in layer(m, "撤销村").data["features"]] == [D]
    assert len(layer(m, "现边界").data["features"]) == 4 and len(layer(m, "原边界").data["features"]) == 4
    zg = layer(m, "片区增加").data["features"]
    assert {f["properties"]["id"] for f in zg} == {"Z1", "Z3"} and layer(m, "片区增加").show is False
    # The 100 m strip, in WGS-84 (base map none): its area back in metres is exact.
    strip = shapely.geometry.shape(gained[0]["geometry"])
    assert gpd.GeoSeries([strip], crs=4326).to_crs(METRIC).area.iloc[0] == pytest.approx(100_000, rel=1e-4)


def test_popups_carry_areas_and_escape_names(diff):
    m = boundary_diff_map(diff)
    popup = layer(m, "村（社区）增加").data["features"][0]["properties"]["popup"]
    for words in ("Area gained", "100,000 m² (0.1000 km²)", "Gained from", f"{B} (100,000 m²)", "甲村"):
        assert words in popup, words
    outlines = layer(m, "现边界").data["features"]
    c = next(f for f in outlines if f["properties"]["id"] == C)["properties"]
    assert XSS not in c["popup"] and XSS not in c["tooltip"]
    assert "&lt;script&gt;" in c["popup"] and "Former name" in c["popup"] and "丙村" in c["popup"]
    html = boundary_diff_map(diff, static_url="/static").get_root().render()
    assert "<script>window.__pwned" not in html
    assert 'src="/static/vendor/leaflet/leaflet.js"' in html and "cdn.jsdelivr" not in html


def legend(m) -> str:
    found = [c for c in m._children.values() if getattr(c, "_name", "") == "Legend"]
    assert len(found) == 1
    return found[0].html_body


def test_legend_and_title(diff):
    m = boundary_diff_map(diff, title="边界变化 2025 → 2026")
    assert "<title>边界变化 2025 → 2026</title>" in m.get_root().render()
    html = legend(m)
    assert "增加 gained: 1.1000 km²" in html and "减少 lost: 1.1000 km²" in html
    assert ILLUSTRATIVE.split("。")[0] in html  # the illustrative-data note, as on every map
    assert "1 更名 renamed" in html and "1 新增 new" in html


def test_amap_shifts_every_overlay(diff):
    m = boundary_diff_map(diff, basemap="amap")
    f = layer(m, "村（社区）减少").data["features"][0]
    plain = layer(boundary_diff_map(diff), "村（社区）减少").data["features"][0]
    xy = np.array(plain["geometry"]["coordinates"][0])
    gx, gy = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    assert np.allclose(np.array(f["geometry"]["coordinates"][0]), np.c_[gx, gy], atol=2e-6)


def test_an_identity_diff_draws_no_pieces(index):
    d = diff_units(index, index)
    m = boundary_diff_map(d)
    assert layer(m, "村（社区）增加").data["features"] == [] and layer(m, "村（社区）减少").data["features"] == []
    assert len(layer(m, "现边界").data["features"]) == 31
    assert "无变化 no change" in legend(m)


# ------------------------------------------------------------------ in Chromium
@pytest.fixture(scope="module")
def served(diff, tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(STATIC, root / "static")
    (root / "diff.html").write_text(boundary_diff_map(diff, static_url="static").get_root().render(), encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from tests.live.test_maps_browser import CHROMIUM, FLAGS

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM,
                                                   headless=True, args=FLAGS, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def test_the_page_in_chromium_loads_only_from_its_origin(chromium, served, tmp_path):
    from tests.live.test_maps_browser import THE_MAP, Visit

    v = Visit(chromium, served + "/diff.html")
    assert v.response.status == 200
    # Outlines (4 new; old ones hidden), 2+2 village pieces, new and gone outlines.
    assert v.paths_at_least(10) >= 10
    text = v.page.evaluate(f"""(id) => {{
        const map = {THE_MAP};
        let target;
        map.eachLayer(l => {{ if (l.feature && l.feature.properties.kind === 'lost' && l.feature.properties.id === id) target = l; }});
        target.openPopup();
        return document.querySelector('.leaflet-popup-content').innerText;
    }}""", B)
    assert "Area lost" in text and "100,000 m²" in text and "Lost to" in text
    got = v.page.evaluate(f"""(id) => {{
        const map = {THE_MAP};
        let target;
        map.eachLayer(l => {{ if (l.feature && l.feature.properties.outline === 'new' && l.feature.properties.id === id) target = l; }});
        map.closePopup();
        target.openPopup();
        const el = target.getPopup().getElement().querySelector('.leaflet-popup-content');
        return {{text: el.innerText, tags: el.querySelectorAll('img, script').length, pwned: window.__pwned === undefined ? null : window.__pwned}};
    }}""", C)
    assert XSS in got["text"] and got["tags"] == 0 and got["pwned"] is None
    legend = v.legend()
    assert "gained" in legend and "illustrative" in legend
    v.finish(tmp_path, "boundary-diff")  # asserts: no request left 127.0.0.1, no page errors
