"""The citizen's answers and time to fix (gis.satisfaction): brute force, bootstrap coverage, demo and store frames."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis import analysis as A
from gis import satisfaction as S
from zonechief.report_frames import frame_from_demo, reports_frame
from zonechief.workflow import history_problem

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 3, 1, 10, tzinfo=TZ)
NOW = datetime(2025, 12, 31, 12, 0, tzinfo=TZ)


def frame(rows: list[dict]):
    """A report frame from rows with zone, chief, status, resolved (hours after creation or None) and the answer."""
    n = len(rows)
    return A.build_frame(
        np.arange(1, n + 1), [T0] * n, ["06010"] * n, [r.get("status", "closed") for r in rows], [False] * n,
        [r.get("zone") for r in rows], [r.get("chief") for r in rows], [T0] * n,
        [None if r.get("secs") is None else T0 + timedelta(seconds=r["secs"]) for r in rows],
        shapely.points(np.full(n, 114.0), np.full(n, 23.0)),
        satisfaction=[r.get("sat") for r in rows], rating=[r.get("rating") for r in rows],
        rated_at=[None if r.get("sat") is None else T0 + timedelta(days=2) for r in rows])


rows_st = st.lists(st.fixed_dictionaries({
    "zone": st.sampled_from(["A", "B", "C", None]),
    "chief": st.sampled_from(["CA", "CB", None]),
    "secs": st.one_of(st.none(), st.integers(60, 30 * 86400)),
    "sat": st.sampled_from([None, *S.OUTCOMES]),
    "rating": st.one_of(st.none(), st.integers(1, 5)),
}), max_size=40)


# ------------------------------------------------------------------ satisfaction: brute force
@settings(max_examples=60, deadline=None)
@given(rows_st, st.sampled_from(["zone", "chief"]))
def test_satisfaction_equals_a_plain_count(rows, by):
    got = S.satisfaction(frame(rows), by)
    k = "zone" if by == "zone" else "chief"
    groups = defaultdict(list)
    for r in rows:
        if r[k] is not None:
            groups[r[k]].append(r)
    assert sorted(got.index) == sorted(groups) and got.index.name == f"{k}_id"
    for g, rs in groups.items():
        row = got.loc[g]
        answered = [r for r in rs if r["sat"] is not None]
        eligible = [r for r in rs if r["secs"] is not None or r["sat"] is not None]
        assert row["answered"] == len(answered) and row["eligible"] == len(eligible)
        ratings = sorted(r["rating"] for r in rs if r["rating"] is not None)
        assert row["rated"] == len(ratings)
        if ratings:
            m = len(ratings)
            med = ratings[m // 2] if m % 2 else (ratings[m // 2 - 1] + ratings[m // 2]) / 2
            assert row["median_rating"] == med
        else:
            assert np.isnan(row["median_rating"])
        if answered:
            assert row["answer_rate"] == pytest.approx(len(answered) / len(eligible))
            shares = [sum(r["sat"] == o for r in answered) / len(answered) for o in S.OUTCOMES]
            assert [row["fixed_rate"], row["partly_rate"], row["not_fixed_rate"]] == pytest.approx(shares)
        else:
            assert np.isnan(row[["fixed_rate", "partly_rate", "not_fixed_rate"]].astype(float)).all()


def test_partly_fixed_is_not_counted_as_satisfied():
    f = frame([{"zone": "A", "secs": 3600, "sat": s, "rating": r}
               for s, r in [("fixed", 5), ("partly_fixed", 3), ("partly_fixed", 3), ("not_fixed", 1)]]
              + [{"zone": "A", "secs": 3600}, {"zone": "A", "status": "in_progress"}])
    row = S.satisfaction(f).loc["A"]
    assert row["fixed_rate"] == 0.25 and row["partly_rate"] == 0.5 and row["not_fixed_rate"] == 0.25
    assert row["eligible"] == 5 and row["answer_rate"] == 0.8 and row["median_rating"] == 3


def test_empty_frames_give_empty_tables_and_by_is_checked():
    for f in (A.empty_frame(), frame([{"zone": None, "chief": None, "secs": 10, "sat": "fixed"}])):
        assert S.satisfaction(f).empty and S.time_to_fix(f, "chief").empty
        assert list(S.time_to_fix(f).columns) == ["n", "median_h", "low_h", "high_h"]
    with pytest.raises(ValueError):
        S.satisfaction(A.empty_frame(), "town")
    with pytest.raises(ValueError):
        S.time_to_fix(A.empty_frame(), ci=1.5)


def test_frames_without_answers_still_build():
    """Callers that have no answers leave the keywords out: no report is answered."""
    f = A.build_frame([1], [T0], ["06010"], ["closed"], [False], ["A"], ["CA"], [T0], [T0 + timedelta(hours=2)],
                      [shapely.Point(114, 23)])
    assert list(f.columns) == A.COLUMNS and f["satisfaction"].isna().all() and f["rating"].dtype == "f8"
    assert str(f["rated_at"].dt.tz) == "Asia/Shanghai"
    e = A.empty_frame()
    assert list(e.columns) == A.COLUMNS and e["rating"].dtype == "f8" and str(e["rated_at"].dt.tz) == "Asia/Shanghai"
    row = S.satisfaction(f).loc["A"]
    assert row["eligible"] == 1 and row["answered"] == 0 and row["answer_rate"] == 0


# ------------------------------------------------------------------ time to fix
@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["A", "B", "C", "D"]), st.lists(st.integers(1, 60 * 86400), min_size=1,
                                                                         max_size=30), max_size=4))
def test_time_to_fix_median_and_interval(groups):
    rows = [{"zone": g, "chief": "C" + g, "secs": s} for g, ss in groups.items() for s in ss]
    got = S.time_to_fix(frame(rows), "zone", n_boot=300)
    assert sorted(got.index) == sorted(groups)
    for g, ss in groups.items():
        h = np.array(ss) / 3600.0
        row = got.loc[g]
        assert row["n"] == len(ss) and row["median_h"] == pytest.approx(np.median(h), rel=1e-12)
        if len(ss) < S.MIN_N:
            assert np.isnan(row["low_h"]) and np.isnan(row["high_h"])
        else:
            eps = 1e-9
            assert h.min() - eps <= row["low_h"] <= row["median_h"] + eps
            assert row["median_h"] - eps <= row["high_h"] <= h.max() + eps
    # the same seed repeats, by zone or by chief alike
    again = S.time_to_fix(frame(rows), "zone", n_boot=300)
    pd.testing.assert_frame_equal(got, again)
    by_chief = S.time_to_fix(frame(rows), "chief", n_boot=300)
    assert sorted(by_chief.index) == sorted("C" + g for g in groups)


def test_time_to_fix_counts_only_resolved_reports_and_a_group_alone_repeats():
    rows = [{"zone": "A", "secs": 3600 * h} for h in (1, 2, 3, 4, 5, 6, 7)] + [{"zone": "A", "secs": None}]
    rows += [{"zone": "B", "secs": 3600 * h} for h in (10, 20, 30, 40, 50, 60)]
    both = S.time_to_fix(frame(rows))
    alone = S.time_to_fix(frame(rows[:8]))
    assert both.loc["A", "n"] == 7 and both.loc["A", "median_h"] == 4
    pd.testing.assert_series_equal(both.loc["A"], alone.loc["A"])  # a group's interval ignores the others
    many = frame([{"zone": "C", "secs": int(s)} for s in np.random.default_rng(3).integers(600, 86400, 60)])
    a, b = S.time_to_fix(many, seed=0), S.time_to_fix(many, seed=1)
    assert a.loc["C", "median_h"] == b.loc["C", "median_h"] and (a.loc["C", "low_h"], a.loc["C", "high_h"]) != (
        b.loc["C", "low_h"], b.loc["C", "high_h"])  # another seed, other resamples


def test_bootstrap_interval_covers_the_true_median_about_95_percent():
    """300 groups of 41 log-normal times (true median 6 h): the intervals' coverage is near 95 %."""
    rng = np.random.default_rng(1)
    g, n = 300, 41
    secs = np.round(np.exp(rng.normal(np.log(6 * 3600), 1.0, (g, n)))).astype(np.int64)
    rows = [{"zone": f"Z{i:03d}", "secs": int(s)} for i in range(g) for s in secs[i]]
    got = S.time_to_fix(frame(rows), n_boot=1000)
    cover = ((got["low_h"] <= 6.0) & (6.0 <= got["high_h"])).mean()
    assert 0.90 <= cover <= 0.99, cover
    # a larger sample gives a narrower interval
    wide = (got["high_h"] - got["low_h"]).median()
    narrow = S.bootstrap_median(np.exp(rng.normal(np.log(6), 1.0, 4000)), 1000, rng=0)
    assert narrow[1] - narrow[0] < wide / 4


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_drawn_bootstrap_medians_have_the_distribution_of_resampled_ones(n, seed):
    """bootstrap_medians draws each resample's median from order statistics; brute-force resampling
    (n indices with replacement per resample) must give the same distribution, odd and even n, ties
    included: a two-sample Kolmogorov-Smirnov distance within what sampling gives (α ≈ 0.001)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.exponential(10.0, n), 0)  # rounding makes ties
    reps = 20_000
    brute = np.sort(np.median(x[rng.integers(0, n, size=(reps, n))], axis=1))
    drawn = np.sort(S.bootstrap_medians(x, reps, rng=seed))
    support = np.union1d(brute, drawn)
    ks = np.abs(np.searchsorted(brute, support, "right") - np.searchsorted(drawn, support, "right")).max() / reps
    assert ks < 1.95 * np.sqrt(2 / reps), (n, ks)


# ------------------------------------------------------------------ the demo's answers
@pytest.fixture(scope="module")
def demo(zone_index):
    from zonechief.demo import generate_reports

    reps = generate_reports(3000, seed=5, now=NOW, days=120, index=zone_index)
    return reps, frame_from_demo(reps, zone_index)


def test_demo_answers_follow_resolutions(demo):
    reps, _ = demo
    answered = [d for d in reps if d["feedback"]]
    resolved = [d for d in reps if any(h["status"] == "resolved" for h in d["history"])]
    assert 0.5 <= len(answered) / len(resolved) <= 0.6
    outcomes = {d["feedback"]["satisfaction"] for d in answered}
    assert outcomes == set(S.OUTCOMES)
    for d in reps:
        fb, h = d["feedback"], d["history"]
        assert history_problem(h) is None
        if fb is None:
            continue
        res = [x["at"] for x in h if x["status"] == "resolved"]
        assert res and res[0] < fb["at"] <= NOW and 1 <= fb["rating"] <= 5
        closed = [x["at"] for x in h if x["status"] == "closed"]
        assert not closed or fb["at"] <= closed[0]  # answered before the closing
        if fb["satisfaction"] == "not_fixed":  # it reopened the report at the answer's time
            i = next(i for i, x in enumerate(h) if x["at"] == fb["at"] and x["status"] == "in_progress")
            assert h[i - 1]["status"] == "resolved"
        else:
            assert fb["at"] > res[-1] and h[-1]["status"] in ("resolved", "closed")


def test_demo_answers_are_plausible(demo):
    reps, f = demo
    fb = [d["feedback"] for d in reps if d["feedback"]]
    ratings = defaultdict(list)
    for x in fb:
        ratings[x["satisfaction"]].append(x["rating"])
    assert np.mean([r >= 4 for r in ratings["fixed"]]) > 0.8
    assert np.mean([r <= 2 for r in ratings["not_fixed"]]) > 0.8
    assert any(x["comment"] for x in fb) and any(x["comment"] is None for x in fb)
    # slow fixes are answered worse: first answers, by the time of the first resolution
    slow, fast = [], []
    for d in reps:
        h = d["history"]
        res = [x["at"] for x in h if x["status"] == "resolved"]
        if d["feedback"] and len(res) == 1:
            hours = (res[0] - d["created_at"]).total_seconds() / 3600
            (slow if hours > 7 else fast).append(d["feedback"]["satisfaction"] == "fixed")
    assert np.mean(fast) > np.mean(slow) + 0.05
    # in the frame: answers only on reports that were resolved; open ones were reopened by a "not fixed"
    has = f["satisfaction"].notna()
    assert (f.loc[has & f["open"], "satisfaction"] == "not_fixed").all()
    assert set(f.loc[has, "status"]) <= {"resolved", "closed", "in_progress"}
    assert (f.loc[has, "rated_at"] > f.loc[has, "created_at"]).all()
    s = S.satisfaction(f)
    assert s["answered"].sum() == has.sum() and s["fixed_rate"].between(0, 1).all()


# ------------------------------------------------------------------ the store carries the same answers
def test_store_frame_carries_the_demo_answers(store_url, zone_index):
    import sqlalchemy as sa

    from store.models import Report
    from zonechief.bulk import seed_demo
    from zonechief.demo import generate_reports
    from zonechief.services import Services

    svc = Services(index=zone_index, database_url=store_url).reports
    try:
        res = seed_demo(svc, 400, seed=9, now=NOW)
        got = reports_frame(svc)
        r = Report.__table__
        with svc.db.engine.connect() as conn:
            stored = {row.idempotency_key: row for row in conn.execute(
                sa.select(r.c.id, r.c.idempotency_key, r.c.rating_comment, r.c.rated_at, r.c.first_rated_at))}
    finally:
        svc.db.engine.dispose()  # the fixture drops the database after this module
    assert res.inserted >= 380
    reps = generate_reports(400, seed=9, now=NOW, index=zone_index)
    demo = frame_from_demo(reps, zone_index).set_index(pd.Index([f"demo-9-{i}" for i in range(400)]))
    key = {row.id: k for k, row in stored.items()}
    got = got.set_index(got["id"].map(key))
    both = got.index[got["zone_id"].notna()].intersection(demo.index[demo["zone_id"].notna()])
    assert len(both) > 350 and got["satisfaction"].notna().sum() > 100
    g, d = got.loc[both], demo.loc[both]
    assert g["satisfaction"].tolist() == d["satisfaction"].tolist()
    assert (g["rating"].isna() == d["rating"].isna()).all() and (g["rating"].dropna() == d["rating"].dropna()).all()
    assert (g["rated_at"].isna() == d["rated_at"].isna()).all()
    assert (g["rated_at"].dropna() == d["rated_at"].dropna()).all()
    fb = {f"demo-9-{i}": x["feedback"] for i, x in enumerate(reps)}
    for k in both:
        row, x = stored[k], fb[k]
        assert row.rating_comment == (x["comment"] if x else None)
        assert row.first_rated_at == row.rated_at
    # the tables agree too
    pd.testing.assert_frame_equal(S.satisfaction(g), S.satisfaction(d))
