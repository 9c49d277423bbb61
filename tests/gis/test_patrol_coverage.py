"""gis.patrol_coverage and gis.patrol_stops (issue 17): hand-built patrols with known stops, visits, dwell and
Koper dose (exact numbers); the compiled stop detector against movingpandas itself (hypothesis); demand within
200 m against brute force; the dose share never falls when a qualifying stop is added."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis import hotspots
from gis.boundaries import METRIC
from gis.crs import from_wgs84, to_wgs84
from gis.localtime import LOCAL
from gis.patrol_coverage import CoverageParams, Fixes, _near_tracks, coverage, patrol_windows, prepare_fixes
from gis.patrol_stops import detect_stops, movingpandas_stops, segments

DAY = datetime(2026, 11, 2, tzinfo=LOCAL)
SINCE, UNTIL = DAY, DAY + timedelta(days=1)
PARAMS = CoverageParams(dose_target=0.4, over_min_dwell_min=30)


@pytest.fixture(scope="module")
def cells(zone_index):
    return hotspots.grid(zone_index, 250)


@pytest.fixture(scope="module")
def place(zone_index, cells):
    """Five cells in a row (west to east) whose centres lie in one zone, and a cell 2 km or more away."""
    c = shapely.centroid(cells.geometry.values)
    cx, cy = shapely.get_x(c), shapely.get_y(c)
    lon, lat = to_wgs84(cx, cy, METRIC)
    unit, _ = zone_index.locate(lon, lat)
    zone = np.where(unit >= 0, zone_index.units["zone_id"].to_numpy()[np.clip(unit, 0, None)], None)
    at = {(r, k): i for i, (r, k) in enumerate(zip(cells["row"], cells["col"]))}
    for i, (r, k) in enumerate(zip(cells["row"], cells["col"])):
        run = [at.get((r, k + d)) for d in range(5)]
        if zone[i] and str(zone[i]).startswith("QS") and all(j is not None and zone[j] == zone[i] for j in run):
            far = next(j for j in range(len(cells)) if zone[j] and np.hypot(cx[j] - cx[i], cy[j] - cy[i]) > 2000)
            return {"h1": run[0], "q": run[2], "h2": run[4], "far": far, "zone": zone[i], "x": cx, "y": cy}
    raise AssertionError("no five cells in a row in one zone")


def _stay(pid, person, team, x, y, start: datetime, minutes: float, step_s: int = 10):
    """Fixes at one place; the last 1 mm east, as movingpandas drops segments of no length at all."""
    n = int(round(minutes * 60 / step_s)) + 1
    t = [start + timedelta(seconds=k * step_s) for k in range(n)]
    return [(pid, person, team, tt, x + 1e-3 * (k == n - 1), y) for k, tt in enumerate(t)]


def _frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["patrol_id", "person_id", "team", "t", "x", "y"])
    lon, lat = to_wgs84(df["x"].to_numpy(float), df["y"].to_numpy(float), METRIC)
    return pd.DataFrame({"patrol_id": df["patrol_id"].astype("int64"), "person_id": df["person_id"], "team": df["team"],
                         "t": pd.to_datetime(df["t"], utc=True), "lon": lon, "lat": lat})


def _hand_built(place):
    x, y = place["x"], place["y"]
    h1, q, h2 = (x[place["h1"]], y[place["h1"]]), (x[place["q"]], y[place["q"]]), (x[place["h2"]], y[place["h2"]])
    at = lambda h, m: DAY.replace(hour=h, minute=m)  # noqa: E731
    rows = (_stay(1, "P1", "T1", *h1, at(8, 30), 12)      # a 12-minute stop at H1: a dose in 08–10
            + _stay(1, "P1", "T1", *q, at(8, 43), 30)     # 60 s later at Q (500 m): 30 minutes, too long for a dose
            + _stay(1, "P1", "T1", *h2, at(9, 14), 5)     # 5 minutes at H2: a stop, not a dose
            + _stay(2, "P1", "T1", *h1, at(10, 30), 15)   # 15 minutes at H1: a dose in 10–12
            + _stay(3, "P2", "T2", *h2, at(13, 0), 11))   # 11 minutes at H2: a dose in 12–14
    return _frame(rows)


def _demand(place):
    x, y = place["x"], place["y"]
    pts = [(x[place["h1"]] + d, y[place["h1"]] + d) for d in (10, 20, 30)] + [(x[place["h2"]] - 40, y[place["h2"]])]
    pts += [(x[place["far"]], y[place["far"]]), (x[place["far"]] + 5, y[place["far"]])]
    return to_wgs84(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), METRIC)


def _hot(cells, place):
    hot = np.zeros(len(cells), dtype=bool)
    hot[[place["h1"], place["h2"]]] = True
    return hot


def test_hand_built_patrols_exact_numbers(zone_index, cells, place):
    lon, lat = _demand(place)
    cov = coverage(_hand_built(place), lon, lat, zone_index, since=SINCE, until=UNTIL, params=PARAMS, cells=cells,
                   hot=_hot(cells, place))
    s = cov.summary
    assert (s["stops"], s["dose_stops"], s["long_stops"], s["windows"], s["hot_spots"]) == (5, 3, 1, 5, 2)
    assert s["dose_share"] == pytest.approx(3 / 10)  # (H1, 08–10), (H1, 10–12), (H2, 12–14) of 2 × 5
    assert (s["reports"], s["reports_within"]) == (6, 4) and s["demand_within_share"] == pytest.approx(4 / 6)
    durations = sorted(cov.stops["duration_min"].round(6))
    assert durations == [5, 11, 12, 15, 30]
    c = cov.cells.set_index("cell_id")
    h1, q, h2 = (cells["cell_id"].iloc[place[k]] for k in ("h1", "q", "h2"))
    assert (c.at[h1, "visits"], c.at[q, "visits"], c.at[h2, "visits"]) == (2, 1, 2)
    # dwell: each step counts where it starts, the 60 s steps between places included
    assert c.at[h1, "dwell_min"] == pytest.approx((720 + 60 + 900) / 60)
    assert c.at[q, "dwell_min"] == pytest.approx((1800 + 60) / 60)
    assert c.at[h2, "dwell_min"] == pytest.approx((300 + 660) / 60)
    assert (c.at[h1, "dosed_windows"], c.at[h2, "dosed_windows"]) == (2, 1)
    assert (c.at[h1, "dose_rate"], c.at[h2, "dose_rate"]) == (pytest.approx(0.4), pytest.approx(0.2))
    assert c.at[h1, "hours_since_last_visit"] == pytest.approx(13.25)   # last fix 10:45, until midnight
    assert c.at[h2, "hours_since_last_visit"] == pytest.approx(24 - (13 + 11 / 60))
    assert (c.at[h1, "class"], c.at[h2, "class"], c.at[q, "class"]) == (
        "well covered", "under-patrolled hot spot", "over-patrolled quiet area")
    assert (c.at[h1, "reports"], c.at[h2, "reports"], c.at[h1, "reports_within"]) == (3, 1, 3)
    assert s["well covered"] == 1 and s["under-patrolled hot spot"] == 1 and s["over-patrolled quiet area"] == 1
    p = cov.people.set_index("person_id")
    assert p.at["P1", "distance_km"] == pytest.approx(1.0, abs=1e-4) and p.at["P2", "distance_km"] == pytest.approx(0, abs=1e-4)
    assert p.at["P1", "patrol_hours"] == pytest.approx((49 + 15) / 60) and p.at["P2", "patrol_hours"] == pytest.approx(11 / 60)
    assert (p.at["P1", "patrols"], p.at["P1", "stops"], p.at["P1", "dose_stops"]) == (2, 4, 2)
    assert p.at["P1", "zones"] == place["zone"] and p.at["P1", "zones_covered"] == 1
    assert list(cov.teams["team"]) == ["T1", "T2"]
    z = cov.zones.set_index("zone_id")
    assert z.at[place["zone"], "hot_spots"] == 2 and z.at[place["zone"], "dose_share"] == pytest.approx(0.3)
    assert z.at[place["zone"], "visits"] == 3  # one per patrol: they never leave the zone
    assert z.at[place["zone"], "hours_since_last_visit"] == pytest.approx(24 - (13 + 11 / 60))
    assert list(cov.windows["hot_spots_dosed"]) == [1, 1, 1, 0, 0]
    assert len(cov.tracks) == 3 and cov.tracks.crs.to_epsg() == 4326


def test_windows_are_whole_and_in_patrol_hours():
    p = CoverageParams(window_h=2, day_start_h=8, day_end_h=18)
    s = int(pd.Timestamp(DAY.replace(hour=9)).value)
    u = int(pd.Timestamp((DAY + timedelta(days=2)).replace(hour=13)).value)
    w = pd.to_datetime(patrol_windows(s, u, p), utc=True).tz_convert("Asia/Shanghai")
    # day 1 from 10:00 (08–10 is cut by since), day 2 whole, day 3 until 11:00 (12–14 is cut by until)
    assert [t.strftime("%d %H") for t in w] == ["02 10", "02 12", "02 14", "02 16", "03 08", "03 10", "03 12", "03 14",
                                                 "03 16", "04 08", "04 10"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_dose_share_never_falls_when_a_qualifying_stop_is_added(zone_index, cells, place, data):
    lon, lat = _demand(place)
    base = _hand_built(place)
    hot = _hot(cells, place)
    before = coverage(base, lon, lat, zone_index, since=SINCE, until=UNTIL, params=PARAMS, cells=cells, hot=hot)
    where = data.draw(st.sampled_from(["h1", "h2", "q"]))
    hour = data.draw(st.integers(8, 17))
    minute = data.draw(st.integers(0, 44))
    minutes = data.draw(st.integers(10, 16))
    x, y = place["x"][place[where]], place["y"][place[where]]
    extra = _frame(_stay(9, "P9", "T1", x, y, DAY.replace(hour=hour, minute=minute), minutes))
    after = coverage(pd.concat([base, extra], ignore_index=True), lon, lat, zone_index, since=SINCE, until=UNTIL,
                     params=PARAMS, cells=cells, hot=hot)
    assert after.summary["dose_stops"] == before.summary["dose_stops"] + 1
    assert after.summary["dose_share"] >= before.summary["dose_share"]
    window = (hour - 8) // 2
    newly = where != "q" and before.windows["hot_spots_dosed"].iloc[window] < 2 and not (
        (where == "h1" and window in (0, 1)) or (where == "h2" and window == 2))
    assert (after.summary["dose_share"] > before.summary["dose_share"]) == newly


# ------------------------------------------------------------------ the compiled stops are movingpandas' stops
@st.composite
def tracks(draw):
    """A few tracks: random walks that pause, drift and jump, with irregular fix intervals and gaps."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_tracks = draw(st.integers(1, 3))
    xs, ys, ts, ids = [], [], [], []
    for k in range(n_tracks):
        n = int(rng.integers(2, 300))
        speed = rng.choice([0.0, 0.3, 1.5, 6.0], size=n, p=[0.35, 0.25, 0.3, 0.1])
        dt = rng.choice([1, 5, 10, 30, 400], size=n, p=[0.1, 0.3, 0.4, 0.17, 0.03])  # 400 s: a gap
        ang = rng.uniform(0, 2 * np.pi, n)
        noise = rng.normal(0, rng.choice([0.0, 2.0, 6.0]), (2, n))
        xs.append(np.cumsum(speed * dt * np.cos(ang)) + noise[0] + 500_000)
        ys.append(np.cumsum(speed * dt * np.sin(ang)) + noise[1] + 2_550_000)
        ts.append((np.cumsum(dt) * 10**9).astype(np.int64))
        ids.append(np.full(n, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts), np.concatenate(ids)


@settings(max_examples=60, deadline=None)
@given(tracks(), st.floats(5, 80), st.sampled_from([30, 60, 120, 300]))
def test_compiled_stops_equal_movingpandas(tr, diameter, min_s):
    x, y, t, track = tr
    starts = segments(track, t, 300)
    i0, i1 = detect_stops(x, y, t, starts, diameter, min_s)
    ref = movingpandas_stops(x, y, t, track, 300, diameter, min_s)
    assert sorted(zip(t[i0].tolist(), t[i1].tolist())) == list(zip(ref["start"].tolist(), ref["end"].tolist()))


def test_stops_at_a_known_place_match_movingpandas_and_the_truth():
    """A walk, 12 minutes still, a walk: one stop, spanning the still fixes (plus those of the walk still within
    the diameter), equal in both implementations."""
    t = np.arange(0, 1800, 10, dtype=np.int64) * 10**9
    x = np.where(t < 300e9, t / 1e9 * 1.4, np.where(t < 1020e9, 420.0, 420 + (t / 1e9 - 1020) * 1.4))
    y = np.zeros(len(t))
    track = np.zeros(len(t), dtype=np.int64)
    i0, i1 = detect_stops(x, y, t, segments(track, t, 300), 30, 120)
    ref = movingpandas_stops(x, y, t, track, 300, 30, 120)
    assert len(i0) == 1 and (t[i0[0]], t[i1[0]]) == (ref["start"][0], ref["end"][0])
    assert t[i0[0]] / 1e9 <= 300 and t[i1[0]] / 1e9 >= 1020 and (t[i1[0]] - t[i0[0]]) / 60e9 < 14


# ------------------------------------------------------------------ demand within 200 m, against brute force
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 400), st.floats(20, 300))
def test_near_tracks_equals_brute_force(seed, n, radius):
    rng = np.random.default_rng(seed)
    x = 500_000 + np.cumsum(rng.normal(0, rng.choice([5.0, 60.0, 400.0]), n))
    y = 2_550_000 + np.cumsum(rng.normal(0, 60.0, n))
    t = np.cumsum(rng.integers(1, 400, n)) * 10**9
    pid = np.repeat([1, 2], [n // 2, n - n // 2])
    starts = segments(pid, t, 300)
    fx = Fixes(pid, np.zeros(n, dtype=np.int64), np.array([1]), np.array(["p"], object), np.array([None], object),
               t, x, y, x, y, starts)
    dx = rng.uniform(x.min() - 400, x.max() + 400, 300)
    dy = rng.uniform(y.min() - 400, y.max() + 400, 300)
    got = _near_tracks(fx, dx, dy, radius, chunk=8)
    parts = [shapely.LineString(np.c_[x[a:b], y[a:b]]) if b - a >= 2 else shapely.Point(x[a], y[a])
             for a, b in zip(starts[:-1], starts[1:])]
    want = shapely.distance(shapely.points(dx, dy)[:, None], np.array(parts, dtype=object)[None, :]).min(axis=1) <= radius
    np.testing.assert_array_equal(got, want)


def test_prepare_fixes_sorts_drops_duplicates_and_bad_rows():
    t = pd.to_datetime(["2026-11-02T01:00:10Z", "2026-11-02T01:00:00Z", "2026-11-02T01:00:00Z", "2026-11-02T01:00:20Z"])
    df = pd.DataFrame({"patrol_id": [7, 7, 7, 7], "person_id": ["A"] * 4, "team": [None] * 4, "t": t,
                       "lon": [114.05, 114.05, 114.06, np.nan], "lat": [23.0, 23.0, 23.0, 23.0]})
    fx = prepare_fixes(df)
    assert len(fx) == 2 and list(np.diff(fx.t)) == [10 * 10**9]
    assert fx.patrol_person[fx.pidx[0]] == "A"
    x, _ = from_wgs84(np.array([114.05]), np.array([23.0]), METRIC)
    assert fx.x[0] == pytest.approx(x[0])
    with pytest.raises(ValueError, match="columns"):
        prepare_fixes(df.drop(columns="team"))


def test_no_patrols_and_no_reports(zone_index, cells):
    empty = pd.DataFrame({"patrol_id": pd.Series([], dtype="int64"), "person_id": pd.Series([], dtype="str"),
                          "team": pd.Series([], dtype="str"), "t": pd.Series([], dtype="datetime64[ns, UTC]"),
                          "lon": pd.Series([], dtype="float64"), "lat": pd.Series([], dtype="float64")})
    cov = coverage(empty, [], [], zone_index, since=SINCE, until=UNTIL, cells=cells, params=CoverageParams(permutations=0))
    assert cov.summary["fixes"] == 0 and cov.summary["hot_spots"] == 0 and cov.summary["dose_share"] is None
    assert cov.summary["windows"] == 5 and len(cov.people) == 0 and len(cov.stops) == 0 and len(cov.tracks) == 0
    assert (cov.cells["class"] == "other").all() and cov.cells["hours_since_last_visit"].isna().all()
