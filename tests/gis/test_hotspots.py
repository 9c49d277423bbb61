"""Hot spots: Gi* against esda on the same lattice, planted and uniform patterns, BH, Mann–Kendall, KDE, emerging."""
from __future__ import annotations

import warnings

import esda
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from libpysal.weights import DistanceBand, Queen
from scipy import stats

from gis import hotspots as H

# A 5 km square study area in CGCS2000 Gauss-Krüger (EPSG:4547), on a 250 m grid: 20 x 20 cells.
X0, Y0, SIDE, CELL = 500_000.0, 2_540_000.0, 5_000.0, 250.0
ZONES = gpd.GeoDataFrame({"zone_id": ["Z"]}, geometry=[shapely.box(X0, Y0, X0 + SIDE, Y0 + SIDE)], crs=4547)


def points(x, y, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(x, y, crs=4547))


def uniform(rng, n):
    return X0 + rng.random(n) * SIDE, Y0 + rng.random(n) * SIDE


def block(rng, n, row, col, size=3):
    """n points uniform in the size x size block of cells whose lower-left cell is (row, col)."""
    return X0 + col * CELL + rng.random(n) * size * CELL, Y0 + row * CELL + rng.random(n) * size * CELL


@pytest.fixture(scope="module")
def cells():
    return H.grid(ZONES, CELL)


# ------------------------------------------------------------------ lattice
def test_grid_keeps_cells_that_intersect_and_counts_every_inside_point(cells):
    assert len(cells) == 400 and cells.crs.to_epsg() == 4547
    assert np.allclose(cells.area, CELL * CELL)
    # An L-shaped area: the empty quarter's cells are dropped, cells only touching the outline too.
    ell = shapely.difference(ZONES.geometry[0], shapely.box(X0 + 2500, Y0 + 2500, X0 + SIDE, Y0 + SIDE))
    g = H.grid(gpd.GeoDataFrame(geometry=[ell], crs=4547), CELL)
    assert len(g) == 300
    assert shapely.intersects(ell, g.geometry.values).all() and not shapely.touches(ell, g.geometry.values).any()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, SIDE, exclude_max=True), st.floats(0, SIDE, exclude_max=True)),
                min_size=1, max_size=60))
def test_each_point_is_counted_once_in_the_cell_that_holds_it(xy):
    cells = H.grid(ZONES, CELL)
    x = X0 + np.array([p[0] for p in xy])
    y = Y0 + np.array([p[1] for p in xy])
    counts = H.count_in_cells(cells, points(x, y))
    assert counts.sum() == len(xy)
    pos = H._cell_of(cells, x, y)
    assert (pos >= 0).all()
    assert shapely.covers(cells.geometry.values[pos], shapely.points(x, y)).all()


def test_points_in_any_crs_land_in_the_same_cells(cells):
    rng = np.random.default_rng(0)
    p = points(*uniform(rng, 300))
    assert np.array_equal(H.count_in_cells(cells, p), H.count_in_cells(cells, p.to_crs(4326)))


