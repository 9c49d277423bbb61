"""gis.siting against brute force: every subset of candidates on small random instances, all three models,
with and without existing stations, through spopt's dense models and the sparse formulations alike."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.siting import Facilities, SitingInputError, demand_grid, euclidean, grid_candidates, solve, travel_times

pytestmark = pytest.mark.filterwarnings("ignore:Constructing LpVariable:DeprecationWarning")
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw):
    """Integer-coordinate demand and facilities (some existing), positive weights."""
    nd = draw(st.integers(1, 8))
    nf = draw(st.integers(2, 7))
    ne = draw(st.integers(0, min(2, nf - 1)))
    coord = st.integers(0, 20)
    dx = np.array(draw(st.lists(coord, min_size=nd, max_size=nd)), dtype="f8")
    dy = np.array(draw(st.lists(coord, min_size=nd, max_size=nd)), dtype="f8")
    fx = np.array(draw(st.lists(coord, min_size=nf, max_size=nf)), dtype="f8")
    fy = np.array(draw(st.lists(coord, min_size=nf, max_size=nf)), dtype="f8")
    w = np.array(draw(st.lists(st.integers(1, 9), min_size=nd, max_size=nd)), dtype="f8")
    from gis.siting import Demand

    dem = Demand(np.array([f"d{i}" for i in range(nd)], dtype=object), dx, dy, w)
    fac = Facilities(np.array([f"f{j}" for j in range(nf)], dtype=object), fx, fy, np.arange(nf) < ne)
    return dem, fac


def _subsets(fac, k):
    cand = np.flatnonzero(~fac.existing)
    ex = list(np.flatnonzero(fac.existing))
    for s in combinations(cand, k):
        yield np.array(ex + list(s), dtype=np.int64)


def brute_mclp(dem, fac, c, k, r):
    return max(float(dem.weight[c[:, s].min(axis=1) <= r].sum()) for s in _subsets(fac, k))


def brute_pmedian(dem, fac, c, k):
    return min(float(dem.weight @ c[:, s].min(axis=1)) for s in _subsets(fac, k)) / dem.weight.sum()


def brute_lscp(dem, fac, c, r):
    n_cand = int((~fac.existing).sum())
    for k in range(0, n_cand + 1):
        if any((c[:, s].min(axis=1) <= r).all() for s in _subsets(fac, k) if len(s)):
            return int(fac.existing.sum()) + k
    return None


@pytest.mark.parametrize("dense", [True, False], ids=["spopt-dense", "sparse"])
@SETTINGS
@given(inst=instances(), k=st.integers(1, 3), r=st.integers(1, 15))
def test_mclp_matches_brute_force(dense, inst, k, r):
    dem, fac = inst
    c = euclidean(dem, fac)
    k = min(k, int((~fac.existing).sum()))
    res = solve("mclp", dem, fac, c, add=k, radius=r, dense_pairs=10**9 if dense else 0)
    assert res.proven_optimal and res.status == "optimal"
    assert res.objective == pytest.approx(brute_mclp(dem, fac, c, k, r))
    assert res.after["covered"] == pytest.approx(res.objective)  # the chosen sites really cover that much
    assert set(np.flatnonzero(fac.existing)) <= set(res.open)  # existing stations stay
    assert len(res.added) == k and not fac.existing[res.added].any()


@pytest.mark.parametrize("dense", [True, False], ids=["spopt-dense", "sparse"])
@SETTINGS
@given(inst=instances(), k=st.integers(1, 3))
def test_pmedian_matches_brute_force(dense, inst, k):
    dem, fac = inst
    c = euclidean(dem, fac)
    k = min(k, int((~fac.existing).sum()))
    res = solve("pmedian", dem, fac, c, add=k, dense_pairs=10**9 if dense else 0)
    assert res.proven_optimal, res.message
    best = brute_pmedian(dem, fac, c, k)
    assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-9)
    assert res.after["mean_cost"] == pytest.approx(best, rel=1e-6, abs=1e-9)
    assert set(np.flatnonzero(fac.existing)) <= set(res.open)
    assert len(res.added) == k


@pytest.mark.parametrize("dense", [True, False], ids=["spopt-dense", "sparse"])
@SETTINGS
@given(inst=instances(), r=st.integers(1, 15))
def test_lscp_matches_brute_force(dense, inst, r):
    dem, fac = inst
    c = euclidean(dem, fac)
    res = solve("lscp", dem, fac, c, radius=r, dense_pairs=10**9 if dense else 0)
    best = brute_lscp(dem, fac, c, r)
    if best is None:
        assert res.status == "infeasible" and not res.proven_optimal and "no candidate" in res.message
        return
    assert res.proven_optimal and res.objective == pytest.approx(best)
    assert len(res.open) == best and res.after["covered"] == pytest.approx(dem.weight.sum())


def _random(nd, nf, seed, ne=0):
    from gis.siting import Demand

    rng = np.random.default_rng(seed)
    dem = Demand(np.array([f"d{i}" for i in range(nd)], dtype=object), rng.uniform(0, 10_000, nd),
                 rng.uniform(0, 10_000, nd), rng.integers(1, 50, nd).astype("f8"))
    fac = Facilities(np.array([f"f{j}" for j in range(nf)], dtype=object), rng.uniform(0, 10_000, nf),
                     rng.uniform(0, 10_000, nf), np.arange(nf) < ne)
    return dem, fac


@pytest.mark.parametrize("model, dense_pairs", [("mclp", 10**9), ("pmedian", 0), ("lscp", 0)])
def test_time_limit_says_not_optimal(model, dense_pairs):
    """A model cut off by the time limit says so; PuLP alone would call HiGHS's incumbent "Optimal"."""
    dem, fac = _random(700, 700, 1, ne=2)
    res = solve(model, dem, fac, euclidean(dem, fac), add=25, radius=900, time_limit=0.05, dense_pairs=dense_pairs)
    assert not res.proven_optimal
    assert res.status in ("feasible", "no solution")
    assert "not proven optimal" in res.message or res.status == "no solution"


