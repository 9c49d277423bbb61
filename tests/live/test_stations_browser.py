"""/maps/stations in a real headless Chromium: existing stations, proposed sites, rings and uncovered demand
are drawn, and no request leaves the origin (tests/live/test_maps_browser.py's Visit blocks and records them)."""
from __future__ import annotations

from datetime import datetime

import pytest

from tests.helpers import LiveServer
from tests.live.test_maps_browser import Visit, browser  # noqa: F401  (the Chromium fixture and the page visit)

pytestmark = pytest.mark.filterwarnings("ignore:Constructing LpVariable:DeprecationWarning")
N_QS_ZONES = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from api.app import create_app
    from zonechief.bulk import seed_demo

    app = create_app(database_url=f"sqlite:///{tmp_path_factory.mktemp('stations') / 'z.sqlite'}")
    seed_demo(app.state.services.reports, 2000, seed=3, now=datetime.fromisoformat("2025-09-30T12:00:00+08:00"))
    with LiveServer(app) as srv:
        yield srv


def test_stations_map_renders_offline(browser, server, shots):  # noqa: F811
    v = Visit(browser, server.url + "/maps/stations?town=企石镇&grid=500&add=2&radius=800")
    assert v.response.status == 200
    # zone outlines + 7 rings (5 existing, 2 proposed) + 7 station markers + at least one uncovered cell
    n = v.paths_at_least(N_QS_ZONES + 7 + 7 + 1)
    assert n >= N_QS_ZONES + 15
    legend = v.legend()
    assert "Proposed (2)" in legend and "Existing (5)" in legend and "Uncovered demand cells" in legend
    assert "optimal" in legend and "illustrative" in legend
    # the proposed sites' markers are painted red
    reds = v.page.evaluate("() => [...document.querySelectorAll('.leaflet-overlay-pane svg path')]"
                           ".filter(p => p.getAttribute('fill') === '#d62f27').length")
    assert reds >= 2
    v.finish(shots, "stations")


def test_stations_index_link(browser, server, shots):  # noqa: F811
    v = Visit(browser, server.url + "/", is_map=False)
    assert v.page.locator("a[href='maps/stations']").count() == 1
    v.finish(shots, "stations-index")
