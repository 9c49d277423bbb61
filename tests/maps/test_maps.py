"""maps/: builders, colouring, datum shift, escaping, assets, server-side aggregation; the /maps API; the CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis.boundaries import METRIC
from gis.lookup import ZoneIndex
from gis.roster import Roster
from maps import ReportFilter, aggregate_points, aggregate_store, fetch_points, heatmap_map, hotspots_map, map_grid, standalone_html, zones_map
from maps.aggregate import LOCAL, Grid, period_label, period_of
from maps.assets import CDN, STATIC, UnvendoredAsset, inline_script_hashes, use_assets
from maps.basemaps import BasemapError, Projector, tile_origins
from maps.colouring import adjacency, greedy_colouring, zone_colours
from maps.heat import MAX_CELLS, heat_points, heatmap_time_map
from maps.vendor import PACKAGES
from maps.zones import MapInputError

ZONECHIEF = Path(sys.executable).parent / "zonechief"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def layer(m, name_prefix):
    """The folium layer of a map whose name starts with `name_prefix`."""
    found = [c for c in m._children.values() if getattr(c, "layer_name", "").startswith(name_prefix)]
    assert len(found) == 1, [getattr(c, "layer_name", None) for c in m._children.values()]
    return found[0]


def metres(lon1, lat1, lon2, lat2):
    import pyproj

    return pyproj.Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2]


def synthetic_cells(index, n=40):
    """A hotspot result shaped like gis.hotspots.gi_star's (WGS-84 cells, class, gi_z, p_value, ...)."""
    minx, miny, maxx, maxy = index.zones.total_bounds
    xs = np.linspace(minx, maxx, n, endpoint=False)
    d = (maxx - minx) / n
    classes = ["hot 99%", "hot 95%", "hot 90%", "not significant", "cold 90%", "cold 95%", "cold 99%"]
    rows = [{"cell_id": f"r0c{i}", "class": classes[i % len(classes)], "gi_z": 3.0 - i * 0.15, "p_value": 0.001 * (i + 1),
             "q_value": 0.002 * (i + 1), "count": i, "geometry": shapely.box(x, miny, x + d, miny + d)}
            for i, x in enumerate(xs)]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


# ------------------------------------------------------------------ colouring
def test_greedy_colouring_is_proper_on_a_grid_graph():
    nbrs = {(r, c): {(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1))
                     if 0 <= r + dr < 6 and 0 <= c + dc < 6} for r in range(6) for c in range(6)}
    for spread in (0, 4, 10):
        col = greedy_colouring(nbrs, spread=spread)
        assert all(col[a] != col[b] for a in nbrs for b in nbrs[a])
    assert len(set(greedy_colouring(nbrs, spread=10).values())) > len(set(greedy_colouring(nbrs).values()))


def test_adjacent_zones_never_share_a_colour(index, facilities):
    m = zones_map(index, facilities)
    feats = layer(m, "片区 Zones").data["features"]
    assert len(feats) == len(index.zones) == 29
    by_id = {f["properties"]["zone_id"]: f["properties"] for f in feats}
    zones = index.zones.to_crs(METRIC)
    geoms = dict(zip(zones.zone_id, zones.geometry))
    pairs = [(a, b) for a in geoms for b in geoms if a < b and geoms[a].distance(geoms[b]) < 1.0]
    assert len(pairs) > 40  # the towns are tiled: many neighbours
    for a, b in pairs:
        assert by_id[a]["fill"] != by_id[b]["fill"], (a, b)
        if by_id[a]["chief_id"] != by_id[b]["chief_id"]:
            assert by_id[a]["chief_colour"] != by_id[b]["chief_colour"], (a, b)
    # Coloured by chief: a chief's zones share the hue index; the shipped roster has chiefs with two zones.
    chief_zones = {}
    for zid, p in by_id.items():
        chief_zones.setdefault(p["chief_id"], []).append(zid)
    multi = [zs for c, zs in chief_zones.items() if c and len(zs) > 1]
    assert multi
    for zs in multi:
        assert len({by_id[z]["chief_colour"] for z in zs}) == 1
    assert len({p["fill"] for p in by_id.values()}) >= 5


def test_one_chief_with_two_touching_zones_gets_two_shades():
    sq = [shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100), shapely.box(200, 0, 300, 100)]
    idx, fills = zone_colours(sq, ["A", "A", "B"])
    assert idx[0] == idx[1] != idx[2]
    assert len(set(fills)) == 3
    assert adjacency(sq) == [{1}, {0, 2}, {1}]


