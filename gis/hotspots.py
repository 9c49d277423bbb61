"""Hot spots of reports: Getis–Ord Gi* on a square grid, kernel density, emerging hot spots.

>>> hs = gi_star(frame, index, cell_size=250)              # doctest: +SKIP
>>> hs[hs.significant & (hs.gi_z > 0)]                     # doctest: +SKIP

The lattice is a square grid in EPSG:4547 (metres) anchored at multiples of
the cell size; only cells that intersect a zone are kept (whole squares, not
clipped, so every cell has the same area). Neighbours are the cells whose
centres lie within a distance band (default 3 cells: 28 neighbours; 1.5 cells
gives queen contiguity); Gi* uses binary weights with the cell itself included
(esda.G_Local, star=True, transform="B").

Inference: conditional permutations, esda's draws in our own compiled kernel
(gis.hotspot_kernels: cached on disk, where esda's are compiled again in every
process, which took 15–25 s before the first map). esda's ``p_sim`` is "directed"
(the smaller tail, chosen after looking, ties counted on one side only), which
is about twice too small and calls all-zero neighbourhoods significant cold
spots. We therefore compute a two-sided, tie-aware pseudo p-value from the
same permutations, p = min(1, 2·min(P(sim ≥ obs), P(sim ≤ obs))), and apply the
Benjamini–Hochberg false discovery rate to it. Confidence bins follow ESRI:
a cell is in the 99 / 95 / 90 % bin when it is a BH discovery at
α = 0.01 / 0.05 / 0.10, and hot or cold by the sign of its z-score. With R
permutations no p is below 2/(R+1), so few discoveries need many permutations
(the default is 9999; about 3 s for the two towns at 250 m).

Emerging hot spots (simplified from ESRI's "Emerging Hot Spot Analysis"):
Gi* per cell per period (week or month), a cell being "hot" in a period when it
is a BH discovery (α) with z > 0; then a Mann–Kendall test on the cell's Gi* z
series. With T periods, share = hot periods / T:

- ``no pattern``: never hot;
- ``new``: hot in the final period and never before;
- ``intensifying``: share ≥ 90 %, hot in the final period, z rising (MK, α);
- ``persistent``: share ≥ 90 %, hot in the final period, no significant trend;
- ``diminishing``: share ≥ 90 %, z falling (MK, α); the final period may have cooled;
- ``sporadic``: every other cell that was hot at some time (on and off; this
  merges ESRI's consecutive, sporadic, oscillating and historical).
"""
from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.analysis import MannKendall, mann_kendall, period_start
from gis.boundaries import METRIC

EMERGING = ("new", "intensifying", "persistent", "diminishing", "sporadic", "no pattern")
LEVELS = (0.01, 0.05, 0.10)  # 99, 95, 90 % confidence
DEFAULT_BAND_CELLS = 3.0  # neighbourhood radius in cells, see grid_weights

__all__ = ["grid", "grid_weights", "count_in_cells", "gi_star", "gi_star_series", "benjamini_hochberg",
           "kde_surface", "emerging_hotspots", "classify_emerging", "mann_kendall", "MannKendall", "EMERGING", "warm_up",
           "grid_neighbours"]


# ------------------------------------------------------------------ lattice
def _area(zones) -> gpd.GeoDataFrame:
    z = getattr(zones, "zones", zones)
    if isinstance(z, gpd.GeoSeries):
        z = gpd.GeoDataFrame(geometry=z)
    if not isinstance(z, gpd.GeoDataFrame) or z.crs is None:
        raise ValueError("zones must be a ZoneIndex or a GeoDataFrame/GeoSeries with a CRS")
    return z.to_crs(METRIC)


def grid(zones, cell_size: float = 250.0) -> gpd.GeoDataFrame:
    """Square cells of ``cell_size`` metres (EPSG:4547) that intersect the zones.

    Columns: cell_id ("r<row>c<col>", stable for a given area and size), row,
    col, geometry (EPSG:4547). ``attrs`` hold the origin and cell size.
    """
    if not cell_size > 0:
        raise ValueError("cell_size must be positive (metres)")
    area = shapely.union_all(_area(zones).geometry.values)
    minx, miny, maxx, maxy = area.bounds
    x0 = np.floor(minx / cell_size) * cell_size
    y0 = np.floor(miny / cell_size) * cell_size
    ncol = int(np.ceil((maxx - x0) / cell_size))
    nrow = int(np.ceil((maxy - y0) / cell_size))
    row, col = np.divmod(np.arange(nrow * ncol), ncol)
    boxes = shapely.box(x0 + col * cell_size, y0 + row * cell_size, x0 + (col + 1) * cell_size,
                        y0 + (row + 1) * cell_size)
    shapely.prepare(area)
    keep = shapely.intersects(area, boxes) & ~shapely.touches(area, boxes)
    cells = gpd.GeoDataFrame({"cell_id": [f"r{r}c{c}" for r, c in zip(row[keep], col[keep])],
                              "row": row[keep], "col": col[keep]}, geometry=boxes[keep], crs=METRIC)
    cells.attrs.update(x0=float(x0), y0=float(y0), cell_size=float(cell_size))
    return cells