def libpysal_weights(cells, band_cells):
    """libpysal's own weights for the cells: queen contiguity (1.5 cells) or a binary distance band."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if band_cells == 1.5:
            return Queen.from_dataframe(cells, use_index=False)
        cent = np.c_[cells.geometry.centroid.x, cells.geometry.centroid.y]
        return DistanceBand(cent, threshold=band_cells * CELL + 1e-6, binary=True)


@pytest.mark.parametrize("band_cells", [1.5, 3.0])
def test_grid_weights_match_libpysal_contiguity_and_distance_band(cells, band_cells):
    w = H.grid_weights(cells, band_cells * CELL)
    ref = libpysal_weights(cells, band_cells)
    for i in range(len(cells)):
        assert sorted(w.neighbors[i]) == sorted(ref.neighbors[i])
    assert max(w.cardinalities.values()) == (8 if band_cells == 1.5 else 28)


# ------------------------------------------------------------------ Gi* vs esda
@pytest.mark.parametrize("band_cells", [1.5, 3.0])
def test_gi_star_agrees_with_esda_on_the_same_lattice(cells, band_cells):
    rng = np.random.default_rng(3)
    ux, uy = uniform(rng, 1500)
    bx, by = block(rng, 200, 12, 8)
    p = points(np.r_[ux, bx], np.r_[uy, by])
    res = H.gi_star(p, ZONES, cells=cells, band_m=band_cells * CELL, permutations=999, seed=11)
    # esda directly, on libpysal's own weights for the same cells
    counts = H.count_in_cells(cells, p)
    w = libpysal_weights(cells, band_cells)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.G_Local(counts, w, transform="B", star=True, permutations=999, seed=11, n_jobs=1,
                           keep_simulations=True)
    assert np.array_equal(res["count"].to_numpy(), counts.astype(int))
    np.testing.assert_allclose(res["gi"], ref.Gs, rtol=1e-12)
    np.testing.assert_allclose(res["gi_z"], ref.Zs, rtol=1e-12)
    # p_sim and our two-sided p from esda's own simulations, ties counted as ties: esda compares after a
    # fast-math division (x·(1/Σy)) that puts some exact ties one ulp below the observation.
    sim, obs = ref.sim.T, ref.Gs[:, None]
    tie = np.isclose(sim, obs, rtol=1e-12, atol=0)
    ge, le = ((sim >= obs) | tie).sum(axis=1), ((sim <= obs) | tie).sum(axis=1)
    np.testing.assert_allclose(res["p_sim"], (np.minimum(ge, 999 - ge) + 1) / 1000, atol=1e-12)
    np.testing.assert_allclose(res["p_value"], np.minimum(1, 2 * (np.minimum(ge, le) + 1) / 1000), atol=1e-12)
    assert res.crs.to_epsg() == 4326 and len(res) == len(cells)


def test_planted_hotspot_is_found_and_nothing_else(cells):
    rng = np.random.default_rng(1)
    ux, uy = uniform(rng, 3000)
    bx, by = block(rng, 450, 12, 8)  # rows 12-14, cols 8-10: ~50 extra per cell over ~7.5
    res = H.gi_star(points(np.r_[ux, bx], np.r_[uy, by]), ZONES, cells=cells, band_m=1.5 * CELL,
                    permutations=9999, seed=2)
    hot = res[res.significant & (res.gi_z > 0)]
    planted = set((r, c) for r in range(12, 15) for c in range(8, 11))
    found = set(zip(hot["row"], hot["col"]))
    assert planted <= found
    # Gi* spreads into the neighbours of the block, not further.
    assert all(11 <= r <= 15 and 7 <= c <= 11 for r, c in found)
    assert set(hot["class"]) <= {"hot 95%", "hot 99%"}
    assert (res.loc[res.significant, "confidence"] >= 95).all()
    assert (res["gi_bin"][res.significant & (res.gi_z > 0)] >= 2).all()


def test_default_band_also_covers_the_planted_block(cells):
    rng = np.random.default_rng(4)
    ux, uy = uniform(rng, 3000)
    bx, by = block(rng, 450, 3, 12)
    res = H.gi_star(points(np.r_[ux, bx], np.r_[uy, by]), ZONES, cells=cells, permutations=4999, seed=4)
    hot = res[res.significant & (res.gi_z > 0)]
    found = set(zip(hot["row"], hot["col"]))
    assert set((r, c) for r in range(3, 6) for c in range(12, 15)) <= found
    assert all(abs(r - 4) <= 4 and abs(c - 13) <= 4 for r, c in found)  # within band + block of the centre


@pytest.mark.parametrize("n", [4000, 600])  # dense, and sparse with many all-zero neighbourhoods
def test_uniform_pattern_gives_no_significant_cells_after_fdr(cells, n):
    sig = 0
    raw = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        res = H.gi_star(points(*uniform(rng, n)), ZONES, cells=cells, band_m=1.5 * CELL, permutations=9999,
                        seed=seed)
        assert res.attrs["min_discoveries"] <= 2  # the test could find cells: enough permutations
        sig += int(res["significant"].sum())
        raw.append((res["p_value"] < 0.05).mean())
    assert sig <= 0.005 * 4 * len(cells)
    # the two-sided p is calibrated (esda's directed p_sim would give ~10 % here)
    assert np.mean(raw) <= 0.06


def test_empty_and_constant_lattices_are_not_significant(cells):
    none = H.gi_star(points([], []), ZONES, cells=cells, permutations=99)
    assert not none["significant"].any() and (none["p_value"] == 1).all() and (none["count"] == 0).all()
    # one point in the centre of every cell: constant counts
    c = cells.geometry.centroid
    flat = H.gi_star(points(c.x, c.y), ZONES, cells=cells, permutations=99)
    assert (flat["count"] == 1).all() and not flat["significant"].any()


def test_min_discoveries_reports_the_permutation_floor(cells):
    res = H.gi_star(points(*uniform(np.random.default_rng(0), 100)), ZONES, cells=cells, permutations=999)
    # 400 cells, p >= 2/1000: BH at 0.05 needs at least 16 cells at the floor
    assert res.attrs["min_discoveries"] == 16


# ------------------------------------------------------------------ BH and Mann-Kendall
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=80), st.sampled_from([0.01, 0.05, 0.1]))
def test_benjamini_hochberg_matches_scipy(p, alpha):
    mask, q = H.benjamini_hochberg(p, alpha)
    ref = stats.false_discovery_control(np.array(p), method="bh")
    np.testing.assert_allclose(q, ref, rtol=1e-12, atol=1e-15)
    assert np.array_equal(mask, q <= alpha)


def test_benjamini_hochberg_known_case():
    mask, q = H.benjamini_hochberg([0.01, 0.04, 0.03, 0.2], 0.05)
    # sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.06, 0.0533, 0.2 -> monotone 0.04, 0.0533, 0.0533, 0.2
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert mask.tolist() == [True, False, False, False]
    m2, q2 = H.benjamini_hochberg([np.nan, 0.001], 0.05)
    assert m2.tolist() == [False, True] and np.isnan(q2[0])


def test_mann_kendall_known_values():
    mk = H.mann_kendall([1, 2, 3, 4, 5])
    # S = 10, Var(S) = 5*4*15/18, z = (10 - 1)/sqrt(Var)
    assert mk.s == 10 and mk.var_s == pytest.approx(50 / 3)
    assert mk.z == pytest.approx(9 / np.sqrt(50 / 3)) and mk.p == pytest.approx(2 * stats.norm.sf(9 / np.sqrt(50 / 3)))
    assert mk.tau == 1.0 and mk.trend == "increasing"
    assert H.mann_kendall(np.arange(12.0)[::-1]).trend == "decreasing"
    const = H.mann_kendall([3.0] * 10)
    assert const.p == 1.0 and const.trend == "no trend"
    # ties: 1,1,2 -> S = 2, Var = (3*2*11 - 2*1*9)/18
    tied = H.mann_kendall([1, 1, 2])
    assert tied.s == 2 and tied.var_s == pytest.approx((66 - 18) / 18)
    assert H.mann_kendall([1, 2]).p == 1.0


def test_mann_kendall_noise_is_not_significant():
    hits = sum(H.mann_kendall(np.random.default_rng(s).normal(size=20)).p < 0.05 for s in range(200))
    assert hits <= 20  # ~5 % expected; 20 is > 4 standard deviations above


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-10_000, 10_000), min_size=3, max_size=40, unique=True))
def test_mann_kendall_matches_scipy_kendalltau_on_untied_data(values):
    x = np.array(values, dtype=float)
    mk = H.mann_kendall(x, continuity=False)
    ref = stats.kendalltau(np.arange(len(x)), x, method="asymptotic")
    assert mk.tau == pytest.approx(ref.statistic, abs=1e-12)
    assert mk.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------ KDE
def test_kde_matches_a_brute_force_gaussian_sum(cells):
    ux, uy = uniform(np.random.default_rng(8), 40)
    c = cells.geometry.centroid
    x, y = np.r_[ux, c.x.iloc[210]], np.r_[uy, c.y.iloc[210]]  # one point exactly on a cell centre
    h = 400.0
    res = H.kde_surface(points(x, y), ZONES, cells=cells, bandwidth_m=h)
    cent = cells.geometry.centroid
    mvn = stats.multivariate_normal(mean=[0, 0], cov=[[h * h, 0], [0, h * h]])
    brute = np.array([mvn.pdf(np.c_[x - cx, y - cy]).sum() for cx, cy in zip(cent.x, cent.y)]) * 1e6
    # truncation at 4 bandwidths drops < e^-8 of a kernel's peak per point
    np.testing.assert_allclose(res["density"], brute, rtol=0, atol=brute.max() * 1e-3 * 41)
    assert np.corrcoef(res["density"], brute)[0, 1] > 0.99999


def test_kde_mass_is_the_number_of_points_and_peaks_on_a_cluster(cells):
    rng = np.random.default_rng(2)
    bx, by = block(rng, 500, 8, 8, size=4)  # well inside: little mass spills out
    res = H.kde_surface(points(bx, by), ZONES, cells=cells, bandwidth_m=300)
    mass = (res["density"] * CELL * CELL / 1e6).sum()
    assert mass == pytest.approx(500, rel=0.01)
    top = res.loc[res["density"].idxmax()]
    assert 8 <= top["row"] <= 11 and 8 <= top["col"] <= 11
    assert res["count"].sum() == 500 and res.crs.to_epsg() == 4326


# ------------------------------------------------------------------ emerging hot spots
@pytest.mark.parametrize("hot, z, expected", [
    ([0, 0, 0, 0, 0], [0, 1, 0, 1, 0], "no pattern"),
    ([0, 0, 0, 0, 1], [0, 0, 0, 0, 3], "new"),
    ([1] * 10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "intensifying"),
    ([1] * 10, [5, 4, 6, 5, 4, 6, 5, 4, 6, 5], "persistent"),
    ([1] * 10, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], "diminishing"),
    ([1] * 9 + [0], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], "diminishing"),  # cooled in the last period
    ([1] * 9 + [0], [5, 4, 6, 5, 4, 6, 5, 4, 6, 5], "sporadic"),
    ([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], [0, 3, 0, 3, 0, 3, 0, 3, 0, 3], "sporadic"),
])
def test_emerging_rules(hot, z, expected):
    cat, _ = H.classify_emerging(np.array(hot, bool), np.array(z, float))
    assert cat == expected


def test_emerging_hotspots_recover_planted_histories(cells):
    T = 10
    blocks = {"persistent": (3, 3), "intensifying": (3, 14), "diminishing": (14, 3), "new": (14, 14),
              "sporadic": (9, 9)}

    def extra(kind, t):
        # extra points per period in a 3x3 block, over ~3.75 per cell of background
        return {"persistent": 220, "intensifying": 170 + 25 * t, "diminishing": 420 - 25 * t,
                "new": 220 if t == T - 1 else 0, "sporadic": 220 if t in (1, 4, 7) else 0}[kind]

    rng = np.random.default_rng(5)
    xs, ys, ts = [], [], []
    for t in range(T):
        when = pd.Timestamp(2025, 1 + t, 10, 9, tz="Asia/Shanghai")
        x, y = uniform(rng, 1500)
        xs.append(x), ys.append(y)
        ts += [when] * 1500
        for kind, (r, c) in blocks.items():
            x, y = block(rng, extra(kind, t), r, c)
            xs.append(x), ys.append(y)
            ts += [when] * len(x)
    p = points(np.concatenate(xs), np.concatenate(ys), created_at=ts)
    series = H.gi_star_series(p, ZONES, cells=cells, band_m=1.5 * CELL, permutations=4999, seed=3)
    assert series["period"].nunique() == T and len(series) == T * len(cells)
    em = H.emerging_hotspots(p, ZONES, cells=cells, series=series)
    for kind, (r, c) in blocks.items():
        centre = em[(em["row"] == r + 1) & (em["col"] == c + 1)].iloc[0]
        assert centre["category"] == kind, (kind, centre.to_dict())
    far = np.ones(len(em), bool)
    for r, c in blocks.values():
        far &= ~(em["row"].between(r - 1, r + 3) & em["col"].between(c - 1, c + 3))
    assert (em.loc[far, "category"] == "no pattern").mean() >= 0.97
    assert set(em["category"]) <= set(H.EMERGING) and em.crs.to_epsg() == 4326


def test_cells_must_come_from_grid(cells):
    with pytest.raises(ValueError, match="grid"):
        H.gi_star(points([X0 + 1], [Y0 + 1]), ZONES, cells=cells.to_crs(4326), permutations=99)
    with pytest.raises(ValueError, match="CRS"):
        H.count_in_cells(cells, gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]))