# ------------------------------------------------------------------ datum shift
def _zone_coords(m):
    return np.array([c for f in layer(m, "片区 Zones").data["features"]
                     for c in shapely.get_coordinates(shapely.from_geojson(json.dumps(f["geometry"])))])


def test_amap_shifts_every_overlay_by_about_600_m_and_the_others_do_not(index, facilities):
    base = zones_map(index, facilities)
    amap = zones_map(index, facilities, basemap="amap")
    osm = zones_map(index, facilities, basemap="osm")
    tdt = zones_map(index, facilities, basemap="tianditu", tianditu_key="k")
    a, b = _zone_coords(base), _zone_coords(amap)
    d = metres(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    assert 400 < d.min() and d.max() < 800, (d.min(), d.max())
    np.testing.assert_array_equal(a, _zone_coords(osm))
    np.testing.assert_array_equal(a, _zone_coords(tdt))
    # Facilities and labels move too.
    fa = [f["geometry"]["coordinates"] for f in layer(base, "设施").data["features"]]
    fb = [f["geometry"]["coordinates"] for f in layer(amap, "设施").data["features"]]
    df = metres(*np.array(fa).T, *np.array(fb).T)
    assert 400 < df.min() and df.max() < 800
    la, lb = np.array(layer(base, "片区名称").data)[:, :2].astype(float), np.array(layer(amap, "片区名称").data)[:, :2].astype(float)
    assert 400 < metres(la[:, 1], la[:, 0], lb[:, 1], lb[:, 0]).min()
    # Heat points and hotspot cells.
    rng = np.random.default_rng(1)
    lon = rng.uniform(113.98, 114.17, 5000)
    lat = rng.uniform(22.82, 23.10, 5000)
    heat = aggregate_points(lon, lat, map_grid(index, 200))
    p0, p1 = heat_points(heat, Projector("none")), heat_points(heat, Projector("amap"))
    assert 400 < metres(p0[:, 1], p0[:, 0], p1[:, 1], p1[:, 0]).min()
    np.testing.assert_array_equal(p0, heat_points(heat, Projector("osm")))
    cells = synthetic_cells(index)
    c0 = _cells(hotspots_map(cells, index))
    c1 = _cells(hotspots_map(cells, index, basemap="amap"))
    assert 400 < metres(c0[:, 0], c0[:, 1], c1[:, 0], c1[:, 1]).min()
    np.testing.assert_array_equal(c0, _cells(hotspots_map(cells, index, basemap="osm")))


def _cells(m):
    feats = layer(m, "冷热点").data["features"] + layer(m, "不显著").data["features"]
    return np.array([c for f in feats for c in f["geometry"]["coordinates"][0]])


def test_basemap_tiles_and_errors(index):
    assert "openstreetmap" not in zones_map(index).get_root().render()
    assert "tile.openstreetmap.org" in zones_map(index, basemap="osm").get_root().render()
    page = zones_map(index, basemap="tianditu", tianditu_key="KEY123").get_root().render()
    assert "tianditu.gov.cn" in page and "tk=KEY123" in page
    assert "autonavi.com" in zones_map(index, basemap="amap").get_root().render()
    with pytest.raises(BasemapError, match="ZONECHIEF_TIANDITU_KEY"):
        zones_map(index, basemap="tianditu", tianditu_key="")
    with pytest.raises(BasemapError, match="unknown base map"):
        zones_map(index, basemap="google")
    assert tile_origins("none") == []
    assert tile_origins("amap") == [f"https://webrd0{i}.is.autonavi.com" for i in range(1, 5)]


# ------------------------------------------------------------------ escaping
def _hostile_index(index):
    units = index.units.copy()
    units.loc[0, "village_name"] = XSS
    t = index.roster.table.copy()
    t.loc[t.zone_id == units.loc[0, "zone_id"], "name"] = '<b onmouseover="x()">片长</b>'
    return ZoneIndex(units, Roster(t[["person_id", "role", "name", "phone", "zone_id", "effective_from", "effective_to"]]))


def _no_injected_markup(page: str):
    assert "<script>window.__pwned" not in page
    assert "<img src=x" not in page
    assert '<b onmouseover' not in page


def test_names_are_escaped_in_zone_popups(index, facilities):
    hostile = _hostile_index(index)
    m = zones_map(hostile, facilities, static_url="/static")
    feats = layer(m, "片区 Zones").data["features"]
    popup = next(f["properties"]["popup"] for f in feats if f["properties"]["zone_id"] == hostile.units.zone_id[0])
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;" in popup
    assert "&lt;b onmouseover=&quot;x()&quot;&gt;" in popup
    assert "<script" not in popup and "<img" not in popup
    _no_injected_markup(m.get_root().render())


def test_descriptions_are_escaped_in_report_popups(index):
    heat = aggregate_points([114.05], [23.0], map_grid(index, 150))
    recent = [{"id": 7, "created_at": datetime(2025, 7, 1, tzinfo=timezone.utc), "category": "06010", "status": "new",
               "description": XSS, "zone_id": "QS-15", "lon": 114.05, "lat": 23.0}]
    m = heatmap_map(heat, index, recent=recent, category_names={"06010": "<i>暴露垃圾</i>"}, static_url="/static")
    popup = layer(m, "最新报告").data["features"][0]["properties"]["popup"]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in popup and "<script" not in popup
    assert "&lt;i&gt;暴露垃圾&lt;/i&gt;" in popup
    _no_injected_markup(m.get_root().render())


# ------------------------------------------------------------------ assets
SRC = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)""", re.I)


def _pages(index, facilities):
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(114.0, 114.15, 2000), rng.uniform(22.85, 23.08, 2000)
    t = (datetime(2025, 6, 1, tzinfo=LOCAL).timestamp() + rng.uniform(0, 90 * 86400, 2000)).astype(np.int64)
    grid = map_grid(index, 200)
    s = "/static"
    return {"zones": zones_map(index, facilities, static_url=s),
            "heatmap": heatmap_map(aggregate_points(lon, lat, grid), index, static_url=s),
            "heatmap_week": heatmap_time_map(aggregate_points(lon, lat, grid, t, "week"), index, static_url=s),
            "hotspots": hotspots_map(synthetic_cells(index), index, static_url=s)}


def test_pages_load_only_vendored_files_from_static(index, facilities):
    for name, m in _pages(index, facilities).items():
        page = m.get_root().render()
        urls = SRC.findall(page)
        assert urls, name
        assert "/static/vendor/leaflet/leaflet.js" in urls
        for u in urls:
            assert u.startswith("/static/"), (name, u)
            assert (STATIC / u.removeprefix("/static/")).is_file(), (name, u)
        assert not re.search(r"""url\(\s*['"]?(https?:)?//""", page), name
        for host in ("cdn.jsdelivr.net", "cdnjs", "code.jquery.com", "bootstrapcdn", "unpkg", "googleapis"):
            assert host not in page, (name, host)
    pages = {k: v.get_root().render() for k, v in _pages(index, facilities).items()}
    assert "jquery" in pages["heatmap_week"] and "jquery" not in pages["zones"]  # only HeatMapWithTime needs $
    assert "leaflet-heat.js" in pages["heatmap"] and "heat-scale.js" in pages["heatmap"]
    assert "leaflet.timedimension" in pages["heatmap_week"]


def test_standalone_inlines_everything(index, facilities):
    for name, m in _pages(index, facilities).items():
        page = standalone_html(m)
        assert SRC.findall(page) == [], name
        assert "L.Map" in page or "L.map" in page
        assert not re.search(r"""url\(\s*['"]?(?!data:|#)[^'")\s]""", page.split("<body>")[0]), name
        # The inlined libraries cannot close their own <script> early.
        for body in re.findall(r"<script>(.*?)</script>", page, re.S):
            assert "</script" not in body.lower()


def test_builders_inline_assets_by_default_for_notebooks(index):
    m = zones_map(index)
    assert SRC.findall(m._repr_html_()) == []  # the notebook iframe needs no server and no network
    assert "L.Map" in m.get_root().render() or "L.map" in m.get_root().render()


def test_assets_stay_ahead_of_the_scripts_that_use_them_when_switched_after_rendering(index):
    rng = np.random.default_rng(0)
    t = (datetime(2025, 6, 1).timestamp() + rng.uniform(0, 60 * 86400, 500)).astype(np.int64)
    heat = aggregate_points(rng.uniform(114.0, 114.1, 500), rng.uniform(22.9, 23.0, 500), map_grid(index, 300), t, "month")
    m = heatmap_time_map(heat, index)
    m._repr_html_()  # a notebook showed it: folium has put its header scripts in place
    for page in (standalone_html(m), use_assets(m, "/static").get_root().render()):
        uses = page.index("var TDHeatmap = L.TimeDimension")
        assert "Leaflet TimeDimension" in page[:uses] or "leaflet.timedimension.min.js" in page[:uses]
        assert page.count("var TDHeatmap") == 1


def test_a_plugin_that_is_not_vendored_is_refused(index):
    m = zones_map(index)
    folium.plugins.MarkerCluster().add_to(m)
    with pytest.raises(UnvendoredAsset, match="markercluster"):
        use_assets(m, "/static")


def test_vendored_packages_have_licences_and_pinned_versions():
    for pkg, (version, files, _) in PACKAGES.items():
        d = STATIC / "vendor" / pkg
        assert (d / "LICENSE").stat().st_size > 500, pkg
        assert (d / "VERSION").read_text().strip() == f"{pkg}@{version} (npm)"
        for name in files.values():
            assert (d / name).is_file(), (pkg, name)
    css = (STATIC / "vendor" / "leaflet-timedimension" / "leaflet.timedimension.control.css").read_text()
    assert "bootstrapcdn" not in css and "@font-face" not in css
    assert {p for p in CDN.values() if p} <= {str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file()}


def test_csp_hashes_cover_every_inline_script(index):
    import base64
    import hashlib

    page = zones_map(index).get_root().render()
    bodies = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert bodies
    hashes = inline_script_hashes(page)
    for b in bodies:
        assert "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" in hashes


# ------------------------------------------------------------------ aggregation
def test_grid_counts_match_a_plain_loop(index):
    rng = np.random.default_rng(5)
    lon = rng.uniform(113.9, 114.25, 20_000)  # some outside the grid on purpose
    lat = rng.uniform(22.75, 23.15, 20_000)
    g = map_grid(index, 300)
    h = aggregate_points(lon, lat, g)
    ref: dict[int, int] = {}
    outside = 0
    for x, y in zip(lon, lat):
        i, j = int((x - g.x0) // g.dx), int((y - g.y0) // g.dy)
        if 0 <= i < g.nx and 0 <= j < g.ny:
            ref[j * g.nx + i] = ref.get(j * g.nx + i, 0) + 1
        else:
            outside += 1
    assert dict(zip(h.cell.tolist(), h.count.tolist())) == ref
    assert h.n_outside == outside > 0 and h.n_reports == len(lon) - outside
    cx, cy = h.centres()
    assert np.all(g.cell_of(cx, cy) == h.cell)  # centres fall in their own cells
    # Square in metres.
    assert abs(metres(g.x0, g.y0, g.x0 + g.dx, g.y0) - 300) < 1 and abs(metres(g.x0, g.y0, g.x0, g.y0 + g.dy) - 300) < 1


def test_coarsening_is_exact_and_bounded(index):
    rng = np.random.default_rng(6)
    lon, lat = rng.uniform(113.98, 114.17, 50_000), rng.uniform(22.82, 23.10, 50_000)
    t = rng.integers(1_735_660_800, 1_743_436_800, 50_000)
    g = map_grid(index, 50)
    for by in (None, "month"):
        fine = aggregate_points(lon, lat, g, t, by)
        for k in (2, 3, 7):
            direct = aggregate_points(lon, lat, g.coarser(k), t, by)
            c = fine.coarsen(k)
            np.testing.assert_array_equal(c.cell, direct.cell)
            np.testing.assert_array_equal(c.count, direct.count)
            if by:
                np.testing.assert_array_equal(c.period, direct.period)
        small = fine.within(2000)
        assert len(small) <= 2000 < len(fine)
        assert small.count.sum() == fine.count.sum() == 50_000
        assert small.notes and "enlarged" in small.notes[-1]


def test_a_million_reports_give_at_most_max_cells(index):
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(113.98, 114.17, 1_000_000), rng.uniform(22.82, 23.10, 1_000_000)
    heat = aggregate_points(lon, lat, map_grid(index, 50))
    assert len(heat) > MAX_CELLS
    m = heatmap_map(heat, index)
    assert len(layer(m, "热力").data) <= MAX_CELLS


def test_wkb_points_are_read_fast_and_any_other_wkb_correctly():
    from store.map_aggregates import _wkb_points_xy

    little = [shapely.to_wkb(shapely.Point(114.1, 22.9)), shapely.to_wkb(shapely.Point(114.2, 23.0))]
    x, y = _wkb_points_xy(little)
    assert x.tolist() == [114.1, 114.2] and y.tolist() == [22.9, 23.0]
    mixed = little + [shapely.to_wkb(shapely.Point(114.3, 23.1), byte_order=0)]  # big-endian: GEOS reads it
    x, y = _wkb_points_xy(mixed)
    assert x.tolist() == [114.1, 114.2, 114.3] and y.tolist() == [22.9, 23.0, 23.1]


def test_periods_are_local_weeks_and_months():
    def ts(s):
        return int(datetime.fromisoformat(s).timestamp())

    # Sunday 23:59 Shanghai and Monday 00:00 Shanghai are different weeks; UTC would put both in the same one.
    sun, mon = ts("2025-07-06T23:59:00+08:00"), ts("2025-07-07T00:00:00+08:00")
    w = period_of([ts("2025-06-30T00:00:00+08:00"), sun, mon], "week")
    assert w[0] == w[1] != w[2] and w[2] - w[1] == 1
    assert period_label(int(w[2]), "week").startswith("2025-07-07")
    mo = period_of([ts("2025-06-30T16:30:00+00:00"), ts("2025-06-30T15:30:00+00:00")], "month")  # 00:30 / 23:30 local
    assert [period_label(int(x), "month") for x in mo] == ["2025-07", "2025-06"]


def test_filters_validate():
    with pytest.raises(MapInputError, match="status"):
        ReportFilter(statuses=("open",))
    with pytest.raises(MapInputError, match="5-digit"):
        ReportFilter(categories=("6010",))
    with pytest.raises(MapInputError, match="before"):
        ReportFilter(since=datetime(2025, 2, 1), until=datetime(2025, 1, 1))
    assert ReportFilter(since=datetime(2025, 1, 1)).since.utcoffset() == timedelta(hours=8)
    with pytest.raises(MapInputError):
        Grid.over((114, 23, 114.1, 23.1), 5)


# ------------------------------------------------------------------ store: PostGIS SQL and SQLite numpy agree
@pytest.fixture(scope="module")
def seeded(store_url, index):
    """The app's services (no app needed: the maps read the store through them) on a store of 3000 demo reports."""
    from zonechief.bulk import seed_demo
    from zonechief.services import Services

    svc = Services(index=index, database_url=store_url)
    seed_demo(svc.reports, 3000, seed=11, now=datetime(2025, 9, 30, 12, tzinfo=LOCAL))
    return svc


def _reference(svc, flt: ReportFilter, grid, by=None):
    """Counts computed in Python from the ORM rows: an independent path to compare with."""
    from sqlalchemy import select

    from store.models import Report

    scope = flt.zone_scope(svc.index)
    with svc.db.sessions() as s:
        rows = s.execute(select(Report.geom, Report.created_at, Report.category, Report.status, Report.zone_id)).all()
    keep = [r for r in rows if r.geom is not None
            and (flt.since is None or r.created_at >= flt.since) and (flt.until is None or r.created_at < flt.until)
            and (not flt.categories or r.category in flt.categories) and (not flt.statuses or r.status in flt.statuses)
            and (scope is None or r.zone_id in scope)]
    lon = np.array([r.geom.x for r in keep])
    lat = np.array([r.geom.y for r in keep])
    t = np.array([int(r.created_at.timestamp()) for r in keep], dtype=np.int64)
    return aggregate_points(lon, lat, grid, t, by)


@pytest.mark.parametrize("by", [None, "week", "month"])
def test_store_aggregation_matches_python(seeded, by):
    grid = map_grid(seeded.index, 250)
    filters = [ReportFilter(),
               ReportFilter(since=datetime(2025, 8, 1), until=datetime(2025, 9, 15), statuses=("closed", "resolved")),
               ReportFilter(town="企石镇", categories=("06010", "03001", "08001")),
               ReportFilter(zone_ids=("ZMT-01", "QS-15"))]
    for flt in filters:
        got = aggregate_store(seeded.db, seeded.index, flt, grid, by)
        ref = _reference(seeded, flt, grid, by)
        assert got.n_reports == ref.n_reports
        np.testing.assert_array_equal(got.cell, ref.cell)
        np.testing.assert_array_equal(got.count, ref.count)
        if by:
            np.testing.assert_array_equal(got.period, ref.period)
    assert aggregate_store(seeded.db, seeded.index, filters[0], grid, by).n_reports == 3000
    assert 0 < aggregate_store(seeded.db, seeded.index, filters[2], grid, by).n_reports < 3000


def test_fetch_points_in_zones(seeded):
    lon, lat, t = fetch_points(seeded.db, seeded.index, ReportFilter(zone_ids=("ZMT-01",)), with_time=True)
    assert len(lon) == len(lat) == len(t) > 10
    unit, _ = seeded.index.locate(lon, lat)
    zones = set(seeded.index.units.zone_id.to_numpy()[unit[unit >= 0]])
    assert zones == {"ZMT-01"}
    now = datetime(2025, 9, 30, 12, tzinfo=LOCAL)  # the seed's "now"; demo reports span the 180 days before it
    assert (now - timedelta(days=181)).timestamp() < t.min() < t.max() <= now.timestamp()


# ------------------------------------------------------------------ API
@pytest.fixture(scope="module")
def client(tmp_path_factory, index):
    """The map pages through the API, in-process (TestClient), on an empty SQLite store."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('maps_api') / 'z.sqlite'}"
    with TestClient(create_app(index=index, database_url=url)) as c:
        yield c


@pytest.mark.parametrize("path, status, words", [
    ("/maps/zones?basemap=google", 422, "basemap"),
    ("/maps/zones?basemap=tianditu", 422, "ZONECHIEF_TIANDITU_KEY"),
    ("/maps/zones?town=nowhere", 422, "no town"),
    ("/maps/zones?at=someday", 400, "ISO 8601"),
    ("/maps/heatmap?since=yesterday", 400, "ISO 8601"),
    ("/maps/heatmap?since=2025-02-01&until=2025-01-01", 422, "before"),
    ("/maps/heatmap?since=0001-01-01T00:00:00%2B08:00", 422, "between 1970 and 2200"),
    ("/maps/hotspots?until=9999-12-31T23:59:59-12:00", 422, "between 1970 and 2200"),
    ("/maps/heatmap?status=open", 422, "unknown status"),
    ("/maps/heatmap?category=99999", 422, "unknown category"),
    ("/maps/heatmap?category=abc", 422, "5-digit"),
    ("/maps/heatmap?zone=QS-99", 422, "no zone"),
    ("/maps/heatmap?by=day", 422, "by"),
    ("/maps/heatmap?cell_m=5", 422, "cell_m"),
    ("/maps/hotspots?permutations=5", 422, "permutations"),
    ("/maps/hotspots?town=企石镇&zone=ZMT-01", 422, "not in that town"),
])
def test_bad_map_parameters_are_problems(client, path, status, words):
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.text


def test_map_pages_and_static(client):
    for path in ("/maps/zones", "/maps/heatmap", "/maps/heatmap?by=month&town=樟木头镇", "/maps/hotspots?town=441900105",
                 "/maps/zones?basemap=amap", "/maps/heatmap?category=06010,03001&status=new&status=assigned"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self' 'sha256-" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        for h in inline_script_hashes(r.text):
            assert h in csp
        if "amap" in path:
            assert "https://webrd01.is.autonavi.com" in csp
    js = client.get("/static/vendor/leaflet/leaflet.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 100_000
    assert client.get("/static/vendor/leaflet/LICENSE").status_code == 200
    assert client.get("/static/../api/app.py").status_code == 404
    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    for link in ("maps/zones", "maps/heatmap", "maps/hotspots", "docs"):
        assert f'href="{link}' in index.text


# ------------------------------------------------------------------ CLI
def test_cli_writes_maps(tmp_path):
    env = {**__import__("os").environ, "ZONECHIEF_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}

    def run(*args):
        return subprocess.run([str(ZONECHIEF), "map", *args], capture_output=True, text=True, timeout=300, env=env)

    r = run("zones", "--out", tmp_path / "z.html", "--standalone", "--basemap", "amap")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "z.html").read_text()
    assert SRC.findall(page) == [] and "autonavi" in page
    r = run("heatmap", "--out", tmp_path / "h" / "h.html", "--by", "week", "--town", "企石镇")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "h" / "zonechief_static" / "vendor" / "leaflet" / "leaflet.js").is_file()
    assert all(u.startswith("zonechief_static/") for u in SRC.findall((tmp_path / "h" / "h.html").read_text()))
    r = run("hotspots", "--out", tmp_path / "x.html", "--zone", "QS-99")
    assert r.returncode == 1 and "no zone" in r.stderr and not (tmp_path / "x.html").exists()
    r = run("heatmap", "--out", tmp_path / "x.html", "--basemap", "bing")
    assert r.returncode == 2 and "bing" in r.stderr
