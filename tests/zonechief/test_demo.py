"""Tests for gis.demo: synthetic citizen reports."""
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pyproj
import pytest

from gis.crs import gcj02_to_wgs84
from zonechief.demo import generate_reports, load_categories

try:
    from zoneinfo import ZoneInfo

    TZ = ZoneInfo("Asia/Shanghai")
except Exception:  # pragma: no cover
    from datetime import timezone

    TZ = timezone(timedelta(hours=8))

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=TZ)
DAYS = 180
KEYS = {"created_at", "source", "category", "description", "location", "true_lon", "true_lat",
        "reporter", "photo_url", "idempotency_key", "history", "feedback"}
ALLOWED = {
    "new": {"assigned", "rejected", "duplicate"},
    "assigned": {"in_progress", "rejected", "duplicate"},
    "in_progress": {"resolved"},
    "resolved": {"closed", "in_progress"},  # reopened by a "not fixed" answer
    "closed": set(),
    "rejected": set(),
    "duplicate": set(),
}
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def categories():
    return load_categories()


@pytest.fixture(scope="module")
def reports(index):
    return generate_reports(5000, seed=7, now=NOW, index=index)


@pytest.fixture(scope="module")
def many(index):
    return generate_reports(20_000, seed=3, now=NOW, index=index)


# --------------------------------------------------------------------------- basics


def test_load_categories_keeps_leading_zeros(categories):
    assert len(categories) > 100
    assert categories["code"].str.fullmatch(r"\d{5}").all()
    assert "03001" in set(categories["code"])
    assert categories["code"].is_unique
    assert (categories["demo_weight"] >= 0).all()


def test_deterministic_for_same_seed(index):
    a = generate_reports(300, seed=11, now=NOW, index=index)
    b = generate_reports(300, seed=11, now=NOW, index=index)
    assert a == b


def test_different_seeds_differ(index):
    a = generate_reports(300, seed=1, now=NOW, index=index)
    b = generate_reports(300, seed=2, now=NOW, index=index)
    assert a != b
    assert [r["true_lon"] for r in a] != [r["true_lon"] for r in b]
    assert [r["created_at"] for r in a] != [r["created_at"] for r in b]


@pytest.mark.parametrize("n", [0, 1, 2, 17, 250])
def test_n_honoured(index, n):
    out = generate_reports(n, seed=5, now=NOW, index=index)
    assert len(out) == n
    assert [r["idempotency_key"] for r in out] == [f"demo-5-{i}" for i in range(n)]


def test_negative_n_rejected(index):
    with pytest.raises(ValueError):
        generate_reports(-1, now=NOW, index=index)


def test_all_keys_present(reports):
    for r in reports:
        assert set(r) == KEYS


def test_sources_and_locations(reports, facilities, index):
    counts = Counter(r["source"] for r in reports)
    assert set(counts) == {"service_code", "gps", "address", "staff"}
    n = len(reports)
    for src, share in {"service_code": 0.2, "gps": 0.45, "address": 0.15, "staff": 0.2}.items():
        assert abs(counts[src] / n - share) < 0.04, (src, counts)
    codes = set(facilities["service_code"])
    fac_xy = {c: (x, y) for c, x, y in zip(facilities["service_code"], facilities.geometry.x, facilities.geometry.y)}
    addresses = {f"{t}{s}" for t, s in zip(index.units["town"], index.units["village_short_name"])}
    gps_crs = Counter()
    for r in reports:
        loc = r["location"]
        if r["source"] == "service_code":
            assert set(loc) == {"service_code"}
            assert loc["service_code"] in codes
            assert (r["true_lon"], r["true_lat"]) == pytest.approx(fac_xy[loc["service_code"]], abs=1e-9)
        elif r["source"] == "address":
            assert set(loc) == {"address"}
            assert loc["address"] in addresses
        else:
            assert set(loc) == {"lon", "lat", "crs"}
            if r["source"] == "staff":
                assert loc["crs"] == "wgs84"
            gps_crs[loc["crs"]] += r["source"] == "gps"
            if loc["crs"] == "wgs84":
                assert (loc["lon"], loc["lat"]) == (r["true_lon"], r["true_lat"])
    share = gps_crs["gcj02"] / (gps_crs["gcj02"] + gps_crs["wgs84"])
    assert 0.62 < share < 0.78


