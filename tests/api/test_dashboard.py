"""The dashboard's tables, charts and exports (zonechief.dashboard, api/dashboard.py) on both stores.

Every number is checked against pandas on the same seeded reports (zonechief.report_frames,
gis.satisfaction, gis.analysis), with the maps' filters; exports are read back.
"""
from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from gis import analysis as A
from gis import satisfaction as SAT
from gis.localtime import LOCAL
from maps.aggregate import ReportFilter, period_label, period_of
from zonechief.dashboard import TABLES, dashboard_tables, median_rank_interval
from zonechief.report_frames import reports_frame
from zonechief.workflow import OPEN_STATUSES

NOW = datetime(2025, 9, 30, 12, tzinfo=LOCAL)
FILTERS = {
    "all": ({}, ReportFilter()),
    "qishi-closed-since": ({"town": "企石镇", "status": "closed,resolved", "since": "2025-07-01"},
                           ReportFilter(town="企石镇", statuses=("closed", "resolved"), since=datetime(2025, 7, 1))),
    "zones-categories-until": ({"zone": ["ZMT-01", "QS-15"], "category": "06010,03001", "until": "2025-08-31"},
                               ReportFilter(zone_ids=("ZMT-01", "QS-15"), categories=("06010", "03001"),
                                            until=datetime(2025, 9, 1))),
}


@pytest.fixture(scope="module")
def app(store_url, index):
    from api.app import create_app
    from zonechief.bulk import seed_demo

    app = create_app(index=index, database_url=store_url)
    seed_demo(app.state.services.reports, 3000, seed=7, now=NOW)
    return app


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def frame(app):
    f = reports_frame(app.state.services.db)
    return f[f.geometry.notna() & ~f.geometry.is_empty]  # the maps (and the dashboard) count reports with a point


def _select(frame, flt: ReportFilter, index):
    keep = np.ones(len(frame), dtype=bool)
    if flt.since is not None:
        keep &= (frame["created_at"] >= flt.since).to_numpy()
    if flt.until is not None:
        keep &= (frame["created_at"] < flt.until).to_numpy()
    if flt.categories:
        keep &= frame["category"].isin(flt.categories).to_numpy()
    if flt.statuses:
        keep &= frame["status"].isin(flt.statuses).to_numpy()
    scope = flt.zone_scope(index)
    if scope is not None:
        keep &= frame["zone_id"].astype(object).isin(scope).to_numpy()
    return frame[keep]


def _hours(f):
    r = f[f["chief_id"].notna() & f["resolved_at"].notna()]
    return r, ((r["resolved_at"] - r["created_at"]).dt.total_seconds() / 3600.0).to_numpy()