def grid_weights(cells: gpd.GeoDataFrame, band_m: float | None = None):
    """Binary neighbours among the grid's cells, as a libpysal W in cell order.

    Neighbours are the other cells whose centres lie within ``band_m`` metres
    (a fixed distance band). The default, 3 cells, gives 28 neighbours: in
    sparse, skewed report counts the 8 surrounding cells (``band_m`` = 1.5
    cells, queen contiguity) rarely survive the FDR correction. gi_star uses
    the same neighbours as a sparse matrix (grid_neighbours): importing
    libpysal takes seconds, which the first hot-spot map of a process would wait for.
    """
    from libpysal.weights import W

    a = grid_neighbours(cells, band_m)
    neighbors = {i: a.indices[a.indptr[i]:a.indptr[i + 1]].tolist() for i in range(a.shape[0])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands (cells without a neighbour) are kept; _gi gives them p = 1
        return W(neighbors, id_order=list(range(len(cells))), silence_warnings=True)


def grid_neighbours(cells: gpd.GeoDataFrame, band_m: float | None = None):
    """grid_weights as a scipy CSR matrix: 1 where cell j is a neighbour of cell i, no diagonal, sorted rows."""
    from scipy import sparse

    cs = _lattice(cells)["cell_size"]
    band = DEFAULT_BAND_CELLS * cs if band_m is None else float(band_m)
    k = int(np.floor(band / cs + 1e-9))
    offs = [(dr, dc) for dr in range(-k, k + 1) for dc in range(-k, k + 1)
            if (dr or dc) and (dr * dr + dc * dc) * cs * cs <= band * band * (1 + 1e-12)]
    rows, cols = cells["row"].to_numpy(), cells["col"].to_numpy()
    lookup = pd.Series(np.arange(len(cells)), index=pd.MultiIndex.from_arrays([rows, cols]))
    src, dst = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for dr, dc in offs:
        j = lookup.reindex(pd.MultiIndex.from_arrays([rows + dr, cols + dc])).to_numpy()
        ok = ~np.isnan(j)
        src.append(np.flatnonzero(ok))
        dst.append(j[ok].astype(np.int64))
    i, j = np.concatenate(src), np.concatenate(dst)
    a = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(len(cells), len(cells)))
    a.sort_indices()
    return a


def _xy(points) -> tuple[np.ndarray, np.ndarray]:
    """Metric (EPSG:4547) coordinates of point geometries; missing or empty points are dropped."""
    g = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if not isinstance(g, gpd.GeoSeries) or g.crs is None:
        raise ValueError("points must be a GeoDataFrame/GeoSeries with a CRS")
    g = g[g.notna() & ~g.is_empty].to_crs(METRIC)
    return g.x.to_numpy(dtype="f8"), g.y.to_numpy(dtype="f8")


def _lattice(cells) -> dict:
    a = getattr(cells, "attrs", {})
    if not {"x0", "y0", "cell_size"} <= set(a) or cells.crs is None or cells.crs.to_epsg() != 4547:
        raise ValueError("cells must be a grid() result (EPSG:4547, with its origin and cell size in attrs)")
    return a


def _cell_of(cells, x, y) -> np.ndarray:
    """Position in ``cells`` of each metric point (-1 outside every kept cell); edges go to the upper/right cell."""
    a = _lattice(cells)
    cs = a["cell_size"]
    r = np.floor((y - a["y0"]) / cs).astype(np.int64)
    c = np.floor((x - a["x0"]) / cs).astype(np.int64)
    lookup = pd.Series(np.arange(len(cells)), index=pd.MultiIndex.from_arrays([cells["row"], cells["col"]]))

    def find(rr, cc):
        return lookup.reindex(pd.MultiIndex.from_arrays([rr, cc])).fillna(-1).to_numpy(dtype=np.int64)

    pos = find(r, c)
    # A point on the lower/left edge of a missing cell (e.g. the outline's top or right side) is
    # covered by the kept cell below or to the left.
    on_r = (y - a["y0"]) == r * cs
    on_c = (x - a["x0"]) == c * cs
    for dr, dc, on in ((1, 0, on_r), (0, 1, on_c), (1, 1, on_r & on_c)):
        miss = (pos < 0) & on
        if miss.any():
            pos[miss] = find(r[miss] - dr, c[miss] - dc)
    return pos