def test_reporter_photo_description(reports):
    photos = 0
    for r in reports:
        if r["source"] == "staff":
            assert r["reporter"] is None
        else:
            assert set(r["reporter"]) == {"name", "phone"}
            assert r["reporter"]["name"]
            assert len(r["reporter"]["phone"]) == 11 and r["reporter"]["phone"].startswith("138")
            assert r["reporter"]["phone"].isdigit()
        if r["photo_url"] is not None:
            photos += 1
            assert r["photo_url"].startswith("https://example.invalid/photos/")
            assert r["photo_url"].endswith(".jpg")
        assert isinstance(r["description"], str) and 2 < len(r["description"]) < 60
    assert 0.25 < photos / len(reports) < 0.35


def test_description_names_category_and_place(reports, categories, index):
    names = dict(zip(categories["code"], categories["name"]))
    villages = set(index.units["village_short_name"])
    for r in reports:
        assert names[r["category"]] in r["description"]
        if r["source"] == "address":
            assert any(v in r["description"] for v in villages)


# --------------------------------------------------------------------------- time and workflow


def test_created_at_in_range_and_aware(reports):
    start = NOW - timedelta(days=DAYS)
    for r in reports:
        t = r["created_at"]
        assert t.tzinfo is not None and t.utcoffset() == timedelta(hours=8)
        assert start <= t <= NOW


def test_days_parameter(index):
    out = generate_reports(500, seed=1, now=NOW, days=3, index=index)
    assert all(NOW - timedelta(days=3) <= r["created_at"] <= NOW for r in out)


def test_naive_now_is_shanghai_time(index):
    a = generate_reports(50, seed=4, now=NOW.replace(tzinfo=None), index=index)
    b = generate_reports(50, seed=4, now=NOW, index=index)
    assert a == b


def test_history_ordered_allowed_and_not_in_future(reports):
    for r in reports:
        h = r["history"]
        assert h[0] == {"status": "new", "at": r["created_at"]}
        times = [e["at"] for e in h]
        assert times == sorted(times)
        assert all(t <= NOW for t in times)
        for a, b in zip(h, h[1:]):
            assert b["status"] in ALLOWED[a["status"]], [e["status"] for e in h]
        if len(h) > 1 and h[1]["status"] == "assigned":
            assert timedelta(0) < h[1]["at"] - h[0]["at"] < timedelta(hours=2)


def test_outcome_shares_and_progress_with_age(many):
    final = Counter(r["history"][-1]["status"] for r in many)
    n = len(many)
    assert 0.02 < final["rejected"] / n < 0.04
    assert 0.012 < final["duplicate"] / n < 0.03
    old = [r for r in many if NOW - r["created_at"] > timedelta(days=30)]
    recent = [r for r in many if NOW - r["created_at"] < timedelta(hours=6)]
    assert old and recent
    done_old = np.mean([r["history"][-1]["status"] in {"closed", "rejected", "duplicate"} for r in old])
    done_recent = np.mean([r["history"][-1]["status"] in {"closed", "rejected", "duplicate"} for r in recent])
    assert done_old > 0.99
    assert done_recent < 0.5


def test_weekly_rhythm(many):
    by_day = Counter(r["created_at"].weekday() for r in many)
    weekday = np.mean([by_day[d] for d in range(5)])
    weekend = np.mean([by_day[d] for d in (5, 6)])
    assert 0.45 < weekend / weekday < 0.75


def test_daily_rhythm(many):
    by_hour = Counter(r["created_at"].hour for r in many)
    night = np.mean([by_hour[h] for h in range(0, 6)])
    morning = np.mean([by_hour[h] for h in (9, 10, 11)])
    afternoon = np.mean([by_hour[h] for h in (14, 15, 16)])
    lunch = by_hour[12] + by_hour[13]
    assert night * 5 < morning
    assert night * 5 < afternoon
    assert lunch / 2 < morning


# --------------------------------------------------------------------------- categories


