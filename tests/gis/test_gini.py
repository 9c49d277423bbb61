"""Gini coefficient and Lorenz curve (gis.gini) against the brute-force pairwise formula."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.gini import gini, lorenz

loads = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40)


def brute_gini(x) -> float:
    """Σ_i Σ_j |x_i - x_j| / (2 n² mean): every pair, no sorting."""
    x = [float(v) for v in x]
    n, total = len(x), sum(x)
    return sum(abs(a - b) for a in x for b in x) / (2 * n * total)


@settings(max_examples=300, deadline=None)
@given(loads)
def test_gini_is_the_pairwise_formula(x):
    if sum(x) == 0:
        assert np.isnan(gini(x))
        return
    assert gini(x) == pytest.approx(brute_gini(x), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(loads)
def test_lorenz_area_gives_the_gini(x):
    c = lorenz(x)
    p, q = c["share_people"].to_numpy(), c["share_load"].to_numpy()
    assert (p[0], q[0], p[-1], q[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(p) > 0) and np.all(np.diff(q) >= -1e-15)  # increasing
    assert np.all(q <= p + 1e-12)  # below the line of equality
    if sum(x) == 0:
        return
    area = np.trapezoid(q, p)
    assert 1 - 2 * area == pytest.approx(brute_gini(x), abs=1e-9)


def test_known_values_and_bad_input():
    assert gini([4, 4, 4]) == pytest.approx(0.0, abs=1e-12)
    assert gini([0, 0, 0, 9]) == pytest.approx(0.75)  # one of four holds everything: (n-1)/n
    assert lorenz([0, 0, 0, 9])["share_load"].tolist() == [0, 0, 0, 0, 1]
    assert lorenz([])["share_load"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        lorenz([1, -2])
    with pytest.raises(ValueError):
        gini([1, float("nan")])
