"""The Gi* permutation kernel: esda's draws and statistic (esda is the reference), and kept in numba's disk
cache, so a new process computes hot spots without compiling anything."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from esda.crand import vec_permutations
from esda.getisord import G_Local, _g_local_star_crand
from hypothesis import given, settings
from hypothesis import strategies as st
from libpysal.weights import W
from numba import njit
from numba.core.caching import NullCache

import gis
from gis import hotspot_kernels as K
from gis import hotspots as H

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ esda, the reference
@settings(max_examples=25, deadline=None)
@given(st.integers(2, 300), st.integers(0, 40), st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_the_draws_are_esdas(n, max_card, permutations, seed):
    max_card = min(max_card, n - 1)
    np.testing.assert_array_equal(K._permuted_ids(max_card, n, permutations, seed),
                                  vec_permutations(max_card, n, permutations, seed))


@st.composite
def lattices(draw):
    """Integer counts and a random sparse weights matrix with integer weights (binary or not), some
    islands, integer self weights: every statistic is an exact integer over Σy, so ties are exact."""
    n = draw(st.integers(3, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.poisson(draw(st.sampled_from([0.3, 2.0, 20.0])), n).astype("f8")
    y[draw(st.integers(0, n - 1))] += 1  # Σy > 0
    a = sp.random(n, n, density=draw(st.floats(0.05, 0.5)), random_state=rng, format="csr")
    a.setdiag(0)
    a[0, 1] = 1.0  # one edge at least: esda fails when every site is an island
    a.eliminate_zeros()
    a.data = rng.integers(1, 4, a.nnz).astype("f8") if draw(st.booleans()) else np.ones(a.nnz)
    own = rng.integers(0, 3, n).astype("f8")
    return y, a, own, draw(st.integers(0, 2**31 - 1))


def weights_of(a) -> W:
    """A libpysal W of a sparse matrix, islands included (W.from_sparse drops them)."""
    rows = [slice(a.indptr[i], a.indptr[i + 1]) for i in range(a.shape[0])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal's notes on islands and components
        return W({i: a.indices[r].tolist() for i, r in enumerate(rows)}, {i: a.data[r].tolist() for i, r in enumerate(rows)},
                 id_order=list(range(a.shape[0])), silence_warnings=True)


def esda_tails(y, a, own, permutations, seed):
    """Tail counts from esda's own draws (crand.vec_permutations) and statistic (getisord._g_local_star_crand),
    site by site as esda.crand's driver hands them over: the self weight first, then the row's other weights in
    CSR order; an island gets [0, 0]. (esda's driver itself takes 20 s of CPU to compile; tests/gis/test_hotspots.py
    runs it, through G_Local.) The integer numerators are recovered exactly: esda's fast-math x·(1/Σy) puts some
    exact ties one ulp below the observation."""
    card = np.diff(a.indptr)
    ids = vec_permutations(int(card.max()), len(y), permutations, seed)
    total, obs = y.sum(), a @ y + own * y
    ge, le = np.zeros(len(y), dtype=int), np.zeros(len(y), dtype=int)
    for i in range(len(y)):
        wi = np.r_[own[i], a.data[a.indptr[i]:a.indptr[i + 1]]] if card[i] else np.zeros(2)
        sims = _g_local_star_crand(i, y, ids, wi, total) * total
        num = np.rint(sims)
        assert np.allclose(sims, num, rtol=1e-9, atol=1e-9)  # integers, as the strategy promises
        ge[i], le[i] = (num >= obs[i]).sum(), (num <= obs[i]).sum()
    return ge, le


@settings(max_examples=40, deadline=None)
@given(lattices(), st.integers(1, 200))
def test_tail_counts_are_those_of_esdas_simulations(lattice, permutations):
    y, a, own, seed = lattice
    ge, le = K.tail_counts(y, a, own, permutations, seed)
    ref_ge, ref_le = esda_tails(y, a, own, permutations, seed)
    np.testing.assert_array_equal(ge, ref_ge)
    np.testing.assert_array_equal(le, ref_le)


def test_islands_simulate_zero_as_in_esda():
    """An island's draws give 0 (esda drops its self weight too): ≥ only where it observed 0 itself."""
    y, own = np.array([0.0, 3.0, 1.0]), np.array([1.0, 1.0, 0.0])
    ge, le = K.tail_counts(y, sp.csr_matrix((3, 3)), own, 50, 1)
    assert ge.tolist() == [50, 0, 50] and le.tolist() == [50, 50, 50]
    with pytest.raises(ValueError, match="self_weights"):  # a weight on the diagonal would count twice
        K.tail_counts(y, sp.identity(3, format="csr"), own, 50, 1)


