"""gis.boundary_diff: hand-made cases with exact areas, identity, a whole synthetic city, and properties against
brute force (per-village shapely differences) under random redrawings."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.boundaries import METRIC, BoundaryError
from gis.boundary_diff import diff_units
from tests.gis.boundary_cases import City, merge, redraw, split
from tests.helpers import shipped_index

X0, Y0 = 420_000.0, 2_540_000.0  # metres in EPSG:4547, inside Dongguan
KM = 1000.0


def sq(col: int, row: int = 0, w: float = KM, h: float = KM, dx: float = 0.0):
    """A w x h rectangle at grid position (col, row) of 1 km cells, its left edge moved by dx."""
    x, y = X0 + col * KM, Y0 + row * KM
    return shapely.box(x + dx, y, x + w, y + h)


def units(*rows) -> gpd.GeoDataFrame:
    """A units frame in METRIC from (code, zone_id, name, geometry[, zone_name]) rows."""
    recs = [{"unit_id": r[0], "zone_id": r[1], "village_code": r[0], "village_name": r[2], "village_short_name": None,
             "town": "企石镇", "town_code": "441900105", "zone_name": r[4] if len(r) > 4 else f"{r[1]}片区", "geometry": r[3]}
            for r in rows]
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=METRIC)


A, B, C = "441900105201", "441900105202", "441900105203"


def pieces(d, level="village"):
    p = d.pieces[d.pieces.level == level].to_crs(METRIC)
    return {(r.kind, r.id): r.geometry.area for r in p.itertuples()}


# ------------------------------------------------------------------ hand-made cases
def test_a_square_split_in_two():
    old = units((A, "Z1", "甲村", sq(0)))
    new = units((A, "Z1", "甲村", sq(0, w=400)), (B, "Z1", "乙村", sq(0, dx=400)))
    d = diff_units(old, new)
    a, b = d.village(A), d.village(B)
    assert a.status == "split" and a.tags == ("split", "changed")
    assert a.split_into == [A, B]
    assert a.lost_m2 == pytest.approx(600_000) and a.gained_m2 == 0
    assert a.lost_to == [(B, pytest.approx(600_000))]
    assert b.tags == ("split", "new") and b.split_from == A
    assert b.gained_m2 == pytest.approx(600_000) and b.area_old_m2 == 0
    z = d.zone("Z1")
    assert z.status == "same" and z.gained_m2 == z.lost_m2 == 0  # the zone's outline did not move
    assert z.villages_in == [B] and z.villages_out == []
    assert pieces(d) == {("lost", A): pytest.approx(600_000), ("gained", B): pytest.approx(600_000)}
    assert pieces(d, "zone") == {}


def test_two_villages_merged():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z2", "乙村", sq(1)))
    new = units((A, "Z1", "甲村", sq(0, w=2 * KM)))
    d = diff_units(old, new)
    a, b = d.village(A), d.village(B)
    assert a.tags == ("merged", "changed") and a.merged_from == [A, B]
    assert a.gained_m2 == pytest.approx(1e6) and a.gained_from == [(B, pytest.approx(1e6))]
    assert b.tags == ("merged", "gone") and b.merged_into == A and b.lost_m2 == pytest.approx(1e6)
    assert b.zone_old == "Z2" and b.zone_new is None
    z1, z2 = d.zone("Z1"), d.zone("Z2")
    assert z1.gained_m2 == pytest.approx(1e6) and z1.villages_in == []
    assert z2.tags == ("merged", "gone") and z2.merged_into == "Z1" and z2.villages_out == [B]
    assert z1.merged_from == ["Z1", "Z2"]
    s = d.summary()["villages"]
    assert (s["before"], s["after"], s["merged"], s["gone"], s["same"]) == (2, 1, 2, 1, 0)


def test_a_rename_alone_moves_no_area():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z1", "乙村", sq(1)))
    new = units((A, "Z1", "甲社区", sq(0)), (B, "Z1", "乙村", sq(1)))
    d = diff_units(old, new)
    a = d.village(A)
    assert a.status == "renamed" and a.tags == ("renamed",)
    assert a.renamed_from == "甲村" and a.name_new == "甲社区"
    assert a.gained_m2 == a.lost_m2 == 0
    assert d.village(B).status == "same"
    assert d.zone("Z1").status == "same"
    assert len(d.pieces) == 0


def test_renamed_and_changed_together():
    old = units((A, "Z1", "甲村", sq(0)))
    new = units((A, "Z1", "甲社区", sq(0, w=900)))
    a = diff_units(old, new).village(A)
    assert a.tags == ("changed", "renamed") and a.status == "changed" and a.lost_m2 == pytest.approx(100_000)


def test_a_shared_edge_moved_by_100_m():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z2", "乙村", sq(1)))
    new = units((A, "Z1", "甲村", sq(0, w=KM + 100)), (B, "Z2", "乙村", sq(1, dx=100)))
    d = diff_units(old, new)
    a, b = d.village(A), d.village(B)
    assert a.gained_m2 == pytest.approx(100 * KM) and a.lost_m2 == 0
    assert b.lost_m2 == pytest.approx(a.gained_m2) and b.gained_m2 == 0
    assert a.gained_from == [(B, pytest.approx(100 * KM))] and b.lost_to == [(A, pytest.approx(100 * KM))]
    assert a.status == b.status == "changed"  # an edge move is neither a merger nor a split
    za, zb = d.zone("Z1"), d.zone("Z2")
    assert za.gained_m2 == pytest.approx(100 * KM) and zb.lost_m2 == pytest.approx(100 * KM)
    assert za.gained_from == [("Z2", pytest.approx(100 * KM))]
    got = pieces(d)
    assert got == {("gained", A): pytest.approx(100 * KM), ("lost", B): pytest.approx(100 * KM)}
    gained = d.pieces[(d.pieces.kind == "gained") & (d.pieces.level == "village")].to_crs(METRIC).geometry.iloc[0]
    assert gained.equals(shapely.box(X0 + KM, Y0, X0 + KM + 100, Y0 + KM).normalize()) or \
        gained.symmetric_difference(shapely.box(X0 + KM, Y0, X0 + KM + 100, Y0 + KM)).area < 1e-3
    assert pieces(d, "zone") == {("gained", "Z1"): pytest.approx(100 * KM), ("lost", "Z2"): pytest.approx(100 * KM)}


def test_new_and_gone_villages_and_a_village_moving_zone():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z1", "乙村", sq(1)))
    new = units((A, "Z2", "甲村", sq(0), "新片区"), (C, "Z1", "丙村", sq(5)))
    d = diff_units(old, new)
    assert d.village(B).tags == ("gone",) and d.village(B).lost_m2 == pytest.approx(1e6)
    assert d.village(C).tags == ("new",) and d.village(C).gained_m2 == pytest.approx(1e6)
    a = d.village(A)
    assert a.tags == ("moved",) and (a.zone_old, a.zone_new) == ("Z1", "Z2")  # same outline, another zone
    z1, z2 = d.zone("Z1"), d.zone("Z2")
    assert z1.villages_out == [A, B] and z1.villages_in == [C]
    assert z1.lost_m2 == pytest.approx(2e6) and z1.gained_m2 == pytest.approx(1e6)
    assert z2.tags == ("new",) and z2.villages_in == [A] and z2.name_new == "新片区"


def test_a_zone_renamed():
    old = units((A, "Z1", "甲村", sq(0), "东片"))
    new = units((A, "Z1", "甲村", sq(0), "东区片区"))
    z = diff_units(old, new).zone("Z1")
    assert z.tags == ("renamed",) and z.renamed_from == "东片" and z.name_new == "东区片区"


def test_a_small_sliver_is_not_a_split_and_the_tolerance_counts():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z1", "乙村", sq(1)))
    new = units((A, "Z1", "甲村", sq(0, w=KM + 0.5)), (B, "Z1", "乙村", sq(1, dx=0.5)))  # 500 m² moved
    d = diff_units(old, new, tolerance_m2=1000)
    assert d.village(A).status == "same" and d.village(B).status == "same"
    assert d.village(A).gained_m2 == pytest.approx(500)  # reported, below tolerance
    d = diff_units(old, new, tolerance_m2=1)
    assert d.village(A).status == "changed" and not d.village(B).split_into


def test_identity_on_the_shipped_villages_is_all_same():
    idx = shipped_index()
    d = diff_units(idx, idx)
    assert len(d.villages) == 31 and len(d.zones) == 29
    assert all(c.status == "same" and c.gained_m2 == 0 and c.lost_m2 == 0 for c in d.villages + d.zones)
    assert all(c.gained_from == [] and c.lost_to == [] for c in d.villages + d.zones)
    assert len(d.pieces) == 0
    assert d.zone("QS-15").name_new == idx.zones.set_index("zone_id").name["QS-15"]
    s = d.summary()
    assert s["villages"]["same"] == 31 and s["zones"]["same"] == 29 and s["villages"]["gained_m2"] == 0


def test_the_shipped_villages_with_a_redrawn_town_edge():
    idx = shipped_index()
    u = idx.units.copy()
    a, b = u.iloc[0].unit_id, None
    ga = u.to_crs(METRIC).geometry.iloc[0]
    for k in range(1, len(u)):
        if u.to_crs(METRIC).geometry.iloc[k].intersection(ga).length > 500:
            b = u.iloc[k].unit_id
            break
    assert b is not None
    m = u.to_crs(METRIC).set_index("unit_id", drop=False)
    grab = m.loc[b, "geometry"].intersection(m.loc[a, "geometry"].buffer(200))
    m.loc[a, "geometry"] = m.loc[a, "geometry"].union(grab)
    m.loc[b, "geometry"] = m.loc[b, "geometry"].difference(grab)
    d = diff_units(idx.units, m.reset_index(drop=True).to_crs(4326))
    assert d.village(a).gained_m2 == pytest.approx(grab.area, rel=1e-6)
    assert d.village(b).lost_m2 == pytest.approx(grab.area, rel=1e-6)
    assert d.village(a).gained_from[0][0] == b
    assert sum(c.status != "same" for c in d.villages) == 2


def test_bad_inputs_are_refused():
    ok = units((A, "Z1", "甲村", sq(0)))
    with pytest.raises(BoundaryError, match="more than one feature: " + A):
        diff_units(ok, units((A, "Z1", "甲村", sq(0)), (A, "Z1", "甲村", sq(1))))
    with pytest.raises(BoundaryError, match="missing columns"):
        diff_units(ok.drop(columns="zone_id"), ok)
    with pytest.raises(BoundaryError, match="without geometry"):
        diff_units(ok, units((A, "Z1", "甲村", shapely.Polygon())))


def test_to_json_is_plain_stable_and_complete():
    old = units((A, "Z1", "甲村", sq(0)), (B, "Z2", "乙村", sq(1)))
    new = units((A, "Z1", "甲社区", sq(0, w=KM + 100)), (B, "Z2", "乙村", sq(1, dx=100)), (C, "Z3", "丙村", sq(4)))
    j = diff_units(old, new).to_json()
    text = json.dumps(j, ensure_ascii=False)
    assert text == json.dumps(diff_units(old, new).to_json(), ensure_ascii=False)
    assert list(j) == ["tolerance_m2", "area_crs", "summary", "villages", "zones"]
    assert [v["id"] for v in j["villages"]] == [A, B, C]
    va = j["villages"][0]
    assert list(va)[:7] == ["id", "status", "tags", "name_old", "name_new", "zone_old", "zone_new"]
    assert va["gained_m2"] == 100_000.0 and va["renamed_from"] == "甲村" and va["gained_from"] == [[B, 100_000.0]]
    assert "villages_in" in j["zones"][0] and "zone_old" not in j["zones"][0]
    assert j["summary"]["villages"]["new"] == 1 and j["summary"]["zones"]["after"] == 3


# ------------------------------------------------------------------ a whole city
@pytest.fixture(scope="module")
def city():
    return City.make(seed=3)


def test_a_redrawn_city(city):
    old = city.units()
    new = redraw(city, 7, edges=30, merges=8, splits=8, renames=6, rezoned=6, drops=3)
    assert len(old) == 600
    d = diff_units(old, new)
    s = d.summary()["villages"]
    assert s["merged"] == 16 and s["split"] == 16  # each merger and each split tags two villages
    assert s["new"] == 8 and s["gone"] == 8 + 3
    assert s["renamed"] >= 6 - 3  # a renamed village may be among the dropped ones
    assert 20 < s["changed"] < 120
    check_against_brute_force(old, new, d)


# ------------------------------------------------------------------ properties
def brute_force(old, new):
    """Per id: (gained, lost) by direct shapely differences, in METRIC."""
    o = dict(zip(old.unit_id, old.to_crs(METRIC).geometry))
    n = dict(zip(new.unit_id, new.to_crs(METRIC).geometry))
    empty = shapely.Polygon()
    return {k: (n.get(k, empty).difference(o.get(k, empty)).area, o.get(k, empty).difference(n.get(k, empty)).area)
            for k in set(o) | set(n)}


def zone_unions(u):
    m = u.to_crs(METRIC)
    return {z: shapely.union_all(g.geometry.values) for z, g in m.groupby("zone_id")}


def check_against_brute_force(old, new, d, tol=1e-3):
    ref = brute_force(old, new)
    assert {c.id for c in d.villages} == set(ref)
    for c in d.villages:
        assert c.gained_m2 == pytest.approx(ref[c.id][0], abs=tol, rel=1e-7), c.id
        assert c.lost_m2 == pytest.approx(ref[c.id][1], abs=tol, rel=1e-7), c.id
    zo, zn = zone_unions(old), zone_unions(new)
    empty = shapely.Polygon()
    for c in d.zones:
        assert c.gained_m2 == pytest.approx(zn.get(c.id, empty).difference(zo.get(c.id, empty)).area, abs=1.0, rel=1e-6)
        assert c.lost_m2 == pytest.approx(zo.get(c.id, empty).difference(zn.get(c.id, empty)).area, abs=1.0, rel=1e-6)


@st.composite
def redrawings(draw):
    seed = draw(st.integers(0, 10_000))
    rows, cols = draw(st.integers(2, 4)), draw(st.integers(3, 5))
    city = City.make(rows, cols, seed=seed, bbox=(X0, Y0, X0 + cols * KM, Y0 + rows * KM), vertices_per_edge=4,
                     zone_block=(2, 2))
    n = rows * cols
    ops = {"edges": draw(st.integers(0, 6)), "merges": draw(st.integers(0, 2)), "splits": draw(st.integers(0, 2)),
           "renames": draw(st.integers(0, 2)), "rezoned": draw(st.integers(0, 2)), "drops": draw(st.integers(0, 2))}
    if ops["renames"] + ops["rezoned"] + ops["drops"] > n - 2 * ops["merges"] + ops["splits"] - 1:
        ops["drops"] = 0
    return city.units(), redraw(city, seed + 1, **ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(redrawings())
def test_areas_balance_and_diffs_are_symmetric(pair):
    old, new = pair
    d, back = diff_units(old, new), diff_units(new, old)
    union = lambda u: shapely.union_all(u.to_crs(METRIC).geometry.values).area  # noqa: E731
    moved = union(new) - union(old)
    for level in ("villages", "zones"):
        changes = getattr(d, level)
        assert sum(c.gained_m2 for c in changes) - sum(c.lost_m2 for c in changes) == pytest.approx(moved, abs=1.0)
        rev = {c.id: c for c in getattr(back, level)}
        for c in changes:
            assert c.gained_m2 == pytest.approx(rev[c.id].lost_m2, abs=1e-3, rel=1e-9)
            assert c.lost_m2 == pytest.approx(rev[c.id].gained_m2, abs=1e-3, rel=1e-9)
            flip = {"new": "gone", "gone": "new", "merged": "split", "split": "merged"}
            assert sorted(flip.get(t, t) for t in c.tags) == sorted(rev[c.id].tags), c.id
    check_against_brute_force(old, new, d)
    got = d.pieces.to_crs(METRIC)
    for level, changes in (("village", d.villages), ("zone", d.zones)):
        for kind in ("gained", "lost"):
            p = got[(got.level == level) & (got.kind == kind)]
            want = sum(getattr(c, f"{kind}_m2") for c in changes if getattr(c, f"{kind}_m2") > d.tolerance_m2)
            assert float(np.sum(p.geometry.area)) == pytest.approx(want, abs=1.0, rel=1e-6)


def test_merge_and_split_helpers_keep_a_partition():
    city = City.make(2, 3, seed=1, bbox=(X0, Y0, X0 + 3 * KM, Y0 + 2 * KM), vertices_per_edge=4, zone_block=(2, 2))
    u = city.units(crs=METRIC)
    total = u.area.sum()
    v = split(merge(u, u.unit_id[0], [u.unit_id[1]]), u.unit_id[3], "441900199999")
    assert v.area.sum() == pytest.approx(total) and len(v) == len(u)
    assert shapely.union_all(v.geometry.values).area == pytest.approx(total)


def test_an_empty_side_makes_everything_new_or_gone():
    idx = shipped_index()
    d = diff_units(idx.units.iloc[:0], idx)
    s = d.summary()
    assert (s["villages"]["before"], s["villages"]["new"], s["zones"]["new"]) == (0, 31, 29)
    assert s["villages"]["gained_m2"] == pytest.approx(idx.units.to_crs(METRIC).area.sum(), abs=0.01)
    assert set(d.pieces.kind) == {"gained"} and len(d.pieces) == 31 + 29
    back = diff_units(idx, idx.units.iloc[:0]).summary()
    assert back["villages"]["gone"] == 31 and back["villages"]["lost_m2"] == s["villages"]["gained_m2"]