@pytest.mark.parametrize("case", list(FILTERS))
def test_tables_match_pandas(app, frame, case):
    svc = app.state.services
    flt = FILTERS[case][1]
    t = dashboard_tables(svc.db, svc.index, flt)
    f = _select(frame, flt, svc.index)
    assert len(f) > 20

    # Reports per local week and category.
    weeks = period_of(np.array([int(ts.timestamp()) for ts in f["created_at"]], dtype=np.int64), "week")
    ref = (pd.DataFrame({"week": [period_label(w, "week")[:10] for w in weeks], "category": f["category"].to_numpy()})
           .value_counts().sort_index())
    got = t.weekly.set_index(["week", "category"])["reports"].sort_index()
    assert got.to_dict() == ref.to_dict()

    # Per chief: reports, open, and time to fix (n and median exactly as gis.satisfaction.time_to_fix).
    has_chief = f[f["chief_id"].notna()]
    chief_ids = has_chief["chief_id"].astype(str)
    assert t.chiefs["reports"].to_dict() == chief_ids.value_counts().to_dict()
    ref_open = has_chief["status"].isin(OPEN_STATUSES).groupby(chief_ids).sum()
    assert t.chiefs["open"].to_dict() == ref_open.astype(int).to_dict()
    ttf = SAT.time_to_fix(f, "chief")
    fixed = t.chiefs[t.chiefs["n_fixed"] > 0]
    assert fixed["n_fixed"].to_dict() == ttf["n"].to_dict()
    np.testing.assert_allclose(fixed["median_h"].to_numpy(), ttf.loc[fixed.index, "median_h"].to_numpy(), rtol=1e-9)
    # The interval: the bootstrap interval of the median's rank, read off the sorted hours (percentile_cont).
    r, hours = _hours(f)
    for cid, x in pd.Series(hours).groupby(r["chief_id"].astype(str).to_numpy()):
        x = np.sort(x.to_numpy())
        lo, hi = median_rank_interval(len(x), cid)
        row = t.chiefs.loc[cid]
        if len(x) < SAT.MIN_N:
            assert np.isnan(row["low_h"]) and np.isnan(row["high_h"])
            continue
        assert row["low_h"] == pytest.approx(np.interp(lo, np.arange(len(x)), x), rel=1e-9)
        assert row["high_h"] == pytest.approx(np.interp(hi, np.arange(len(x)), x), rel=1e-9)
        assert row["low_h"] <= row["median_h"] <= row["high_h"]
        # ...and close to time_to_fix's resampled interval: within one order statistic of it.
        ref_row = ttf.loc[cid]
        for ours, theirs in ((row["low_h"], ref_row["low_h"]), (row["high_h"], ref_row["high_h"])):
            k = np.searchsorted(x, theirs)
            near = x[max(k - 2, 0):k + 2]
            assert near.min() <= ours <= near.max(), (cid, ours, theirs)

    # Satisfaction per zone: gis.satisfaction.satisfaction, column for column.
    ref_sat = SAT.satisfaction(f, "zone")
    got_sat = t.satisfaction.drop(columns="zone_name")
    pd.testing.assert_frame_equal(got_sat.sort_index(), ref_sat.sort_index(), check_names=False, check_index_type=False)

    # Workload: every chief in force over the zones in scope (zero for those without a report), and the Gini.
    people = svc.index.roster.people("chief")
    scope = flt.zone_scope(svc.index)
    in_scope = [p for p, z in zip(people["person_id"], people["zone_ids"]) if scope is None or set(z.split(";")) & set(scope)]
    counts = chief_ids.value_counts().reindex(sorted(set(in_scope) | set(chief_ids)), fill_value=0)
    assert t.workload["reports"].to_dict() == counts.to_dict()
    assert t.gini == pytest.approx(A.gini(counts.to_numpy()))
    assert t.workload["share_reports"].iloc[-1] == pytest.approx(1.0)
    assert t.workload["reports"].is_monotonic_increasing


def test_charts_endpoint_gives_valid_vega_lite_with_inline_data(client, app, frame):
    import altair as alt

    r = client.get("/v1/dashboard/charts", params={"town": "樟木头镇"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["charts"]) == {"weekly", "backlog", "time_to_fix", "satisfaction", "workload"}
    zmt = _select(frame, ReportFilter(town="樟木头镇"), app.state.services.index)
    assert body["reports"] == len(zmt)
    assert any("樟木头镇" in line for line in body["filters"])
    for name, spec in body["charts"].items():
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6"), name
        assert "url" not in str(spec.get("data", "")), name  # inline values only: the page fetches nothing else
        alt.Chart.from_dict(spec) if "layer" not in spec else alt.LayerChart.from_dict(spec)  # validates
    spec = body["charts"]["backlog"]
    backlog = spec["datasets"][spec["data"]["name"]]
    assert all(row["片长 chief"].startswith("ZMT-") for row in backlog)
    assert f"{body['gini']:.3f}" in body["charts"]["workload"]["title"]
    # The page's two halves: all but time to fix, and time to fix alone, the same charts as "all".
    main = client.get("/v1/dashboard/charts", params={"town": "樟木头镇", "part": "main"}).json()
    ttf = client.get("/v1/dashboard/charts", params={"town": "樟木头镇", "part": "time_to_fix"}).json()
    assert set(main["charts"]) == set(body["charts"]) - {"time_to_fix"} and set(ttf["charts"]) == {"time_to_fix"}
    assert main["charts"]["weekly"] == body["charts"]["weekly"] and ttf["charts"]["time_to_fix"] == body["charts"]["time_to_fix"]
    assert main["reports"] == ttf["reports"] == body["reports"] and main["gini"] == body["gini"]


def _texts(got, want):
    """An empty text cell reads back as missing: text columns as text again."""
    for c in want.columns:
        if not pd.api.types.is_numeric_dtype(want[c]):
            got[c] = got[c].fillna("").astype(str)
    return got


@pytest.mark.parametrize("case", list(FILTERS))
def test_exports_round_trip(client, app, case):
    params, flt = FILTERS[case]
    svc = app.state.services
    t = dashboard_tables(svc.db, svc.index, flt, dict(zip(svc.categories["code"], svc.categories["name"])))
    for name in TABLES:
        want = t.table(name)
        want = want.reset_index() if want.index.name else want
        r = client.get(f"/v1/dashboard/tables/{name}.csv", params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the Chinese right
        assert f"zonechief-{name}.csv" in r.headers["content-disposition"]
        got = _texts(pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype={"category": str, "week": str}), want)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False, check_exact=False, rtol=1e-9)
        x = client.get(f"/v1/dashboard/tables/{name}.xlsx", params=params)
        assert x.status_code == 200 and x.content[:2] == b"PK"
        got_x = _texts(pd.read_excel(io.BytesIO(x.content), sheet_name=name, dtype={"category": str, "week": str}), want)
        pd.testing.assert_frame_equal(got_x, want.reset_index(drop=True), check_dtype=False, check_exact=False, rtol=1e-9)
    if case == "all":
        assert "暴露垃圾" in client.get("/v1/dashboard/tables/weekly.csv").content.decode("utf-8-sig")


