"""/maps/patrols (issue 17) in a real headless Chromium on SQLite and PostGIS: synthetic patrols and demo reports,
a staff key in the request headers; cells, tracks and stops are drawn, popups carry the numbers, the legend has the
three classes, and no request leaves 127.0.0.1 (tests/live/test_maps_browser.py's Visit)."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from gis.localtime import LOCAL
from store.keys import create_key
from tests.api.test_patrol_coverage_api import _seed_reports
from tests.helpers import LiveServer
from tests.live.test_maps_browser import N_ZONES, THE_MAP, Visit, _name, browser  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def patrol_server(store_url, zone_index):
    from api.app import create_app
    from zonechief.patrols import import_frame
    from zonechief.patrols_synthetic import synthetic_tracks

    app = create_app(index=zone_index, database_url=store_url)
    svc = app.state.services
    with svc.db.sessions.begin() as s:
        _, staff = create_key(s, "staff", "browser staff")
    _seed_reports(svc.reports, 1500, now=datetime(2026, 11, 4, 12, tzinfo=LOCAL), days=3)
    frame = synthetic_tracks(zone_index, days=2, people=6, fix_s=20, seed=4, start=date(2026, 11, 2))
    assert not import_frame(svc.db, zone_index, frame, name="synthetic browser", actor="test", synthetic=True).rejected
    with LiveServer(app) as srv:
        yield srv, staff


def test_patrol_coverage_map(browser, patrol_server, shots, store_url):  # noqa: F811
    srv, staff = patrol_server
    browser.set_extra_http_headers({"X-API-Key": staff})
    try:
        v = Visit(browser, srv.url + "/maps/patrols?since=2026-11-02&until=2026-11-03&town=企石镇")
        assert v.response.status == 200
        v.paths_at_least(N_ZONES)
        legend = v.legend()
        for words in ("Well covered", "Under-patrolled hot spot", "Over-patrolled quiet area", "10–16 min stop",
                      "Patrol track", "dose share"):
            assert words in legend, words
        counts = v.page.evaluate(f"""() => {{
            const map = {THE_MAP}, out = {{cells: 0, classes: {{}}, lines: 0, stops: 0}};
            map.eachLayer(l => {{
                const p = l.feature && l.feature.properties;
                if (!p) return;
                if (p.c) {{ out.cells++; out.classes[p.c] = (out.classes[p.c] || 0) + 1; }}
                else if (l.feature.geometry.type === 'LineString') out.lines++;
                else if (l.feature.geometry.type === 'Point') out.stops++;
            }});
            return out;
        }}""")
        assert counts["cells"] > 20 and counts["lines"] >= 12 and counts["stops"] > 0, counts  # 6 people × 2 shifts
        assert "under-patrolled hot spot" in counts["classes"], counts
        text = v.page.evaluate(f"""() => {{
            const map = {THE_MAP};
            let target;
            map.eachLayer(l => {{ if (l.feature && l.feature.properties.c === 'under-patrolled hot spot') target = l; }});
            target.openPopup();
            return document.querySelector('.leaflet-popup-content').innerText;
        }}""")
        for words in ("Under-patrolled hot spot", "Reports", "Dwell minutes", "Dosed windows", "Hours since last visit",
                      " / 10"):  # two days of five 2-hour windows
            assert words in text, words
        v.finish(shots, _name(store_url, "patrols"))
    finally:
        browser.set_extra_http_headers({})