@settings(max_examples=30, deadline=None)
@given(lattices())
def test_gi_star_and_z_are_esdas(lattice):
    y, a, _, _ = lattice
    w = weights_of(a)
    gs, z, _, _ = H._gi(y, w.sparse, 0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = G_Local(y, w, transform="B", star=True, permutations=0)
    if np.all(y == y[0]):
        assert (gs == 0).all() and (z == 0).all()  # nothing to cluster
        return
    np.testing.assert_allclose(gs, ref.Gs, rtol=1e-12)
    np.testing.assert_allclose(z, ref.Zs, rtol=1e-10)


# ------------------------------------------------------------------ the disk cache, in fresh processes
PROBE = r"""
import json, sys
import geopandas as gpd, numpy as np, shapely
from numba.core.event import install_recorder
import gis
from gis import hotspots as H

zones = gpd.GeoDataFrame(geometry=[shapely.box(500000, 2540000, 502500, 2542500)], crs=4547)
rng = np.random.default_rng(0)
pts = gpd.GeoSeries(gpd.points_from_xy(500000 + rng.random(400) * 1000, 2540000 + rng.random(400) * 2500), crs=4547)
with install_recorder("numba:compile") as rec:
    hs = H.gi_star(pts, zones, cell_size=250, permutations=99, seed=1)
compiled = sorted({ev.data["dispatcher"].py_func.__qualname__ for _, ev in rec.buffer if ev.is_start})
k = sys.modules.get("gis.hotspot_kernels")
hits = {f: sum(getattr(k, f).stats.cache_hits.values()) for f in ("_permuted_ids", "_tail_counts")} if k else {}
print(json.dumps({"gis": gis.__file__, "compiled": compiled, "hits": hits, "p": hs["p_value"].tolist()}))
"""


def probe(env: dict, pythonpath: Path = REPO) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    e.update(env, PYTHONPATH=str(pythonpath), NUMBA_DISABLE_PERFORMANCE_WARNINGS="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, cwd=pythonpath, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def installed_copy(tmp_path: Path) -> Path:
    """gis copied as into a site-packages whose package directories are not writable: its __pycache__
    cannot be created (a plain file stands there; we run as root, where permissions would not stop us)."""
    site = tmp_path / "site"
    shutil.copytree(Path(gis.__file__).parent, site / "gis", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "gis" / "__pycache__").write_text("")
    return site


def test_a_new_process_loads_the_kernels_from_the_cache(tmp_path):
    """After one process computed hot spots, the next compiles nothing: esda compiled its kernels again in
    every process (15–25 s before the first hot-spot map after each start). Installed as in a site-packages
    whose package directories are not writable, and no NUMBA_CACHE_DIR: the user-wide cache
    (tests/live/test_cold_start.py runs a server with NUMBA_CACHE_DIR)."""
    cache = tmp_path / "cache"
    site = installed_copy(tmp_path)
    first = probe({"XDG_CACHE_HOME": str(cache)}, site)
    second = probe({"XDG_CACHE_HOME": str(cache)}, site)
    assert Path(first["gis"]).parent == site / "gis"
    assert "_tail_counts" in first["compiled"]  # an empty cache to begin with: the test could fail
    assert second["compiled"] == []
    assert second["hits"] == {"_permuted_ids": 1, "_tail_counts": 1}
    assert second["p"] == first["p"]
    assert list((cache / "numba").rglob("hotspot_kernels._tail_counts-*.nbi"))


def test_without_a_cache_location_the_kernels_still_compile():
    """Where numba finds no writable cache location (a read-only install without NUMBA_CACHE_DIR or a home),
    njit(cache=True) raises at import; the kernels are then compiled in each process instead."""
    ns: dict = {}
    exec(compile("def f(x):\n    return x + 1\n", "<no file, so no cache location>", "exec"), ns)
    with pytest.raises(RuntimeError, match="no locator"):
        njit(cache=True)(ns["f"])
    f = K._jit(ns["f"])
    assert f(1) == 2 and isinstance(f._cache, NullCache)  # compiled, not looked up in a cache
    assert not isinstance(K._tail_counts._cache, NullCache)  # here, in a checkout, the kernels are cached
