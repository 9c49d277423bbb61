"""Planning analysis: report frames (store and demo), counts per km², backlog, response times, trends, workload, Gini."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis import analysis as A
from zonechief.report_frames import frame_from_demo, reports_frame
from zonechief.workflow import OPEN_STATUSES

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 12, 31, 12, 0, tzinfo=TZ)
GEOD = pyproj.Geod(ellps="WGS84")


def frame(rows: list[dict]) -> gpd.GeoDataFrame:
    """A report frame from partial rows (defaults: zone A, chief CA, status new, a point in zone A)."""
    full = []
    for i, r in enumerate(rows, start=1):
        d = {"id": i, "created_at": datetime(2025, 3, 1, 10, tzinfo=TZ), "category": "06010", "status": "new",
             "zone_id": "A", "chief_id": "CA", "assigned_at": None, "resolved_at": None,
             "geometry": shapely.Point(114.0, 23.0)}
        d.update(r)
        full.append(d)
    return A.build_frame([d["id"] for d in full], [d["created_at"] for d in full], [d["category"] for d in full],
                         [d["status"] for d in full], [d["status"] in OPEN_STATUSES for d in full],
                         [d["zone_id"] for d in full], [d["chief_id"] for d in full],
                         [d["assigned_at"] for d in full], [d["resolved_at"] for d in full],
                         [d["geometry"] for d in full])


def resolved(hours: float, zone="A", chief="CA", created=datetime(2025, 3, 1, 10, tzinfo=TZ), status="closed"):
    t0 = created + timedelta(minutes=5)
    return {"zone_id": zone, "chief_id": chief, "created_at": created, "status": status, "assigned_at": t0,
            "resolved_at": t0 + timedelta(hours=hours)}


# ------------------------------------------------------------------ Gini
def test_gini_known_values():
    assert A.gini([5, 5, 5, 5]) == pytest.approx(0.0, abs=1e-12)
    for n in (2, 3, 7, 26):
        assert A.gini([0] * (n - 1) + [42]) == pytest.approx((n - 1) / n)
    assert A.gini([1, 3]) == pytest.approx(0.25)  # |1-3| * 2 / (2 * 4 * 2)
    assert np.isnan(A.gini([])) and np.isnan(A.gini([0, 0, 0]))
    with pytest.raises(ValueError):
        A.gini([1, -1])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=40).filter(lambda v: sum(v) > 0),
       st.integers(1, 50))
def test_gini_is_the_mean_absolute_difference_and_scale_free(values, k):
    x = np.array(values, dtype=float)
    n = len(x)
    ref = np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean())
    g = A.gini(x)
    assert g == pytest.approx(ref, abs=1e-12)
    assert 0 <= g <= (n - 1) / n + 1e-12
    assert A.gini(x * k) == pytest.approx(g, abs=1e-12)
    assert A.gini(x[::-1]) == pytest.approx(g, abs=1e-12)


# ------------------------------------------------------------------ areas and counts
def test_zone_areas_are_metric_and_match_geodesic_areas(zone_index):
    areas = A.zone_areas(zone_index)
    for zid, geom in zip(zone_index.zones["zone_id"], zone_index.zones.geometry):
        geodesic = abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6
        assert areas[zid] == pytest.approx(geodesic, rel=2e-3)
    assert areas.sum() == pytest.approx(176.4, abs=0.5)


def test_counts_per_km2_use_the_zone_areas():
    # Two squares of 1 km² and 4 km² drawn in EPSG:4547, handed over in WGS-84.
    x0, y0 = 500_000.0, 2_545_000.0
    zones = gpd.GeoDataFrame({"zone_id": ["A", "B"], "name": ["a", "b"]},
                             geometry=[shapely.box(x0, y0, x0 + 1000, y0 + 1000),
                                       shapely.box(x0 + 2000, y0, x0 + 4000, y0 + 2000)], crs=4547).to_crs(4326)
    f = frame([{"zone_id": "A"}] * 6 + [{"zone_id": "B", "chief_id": "CB"}] * 10 + [{"zone_id": None, "chief_id": None}])
    s = A.summarize(f, "zone", zones).set_index("zone_id")
    assert s.loc["A", "area_km2"] == pytest.approx(1.0, rel=1e-6) and s.loc["B", "area_km2"] == pytest.approx(4.0, rel=1e-6)
    assert s.loc["A", "per_km2"] == pytest.approx(6.0, rel=1e-6) and s.loc["B", "per_km2"] == pytest.approx(2.5, rel=1e-6)
    assert s["reports"].sum() == 16  # the report without a zone is not put anywhere
    p = A.counts_by_period(f, "zone", "M", zones)
    assert p.set_index("zone_id").loc["B", "per_km2"] == pytest.approx(2.5, rel=1e-6)
    c = A.summarize(f, "chief", zones).set_index("chief_id")
    assert c.loc["CB", "area_km2"] == pytest.approx(4.0, rel=1e-6) and c.loc["CB", "zone_ids"] == "B"


def test_open_backlog_counts_new_assigned_and_in_progress():
    f = frame([{"status": s} for s in ("new", "assigned", "in_progress", "resolved", "closed", "rejected",
                                       "duplicate", "assigned")])
    s = A.summarize(f, "zone").set_index("zone_id")
    assert s.loc["A", "open"] == 4 and s.loc["A", "reports"] == 8


def test_periods_are_local_weeks_and_months():
    f = frame([
        {"created_at": datetime(2025, 3, 9, 23, 30, tzinfo=TZ)},                       # Sunday night: week of 3 March
        {"created_at": datetime(2025, 3, 9, 16, 10, tzinfo=ZoneInfo("UTC"))},         # Monday 00:10 local
        {"created_at": datetime(2025, 3, 31, 15, 59, tzinfo=ZoneInfo("UTC"))},        # 23:59 local, March
        {"created_at": datetime(2025, 3, 31, 16, 1, tzinfo=ZoneInfo("UTC"))},         # April locally
    ])
    w = A.counts_by_period(f, "zone", "W").set_index("period")["reports"]
    assert w[pd.Timestamp("2025-03-03")] == 1 and w[pd.Timestamp("2025-03-10")] == 1
    assert w[pd.Timestamp("2025-03-31")] == 2 and w.sum() == 4
    assert len(w) == 5 and w[pd.Timestamp("2025-03-17")] == 0  # empty weeks are listed with 0
    m = A.counts_by_period(f, "zone", "M").set_index("period")["reports"]
    assert m.to_dict() == {pd.Timestamp("2025-03-01"): 3, pd.Timestamp("2025-04-01"): 1}


def test_counts_by_category_shares():
    f = frame([{"category": "06010"}] * 3 + [{"category": "03001"}] + [{"category": "03001", "zone_id": "B"}])
    c = A.counts_by_category(f, "zone", pd.DataFrame({"code": ["06010", "03001"], "name": ["暴露垃圾", "公厕"]}))
    a = c[c.zone_id == "A"].set_index("category")
    assert a.loc["06010", "reports"] == 3 and a.loc["03001", "share"] == pytest.approx(0.25)
    assert a.loc["06010", "category_name"] == "暴露垃圾"
    assert c[c.zone_id == "B"]["share"].tolist() == [1.0]


# ------------------------------------------------------------------ response times
def test_response_time_median_and_p90_match_numpy():
    hours_a = [1.0, 2.5, 3.0, 10.0, 100.0, 7.25]
    hours_b = [5.0]
    rows = [resolved(h) for h in hours_a] + [resolved(h, zone="B", chief="CB") for h in hours_b]
    # not resolved (open, reopened, rejected): no response time
    rows += [{"status": "in_progress", "assigned_at": datetime(2025, 3, 1, 11, tzinfo=TZ)},
             {"status": "rejected"}, {"status": "assigned", "assigned_at": datetime(2025, 3, 1, 11, tzinfo=TZ)}]
    f = frame(rows)
    s = A.summarize(f, "zone").set_index("zone_id")
    assert s.loc["A", "median_h"] == pytest.approx(np.median(hours_a))
    assert s.loc["A", "p90_h"] == pytest.approx(np.percentile(hours_a, 90))
    assert s.loc["A", "resolved"] == 6 and s.loc["A", "reports"] == 9
    assert s.loc["B", "median_h"] == 5.0 and s.loc["B", "p90_h"] == 5.0
    r = A.response_times(f, "chief").set_index("chief_id")
    assert r.loc["CA", "n"] == 6 and r.loc["CA", "mean_h"] == pytest.approx(np.mean(hours_a))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 2000, allow_nan=False), min_size=1, max_size=50))
def test_response_quantiles_match_numpy_for_any_sample(hours):
    f = frame([resolved(h) for h in hours])
    r = A.response_times(f, "zone").iloc[0]
    # timestamps carry microseconds: compare at that resolution
    h = np.round(np.array(hours) * 3600e6) / 3600e6
    assert r["median_h"] == pytest.approx(np.median(h), rel=1e-9, abs=1e-9)
    assert r["p90_h"] == pytest.approx(np.percentile(h, 90), rel=1e-9, abs=1e-9)


def test_response_trend_theil_sen_and_mann_kendall():
    rows = []
    for m in range(6):
        created = datetime(2025, 1 + m, 15, 10, tzinfo=TZ)
        rows += [resolved(4 + 2 * m + d, zone="A", chief="CA", created=created) for d in (-1, 0, 1)]  # +2 h/month
        rows += [resolved(8 + d, zone="B", chief="CB", created=created) for d in (-1, 0, 1)]  # flat
        if m < 2:
            rows.append(resolved(3, zone="C", chief="CC", created=created))
    t = A.response_trend(frame(rows), "zone", "M").set_index("zone_id")
    assert t.loc["A", "slope_h"] == pytest.approx(2.0) and t.loc["A", "trend"] == "slower"
    assert t.loc["A", "mk_p"] < 0.05 and t.loc["A", "slope_low"] <= 2.0 <= t.loc["A", "slope_high"]
    assert t.loc["A", "first_median_h"] == pytest.approx(4.0) and t.loc["A", "last_median_h"] == pytest.approx(14.0)
    assert t.loc["B", "slope_h"] == pytest.approx(0.0) and t.loc["B", "trend"] == "no trend"
    assert t.loc["C", "trend"] == "too few periods" and np.isnan(t.loc["C", "slope_h"])


def test_response_trend_skips_empty_periods_in_its_time_axis():
    # months 0, 1, 4, 5: the slope is per month, not per observed period
    rows = [resolved(10 + 3 * m, created=datetime(2025, 1 + m, 10, tzinfo=TZ)) for m in (0, 1, 4, 5)]
    t = A.response_trend(frame(rows), "zone", "M").iloc[0]
    assert t["periods"] == 4 and t["slope_h"] == pytest.approx(3.0)


# ------------------------------------------------------------------ workload
def test_workload_and_balance_include_chiefs_without_reports():
    rows = ([{"chief_id": "C1", "created_at": datetime(2025, 5, 2, tzinfo=TZ)}] * 6
            + [{"chief_id": "C2", "created_at": datetime(2025, 5, 3, tzinfo=TZ)}] * 2
            + [{"chief_id": "C2", "created_at": datetime(2025, 7, 3, tzinfo=TZ)}] * 4)
    f = frame(rows)
    w = A.workload(f, "M", chiefs=["C1", "C2", "C3"])
    assert w.index.tolist() == ["C1", "C2", "C3"] and len(w.columns) == 3  # May, June (empty), July
    assert w.loc["C1"].tolist() == [6, 0, 0] and w.loc["C3"].tolist() == [0, 0, 0]
    b = A.workload_balance(f, "M", chiefs=["C1", "C2", "C3"]).set_index("period")
    may = pd.Timestamp("2025-05-01")
    assert b.loc[may, "gini"] == pytest.approx(A.gini([6, 2, 0]))
    assert b.loc[pd.Timestamp("2025-07-01"), "gini"] == pytest.approx(2 / 3)  # one of three holds all
    assert np.isnan(b.loc[pd.Timestamp("2025-06-01"), "gini"]) and b.loc[may, "max"] == 6


# ------------------------------------------------------------------ demo frames
@pytest.fixture(scope="module")
def demo(zone_index):
    from zonechief.demo import generate_reports

    reps = generate_reports(3000, seed=5, now=NOW, days=250, index=zone_index)  # spans the 2025-07-01 handover
    return reps, frame_from_demo(reps, zone_index)


def test_demo_frame_columns_and_chief_in_force(demo, zone_index):
    reps, f = demo
    assert list(f.columns) == A.COLUMNS and f.crs.to_epsg() == 4326 and len(f) == 3000
    assert f["id"].tolist() == list(range(1, 3001))
    assert str(f["created_at"].dt.tz) == "Asia/Shanghai"
    assert f["zone_id"].notna().all()
    # chief: the one the roster has in force on the local day (ZMT-03 changed chief on 2025-07-01)
    for i in range(0, 3000, 7):
        day = reps[i]["created_at"].date()
        c = zone_index.roster.chiefs_by_zone(day).get(f["zone_id"].iat[i])
        assert f["chief_id"].iat[i] == (c.person_id if c else None)
    z3 = f[f.zone_id == "ZMT-03"]
    assert {"ZMT-C10", "ZMT-C03"} <= set(z3["chief_id"])
    # resolution times only for resolved/closed reports, after assignment
    res = f["resolved_at"].notna()
    assert set(f.loc[res, "status"]) <= {"resolved", "closed"}
    assert (f.loc[res, "resolved_at"] > f.loc[res, "assigned_at"]).all()
    assert not f.loc[f.status.isin(["new", "rejected", "duplicate"]), "resolved_at"].notna().any()


def test_summaries_of_demo_data_add_up_and_carry_zone_geometry(demo, zone_index):
    _, f = demo
    z = A.summarize(f, "zone", zone_index)
    assert isinstance(z, gpd.GeoDataFrame) and z.crs.to_epsg() == 4326
    assert len(z) == len(zone_index.zones) and z["reports"].sum() == len(f)
    assert z["open"].sum() == f["status"].isin(["new", "assigned", "in_progress"]).sum()
    zg = zone_index.zones.set_index("zone_id").geometry
    assert all(g.equals(zg[k]) for k, g in zip(z["zone_id"], z.geometry))
    np.testing.assert_allclose(z["per_km2"], z["reports"] / A.zone_areas(zone_index).reindex(z["zone_id"]).to_numpy())
    c = A.summarize(f, "chief", zone_index)
    assert c["reports"].sum() == f["chief_id"].notna().sum() and c.geometry.notna().all()
    assert c.set_index("chief_id").loc["ZMT-C03", "zone_ids"] == "ZMT-03"
    per = A.counts_by_period(f, "chief", "W")
    assert per["reports"].sum() == f["chief_id"].notna().sum()
    b = A.workload_balance(f, "M", chiefs=zone_index.roster.people("chief")["person_id"])
    assert b["reports"].sum() == f["chief_id"].notna().sum() and b["gini"].between(0, 1).all()


# ------------------------------------------------------------------ the store
def test_reports_frame_from_the_store_matches_the_demo_frame(store_url, zone_index):
    from zonechief.services import Services

    svc = Services(index=zone_index, database_url=store_url).reports
    try:
        _check_store_frame(svc, zone_index)
    finally:
        svc.db.engine.dispose()  # the fixture drops the database after this module


def _check_store_frame(svc, zone_index):
    from zonechief.bulk import seed_demo
    from zonechief.demo import generate_reports

    res = seed_demo(svc, 400, seed=9, now=NOW)
    assert res.inserted >= 380
    got = reports_frame(svc)
    assert list(got.columns) == A.COLUMNS and got.crs.to_epsg() == 4326 and len(got) == res.inserted
    assert str(got["created_at"].dt.tz) == "Asia/Shanghai"
    reps = generate_reports(400, seed=9, now=NOW, index=zone_index)
    demo = frame_from_demo(reps, zone_index)
    # Reports given as WGS-84 coordinates are stored at their true point: everything must agree.
    key = {f"demo-9-{i}": i for i in range(400)}
    with svc.db.engine.connect() as conn:
        import sqlalchemy as sa

        from store.models import Report

        ids = dict(conn.execute(sa.select(Report.__table__.c.id, Report.__table__.c.idempotency_key)).all())
    got["k"] = got["id"].map(ids).map(key)
    wgs = [i for i, d in enumerate(reps) if d["location"].get("crs") == "wgs84"]
    assert len(wgs) > 30
    g = got.set_index("k").loc[wgs]
    d = demo.iloc[wgs]
    for col in ("category", "status", "zone_id", "chief_id"):
        assert g[col].tolist() == d[col].tolist(), col
    for col in ("created_at", "assigned_at", "resolved_at"):
        a, b = g[col].reset_index(drop=True), d[col].reset_index(drop=True)
        assert (a.isna() == b.isna()).all() and (a[a.notna()] == b[b.notna()]).all(), col
    assert all(p.equals_exact(q, 1e-9) for p, q in zip(g.geometry, d.geometry))
    # since/until select on creation time, [since, until)
    cut = got["created_at"].sort_values().iloc[100].to_pydatetime()
    assert len(reports_frame(svc.db, since=cut)) + len(reports_frame(svc.db, until=cut)) == len(got)
    assert (reports_frame(svc.db, since=cut)["created_at"] >= cut).all()
    empty = reports_frame(svc.db, since=NOW + timedelta(days=1))
    assert empty.empty and list(empty.columns) == A.COLUMNS
    assert A.summarize(empty, "zone")["reports"].sum() == 0