def test_categories_exist_and_weighting_shows(reports, categories):
    known = set(categories["code"])
    counts = Counter(r["category"] for r in reports)
    assert set(counts) <= known
    top = categories.sort_values("demo_weight", ascending=False)["code"].iloc[0]
    assert top in [c for c, _ in counts.most_common(5)]


def test_toilet_service_codes_mostly_toilet_categories(reports, facilities):
    toilets = set(facilities.loc[facilities["kind"] == "public_toilet", "service_code"])
    cats = [r["category"] for r in reports
            if r["source"] == "service_code" and r["location"]["service_code"] in toilets]
    assert len(cats) > 100
    assert np.mean([c == "03001" for c in cats]) > 0.5
    assert np.mean([c.startswith("03") for c in cats]) > 0.9


def test_custom_categories_frame(index, categories):
    sub = categories[categories["major_code"] == "06"].copy()
    sub["code"] = sub["code"].astype(int)  # leading zeros lost: must be restored
    out = generate_reports(300, seed=2, now=NOW, index=index, categories=sub)
    allowed = set(categories.loc[categories["major_code"] == "06", "code"])
    assert {r["category"] for r in out} <= allowed


# --------------------------------------------------------------------------- space


def test_every_true_point_inside_a_zone(index, many):
    lon = np.array([r["true_lon"] for r in many])
    lat = np.array([r["true_lat"] for r in many])
    res = index.assign(lon, lat)
    assert res["status"].isin(["inside", "boundary"]).all(), res["status"].value_counts()
    assert set(res["town"]) == {"企石镇", "樟木头镇"}
    assert res["zone_id"].nunique() == len(index.zones)


def test_address_point_in_named_village(index, reports):
    rs = [r for r in reports if r["source"] == "address"]
    res = index.assign([r["true_lon"] for r in rs], [r["true_lat"] for r in rs])
    short = dict(zip(index.units["village_name"], index.units["village_short_name"]))
    for r, town, village in zip(rs, res["town"], res["village_name"]):
        assert r["location"]["address"] == f"{town}{short[village]}"


def test_gcj02_locations_convert_back(many):
    rs = [r for r in many if r["location"].get("crs") == "gcj02"]
    assert len(rs) > 1000
    lon, lat = gcj02_to_wgs84([r["location"]["lon"] for r in rs], [r["location"]["lat"] for r in rs])
    tlon = np.array([r["true_lon"] for r in rs])
    tlat = np.array([r["true_lat"] for r in rs])
    _, _, dist = GEOD.inv(lon, lat, tlon, tlat)
    assert dist.max() < 0.5
    # and GCJ-02 really is offset (hundreds of metres in Dongguan)
    _, _, raw = GEOD.inv([r["location"]["lon"] for r in rs], [r["location"]["lat"] for r in rs], tlon, tlat)
    assert raw.min() > 100


def test_spatial_clusters(index, many, facilities):
    """Busy places (town centres, facilities) get far more reports than their area implies."""
    rs = [r for r in many if r["source"] != "service_code"]
    lon = np.array([r["true_lon"] for r in rs])
    lat = np.array([r["true_lat"] for r in rs])
    fx, fy = facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy()
    _, _, d = GEOD.inv(np.repeat(lon, len(fx)), np.repeat(lat, len(fx)),
                       np.tile(fx, len(lon)), np.tile(fy, len(lon)))
    near = (d.reshape(len(lon), len(fx)) < 250).any(axis=1).mean()
    # 20 discs of 250 m are ~4 km² of ~200 km², i.e. ~2 % of the uniform spread
    assert near > 0.15
    zone = index.assign(lon, lat)["zone_id"]
    share = zone.value_counts(normalize=True)
    assert share["ZMT-01"] > share.drop("ZMT-01").max()


def test_service_codes_reference_facilities(many, facilities):
    codes = set(facilities["service_code"])
    used = {r["location"]["service_code"] for r in many if r["source"] == "service_code"}
    assert used and used <= codes


def test_hundred_thousand(index):
    out = generate_reports(100_000, seed=9, now=NOW, index=index)
    assert len(out) == 100_000
    assert out[-1]["idempotency_key"] == "demo-9-99999"
    assert set(out[0]) == KEYS
