"""Compiled conditional permutations for Gi* (numba, cached on disk), the same draws as esda.

esda's own kernels (esda.crand) are compiled without a cache, so every new process spent
15–25 s compiling them before its first hot-spot map. These are compiled once and kept in
numba's cache: ``gis/__pycache__`` when that is writable, else numba's user-wide cache
(``~/.cache/numba``), or the directory in the environment variable ``NUMBA_CACHE_DIR``
when it is set (a deployment concern; gis reads no environment itself).

Same inputs and seed, same permutations as ``esda.crand.crand`` (numba's np.random: seed,
then ``choice(n - 1, max_card, replace=False)`` per permutation), and the same simulated
statistic, compared as numerators (the common scaling Σy cancels). For integer counts the
tail counts are those of esda's simulations, ties counted exactly
(tests/gis/test_hotspot_kernels.py); esda's own comparison, after a fast-math division,
misses some ties by one ulp.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def _jit(fn):
    """njit with the disk cache, or without it where no cache location is writable
    (a read-only install without NUMBA_CACHE_DIR), rather than failing at import."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return njit(nogil=True)(fn)


@_jit
def _permuted_ids(max_card, n, permutations, seed):
    """esda.crand.vec_permutations: per permutation, max_card draws without replacement from 0..n-2."""
    np.random.seed(seed)
    out = np.empty((permutations, max_card), dtype=np.int32)  # half the memory the counting loop reads
    for k in range(permutations):
        out[k] = np.random.choice(n - 1, size=max_card, replace=False)
    return out


@_jit
def _tail_counts(y, indptr, indices, weights, self_weights, ids, lo, hi, ge, le):
    """For sites lo..hi-1: simulations with a statistic ≥ (into ge) and ≤ (into le) the observed one.

    A simulation keeps y[i] and gives the neighbours' weights (CSR row i, diagonal
    excluded) to the values of other sites drawn by ``ids`` (0..n-2, site i skipped),
    pairing the c-th weight with the c-th draw as esda does. An island (no neighbours)
    simulates 0, as in esda, where its self weight is dropped too.
    """
    others = np.empty(max(y.shape[0] - 1, 0), dtype=y.dtype)  # y without site i, as esda's draws index it
    others[lo:] = y[lo + 1:]
    others[:lo] = y[:lo]
    for i in range(lo, hi):
        if i > lo:
            others[i - 1] = y[i - 1]
        start, stop = indptr[i], indptr[i + 1]
        own = self_weights[i] * y[i]
        obs = own
        for t in range(start, stop):
            obs += weights[t] * y[indices[t]]
        n_ge = 0
        n_le = 0
        r = ids.shape[0]
        if stop == start:  # an island
            n_ge, n_le = r * (0.0 >= obs), r * (0.0 <= obs)
            r = 0
        # Four permutations at a time: four independent chains of additions keep the CPU busy
        # (one chain waits on each addition), each summed in the same order as alone.
        for k in range(0, r - r % 4, 4):
            s0 = s1 = s2 = s3 = own
            for c in range(stop - start):
                wc = weights[start + c]
                s0 += wc * others[ids[k, c]]
                s1 += wc * others[ids[k + 1, c]]
                s2 += wc * others[ids[k + 2, c]]
                s3 += wc * others[ids[k + 3, c]]
            n_ge += (s0 >= obs) + (s1 >= obs) + (s2 >= obs) + (s3 >= obs)
            n_le += (s0 <= obs) + (s1 <= obs) + (s2 <= obs) + (s3 <= obs)
        for k in range(r - r % 4, r):
            s = own
            for c in range(stop - start):
                s += weights[start + c] * others[ids[k, c]]
            n_ge += s >= obs
            n_le += s <= obs
        ge[i] = n_ge
        le[i] = n_le


def tail_counts(y, neighbours, self_weights, permutations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Conditional permutations of a local G* statistic: (draws ≥ observed, draws ≤ observed) per site.

    ``y``: values per site; ``neighbours``: scipy sparse matrix of the weights between
    different sites (no diagonal, no stored zeros); ``self_weights``: each site's own weight.
    Observed statistic of site i: self_weights[i]·y[i] + Σ_j w_ij·y[j]; each of the
    ``permutations`` draws gives i's neighbour weights to other sites drawn at random.
    The draws are made in one thread (one random stream, as esda's); the sites are counted
    on the shared thread pool. The arrays are cast here, so every caller (and warm_up)
    hits the same compiled signatures.
    """
    from gis.parallel import in_parts

    a = neighbours.tocsr()  # the c-th weight of a row meets the c-th draw: CSR order, unsorted, as esda
    if a.diagonal().any() or (a.data == 0).any():
        raise ValueError("neighbours: no diagonal (self weights go in self_weights) and no stored zeros")
    y = np.ascontiguousarray(y, dtype=np.float64)
    n = len(y)
    ids = _permuted_ids(int(np.diff(a.indptr).max(initial=0)), n, int(permutations), int(seed))
    indptr, indices = a.indptr.astype(np.int64), a.indices.astype(np.int64)
    weights, own = a.data.astype(np.float64), np.ascontiguousarray(self_weights, dtype=np.float64)
    ge, le = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    # a part of ~1e7 draws·neighbours is worth handing to another thread
    per_site = max(1, int(permutations) * max(1, len(weights) // max(n, 1)))
    in_parts(n, lambda lo, hi: _tail_counts(y, indptr, indices, weights, own, ids, lo, hi, ge, le),
             min_part=max(1, 10_000_000 // per_site))
    return ge, le