def test_layers(client, app, frame):
    idx = app.state.services.index
    heat = client.get("/v1/dashboard/layers/heat", params={"town": "企石镇", "category": "06010"}).json()
    want = _select(frame, ReportFilter(town="企石镇", categories=("06010",)), idx)
    assert heat["reports"] == len(want) == sum(p[2] for p in heat["points"])
    zones = client.get("/v1/dashboard/layers/zones", params={"town": "企石镇"}).json()
    assert zones["type"] == "FeatureCollection" and len(zones["features"]) == 20
    assert all(f["properties"]["chief"] for f in zones["features"])
    hot = client.get("/v1/dashboard/layers/hotspots", params={"permutations": 99}).json()
    assert hot["type"] == "FeatureCollection"
    assert all(f["properties"]["class"] != "not significant" for f in hot["features"])


def test_page_and_errors(client):
    r = client.get("/dashboard")
    assert r.status_code == 200 and "规划看板" in r.text
    csp = r.headers["content-security-policy"]
    assert "unsafe-eval" not in csp and "script-src 'self'" in csp
    assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text
    for href in ("vendor/vega/vega.min.js", "vendor/vega-lite/vega-lite.min.js", "vendor/vega-embed/vega-embed.min.js",
                 "dashboard/dashboard.js"):
        assert href in r.text
        assert client.get("/static/" + href).status_code == 200
    assert client.get("/v1/dashboard/tables/nope.csv").status_code == 404
    assert client.get("/v1/dashboard/tables/weekly.pdf").status_code == 422
    bad = client.get("/v1/dashboard/charts", params={"status": "lost"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/dashboard/charts", params={"category": "99999"}).status_code == 422
    assert client.get("/v1/dashboard/charts", params={"since": "2025-09-01", "until": "2025-08-01"}).status_code == 422
    assert client.get("/v1/dashboard/charts", params={"town": "北京"}).status_code == 422


def test_cache_follows_the_data(client, app):
    from zonechief.dashboard import cached_tables

    svc = app.state.services
    flt = ReportFilter(town="企石镇")
    first = cached_tables(svc.db, svc.index, flt)
    assert cached_tables(svc.db, svc.index, flt) is first  # unchanged store: the same tables
    before = client.get("/v1/dashboard/charts", params={"town": "企石镇"}).json()["reports"]
    assert before == int(first.weekly["reports"].sum())
    lon, lat = svc.index.zones.set_index("zone_id").loc["QS-02"].geometry.representative_point().coords[0]
    r = client.post("/v1/reports", json={"source": "gps", "category": "06010", "description": "暴露垃圾 cache test",
                                         "location": {"lon": lon, "lat": lat, "crs": "wgs84"}})
    assert r.status_code == 201, r.text
    again = cached_tables(svc.db, svc.index, flt)
    assert again is not first and int(again.weekly["reports"].sum()) == before + 1
    assert client.get("/v1/dashboard/charts", params={"town": "企石镇"}).json()["reports"] == before + 1