def count_in_cells(cells: gpd.GeoDataFrame, points) -> np.ndarray:
    """Number of points in each cell (points outside the kept cells are not counted)."""
    x, y = _xy(points)
    pos = _cell_of(cells, x, y)
    return np.bincount(pos[pos >= 0], minlength=len(cells)).astype("f8")


# ------------------------------------------------------------------ inference
def benjamini_hochberg(p, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg: (discovery mask at ``alpha``, adjusted q-values). NaN p-values are never discoveries."""
    p = np.asarray(p, dtype="f8")
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m:
        order = np.argsort(p[ok])
        ranked = p[ok][order] * m / np.arange(1, m + 1)
        adj = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
        qs = np.empty(m)
        qs[order] = adj
        q[ok] = qs
    return np.where(ok, q <= alpha, False), q


def _gi(y, a, permutations, seed):
    """Gi* (as esda.G_Local, star=True, transform="B") and, from conditional permutations, the directed
    p_sim and a two-sided tie-aware p.

    Returns (G*, z, p_sim, p). The permutations are esda's (same seed, same draws; see
    gis.hotspot_kernels), counted in one pass for both tails with ties counted as ties: esda
    compares after a fast-math division, which puts some exact ties one ulp below the observed
    value, so its p_sim can be smaller where a draw equals the observation.
    """
    n = len(y)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.ones(0)
    if y.sum() == 0 or np.all(y == y[0]):
        return np.zeros(n), np.zeros(n), np.ones(n), np.ones(n)  # nothing to cluster
    gs, z, a = _gi_moments(y, a)
    if not permutations:
        from scipy import stats

        return gs, z, np.full(n, np.nan), np.minimum(1.0, 2 * stats.norm.sf(np.abs(z)))
    from gis.hotspot_kernels import tail_counts  # imports numba: only when permutations are asked for

    r = int(permutations)
    seed = int(np.random.default_rng().integers(12345, 12345000)) if seed is None else int(seed)
    ge, le = tail_counts(y, a, np.ones(n), r, seed)
    larger = ge.copy()
    low = (r - larger) < larger
    larger[low] = r - larger[low]
    p_sim = (larger + 1) / (r + 1)
    p = np.minimum(1.0, 2 * (np.minimum(ge, le) + 1) / (r + 1))
    p[np.diff(a.indptr) == 0] = 1.0  # a cell without neighbours has nothing to compare with
    return gs, z, p_sim, p


def _gi_moments(y, a):
    """G*, its z-score (esda.G_Local's analytical moments, binary weights, self weight 1) and the binary
    neighbour matrix (from a, any scipy sparse matrix of weights) without its diagonal."""
    a = a.tocsr(copy=True)
    if a.diagonal().any():
        a.setdiag(0)
    a.eliminate_zeros()
    a.data[:] = 1.0
    n, total = len(y), y.sum()
    gs = (a @ y + y) / total
    mean = total / n
    var = (y * y).sum() / n - mean * mean
    card = np.diff(a.indptr) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):  # a neighbourhood of every cell: z is NaN, as in esda
        ev = card * (n - card) / (n - 1) / n ** 2 * var / mean ** 2
        return gs, (gs - card / n) / np.sqrt(ev), a


def warm_up() -> None:
    """Load what the first gi_star in a process would wait for: numba and the compiled permutation
    kernels (from numba's disk cache, or compiled and stored there on a fresh install).

    About a second with the cache; the app runs it in a background thread at startup.
    """
    from scipy import sparse

    _gi(np.array([1.0, 0.0, 2.0, 0.0]), sparse.diags([1.0, 1.0, 1.0], 1, shape=(4, 4)), 9, 0)


def _classify(z, p):
    """Confidence (0/90/95/99), bin (-3..3) and class label per cell, from BH at 0.10 / 0.05 / 0.01."""
    conf = np.zeros(len(p), dtype=np.int64)
    for level, c in zip(LEVELS[::-1], (90, 95, 99)):
        conf[benjamini_hochberg(p, level)[0]] = c
    sign = np.sign(np.nan_to_num(z))
    gbin = (sign * np.select([conf == 99, conf == 95, conf == 90], [3, 2, 1], 0)).astype(np.int64)
    label = np.where(conf == 0, "not significant",
                     np.where(z > 0, "hot ", "cold ").astype(object) + conf.astype(str).astype(object) + "%")
    return conf, gbin, label


def gi_star(points, zones, cell_size: float = 250.0, band_m: float | None = None, permutations: int = 9999,
            alpha: float = 0.05, seed: int | None = 0, cells: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Getis–Ord Gi* of point counts on the grid, with permutation inference and BH FDR.

    Returns a WGS-84 GeoDataFrame of cells: cell_id, row, col, count, gi (G*),
    gi_z, p_sim (the directed pseudo p as esda defines it), p_value (two-sided, tie-aware),
    q_value (BH), significant (q ≤ alpha), confidence (0/90/95/99), gi_bin
    (-3..3) and class ("hot 99%", ..., "cold 90%", "not significant").
    ``band_m``: neighbourhood radius (see grid_weights; default 3 cells).
    ``seed``: the same seed gives the same permutations (esda's, for that seed).
    ``attrs["min_discoveries"]``: the fewest cells that BH can call significant
    at all with this many permutations (p never goes below 2/(R+1)).
    """
    cells = grid(zones, cell_size) if cells is None else cells
    y = count_in_cells(cells, points)
    out = _result(cells, y, grid_neighbours(cells, band_m), permutations, alpha, seed)
    out.attrs.update(cell_size=cells.attrs["cell_size"], permutations=permutations, alpha=alpha,
                     min_discoveries=_min_discoveries(len(cells), permutations, alpha))
    return out


def _min_discoveries(m: int, permutations: int, alpha: float) -> int:
    """BH rejects k cells only if the k-th smallest p ≤ alpha·k/m; the smallest possible p is 2/(R+1)."""
    if not permutations:
        return 1
    return max(1, int(np.ceil(2.0 / (permutations + 1) * m / alpha - 1e-9)))


def _result(cells, y, a, permutations, alpha, seed):
    gs, z, p_sim, p = _gi(y, a, permutations, seed)
    sig, q = benjamini_hochberg(p, alpha)
    conf, gbin, label = _classify(z, p)
    out = gpd.GeoDataFrame({
        "cell_id": cells["cell_id"].to_numpy(), "row": cells["row"].to_numpy(), "col": cells["col"].to_numpy(),
        "count": y.astype("int64"), "gi": gs, "gi_z": z, "p_sim": p_sim, "p_value": p, "q_value": q,
        "significant": sig, "confidence": conf, "gi_bin": gbin, "class": label,
    }, geometry=cells.geometry.to_numpy(), crs=cells.crs)
    return out.to_crs(4326)


# ------------------------------------------------------------------ density
def kde_surface(points, zones, cell_size: float = 250.0, bandwidth_m: float | None = None,
                cells: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Gaussian kernel density of the points at the grid's cell centres, in points per km².

    Isotropic kernel with standard deviation ``bandwidth_m`` (default 2 cells),
    truncated at 4 bandwidths; summing density × cell area recovers the number
    of points up to what spills outside the grid. Returns a WGS-84
    GeoDataFrame of cells: cell_id, row, col, count, density.
    """
    from scipy.spatial import cKDTree

    cells = grid(zones, cell_size) if cells is None else cells
    h = float(bandwidth_m) if bandwidth_m is not None else 2.0 * _lattice(cells)["cell_size"]
    if not h > 0:
        raise ValueError("bandwidth_m must be positive")
    x, y = _xy(points)
    c = shapely.centroid(cells.geometry.values)
    cx, cy = shapely.get_x(c), shapely.get_y(c)
    dens = np.zeros(len(cells))
    if len(x) and len(cells):
        # "ndarray" output keeps zero distances (a point on a centre), which sparse matrices would drop
        tree = cKDTree(np.c_[cx, cy])
        for s in range(0, len(x), 20_000):  # bounded memory: pairs per chunk, not per data set
            d = tree.sparse_distance_matrix(cKDTree(np.c_[x[s:s + 20_000], y[s:s + 20_000]]), 4 * h,
                                            output_type="ndarray")
            k = np.exp(-0.5 * (d["v"] / h) ** 2) / (2 * np.pi * h * h)
            dens += np.bincount(d["i"], weights=k, minlength=len(cells))
    out = gpd.GeoDataFrame({"cell_id": cells["cell_id"].to_numpy(), "row": cells["row"].to_numpy(),
                            "col": cells["col"].to_numpy(), "count": count_in_cells(cells, points).astype("int64"),
                            "density": dens * 1e6}, geometry=cells.geometry.to_numpy(), crs=cells.crs)
    return out.to_crs(4326)


# ------------------------------------------------------------------ emerging hot spots
def _times(points, time_col):
    if time_col not in points.columns:
        raise ValueError(f"points need a {time_col!r} column")
    return points[time_col]


def gi_star_series(points, zones, time_col: str = "created_at", freq: str = "M", cell_size: float = 250.0,
                   band_m: float | None = None, permutations: int = 9999, alpha: float = 0.05, seed: int | None = 0,
                   cells: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """Gi* per cell and period (long: cell_id, period, count, gi_z, p_value, q_value, hot, cold).

    Periods are local calendar weeks ("W") or months ("M") of ``time_col``,
    every period between the first and the last included (empty ones too);
    BH is applied within each period. Period k uses seed + k.
    """
    cells = grid(zones, cell_size) if cells is None else cells
    a = grid_neighbours(cells, band_m)
    g = points[points.geometry.notna() & ~points.geometry.is_empty]
    per = period_start(_times(g, time_col), freq)
    freq_code = {"W": "W-SUN", "M": "M"}[freq]
    periods = pd.period_range(per.min(), per.max(), freq=freq_code).start_time if len(per) else []
    parts = []
    for k, p0 in enumerate(periods):
        y = count_in_cells(cells, g[(per == p0).to_numpy()])
        _, z, _, p = _gi(y, a, permutations, None if seed is None else seed + k)
        sig, q = benjamini_hochberg(p, alpha)
        parts.append(pd.DataFrame({"cell_id": cells["cell_id"].to_numpy(), "period": p0, "count": y.astype("int64"),
                                   "gi_z": z, "p_value": p, "q_value": q, "hot": sig & (z > 0), "cold": sig & (z < 0)}))
    cols = ["cell_id", "period", "count", "gi_z", "p_value", "q_value", "hot", "cold"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def classify_emerging(hot, z, alpha: float = 0.05, persistent_share: float = 0.9) -> tuple[str, MannKendall]:
    """Category of one cell from its per-period hot flags and Gi* z series (time order); see the module docstring."""
    hot = np.asarray(hot, dtype=bool)
    mk = mann_kendall(z, alpha=alpha)
    if not hot.any():
        return "no pattern", mk
    if hot[-1] and not hot[:-1].any():
        return "new", mk
    if hot.mean() >= persistent_share:
        if mk.trend == "decreasing":
            return "diminishing", mk
        if hot[-1]:
            return ("intensifying" if mk.trend == "increasing" else "persistent"), mk
    return "sporadic", mk


def emerging_hotspots(points, zones, time_col: str = "created_at", freq: str = "M", cell_size: float = 250.0,
                      band_m: float | None = None, permutations: int = 9999, alpha: float = 0.05,
                      persistent_share: float = 0.9,
                      seed: int | None = 0, series: pd.DataFrame | None = None,
                      cells: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Emerging hot spot category per cell (WGS-84 GeoDataFrame).

    Columns: cell_id, row, col, count (all periods), periods, hot_periods,
    hot_share, last_hot, mk_tau, mk_z, mk_p, trend and category (one of
    EMERGING). Pass ``series`` (from gi_star_series) to reuse a computation.
    """
    cells = grid(zones, cell_size) if cells is None else cells
    if series is None:
        series = gi_star_series(points, zones, time_col, freq, cells=cells, band_m=band_m, permutations=permutations,
                                alpha=alpha, seed=seed)
    s = series.sort_values(["cell_id", "period"])
    rows = []
    for cid, g in s.groupby("cell_id", sort=False):
        hot = g["hot"].to_numpy(dtype=bool)
        cat, mk = classify_emerging(hot, g["gi_z"].to_numpy(dtype="f8"), alpha, persistent_share)
        rows.append({"cell_id": cid, "count": int(g["count"].sum()), "periods": len(g), "hot_periods": int(hot.sum()),
                     "hot_share": float(hot.mean()) if len(hot) else 0.0, "last_hot": bool(hot[-1]) if len(hot) else False,
                     "mk_tau": mk.tau, "mk_z": mk.z, "mk_p": mk.p, "trend": mk.trend, "category": cat})
    res = pd.DataFrame(rows, columns=["cell_id", "count", "periods", "hot_periods", "hot_share", "last_hot", "mk_tau",
                                      "mk_z", "mk_p", "trend", "category"])
    out = cells[["cell_id", "row", "col", "geometry"]].merge(res, on="cell_id", how="left")
    out["category"] = out["category"].fillna("no pattern")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=cells.crs).to_crs(4326)