def test_bad_input_is_refused_with_reason():
    dem, fac = _random(5, 4, 2, ne=1)
    c = euclidean(dem, fac)
    with pytest.raises(SitingInputError, match="only 3 candidate"):
        solve("mclp", dem, fac, c, add=4, radius=100)
    with pytest.raises(SitingInputError, match="radius"):
        solve("mclp", dem, fac, c, add=1, radius=0)
    with pytest.raises(SitingInputError, match="radius"):
        solve("lscp", dem, fac, c, radius=-3)
    empty = demand_grid([], [], 250)
    with pytest.raises(SitingInputError, match="no demand"):
        solve("pmedian", empty, fac, np.zeros((0, len(fac))), add=1)
    with pytest.raises(SitingInputError, match="model"):
        solve("pcenter", dem, fac, c, add=1)


def test_grid_ids_and_travel_time_matrix():
    """Demand cells and candidates share the r<row>c<col> lattice; a travel-time CSV is keyed by those ids."""
    import pandas as pd
    import shapely

    dem = demand_grid([10, 20, 260, 260], [10, 30, 10, 20], 250)
    assert list(dem.ids) == ["r0c0", "r0c1"] and list(dem.weight) == [2, 2]
    assert (dem.x[0], dem.y[0]) == (125, 125)
    cand = grid_candidates(shapely.box(0, 0, 500, 250), 250)
    assert list(cand.ids) == ["r0c0", "r0c1"]
    fac = Facilities.combine(Facilities.make(["S1"], [125], [125], existing=True), cand)
    assert list(fac.ids) == ["S1", "r0c0", "r0c1"] and list(fac.existing) == [True, False, False]
    tt = pd.DataFrame({"origin": ["r0c0", "r0c1", "r0c1"], "destination": ["S1", "S1", "r0c1"], "seconds": [0, 900, 60]})
    c = travel_times(tt, dem, fac)
    assert c[0, 0] == 0 and c[1, 0] == 900 and c[1, 2] == 60 and np.isinf(c[0, 1])
    res = solve("mclp", dem, fac, c, add=1, radius=300)
    assert res.objective == 4 and list(fac.ids[res.added]) == ["r0c1"] and res.before["covered"] == 2
    with pytest.raises(SitingInputError, match="seconds"):
        travel_times(tt.assign(seconds=["x", 1, 2]), dem, fac)


@pytest.mark.parametrize("model", ["mclp", "pmedian", "lscp"])
def test_cbc_gives_the_same_optimum(model):
    """PuLP's CBC (the benchmark's comparison) through the same models, sparse p-median included."""
    from gis.siting import cbc

    dem, fac = _random(12, 8, 3, ne=1)
    c = euclidean(dem, fac)
    r = 7500.0
    res = solve(model, dem, fac, c, add=2, radius=r, solver=cbc(30), dense_pairs=0)
    assert res.proven_optimal and res.solver == "PULP_CBC_CMD", res.message
    want = {"mclp": lambda: brute_mclp(dem, fac, c, 2, r), "pmedian": lambda: brute_pmedian(dem, fac, c, 2),
            "lscp": lambda: brute_lscp(dem, fac, c, r)}[model]()
    assert want is not None
    assert res.objective == pytest.approx(want)
