"""Workload balance across chiefs: the Gini coefficient and the Lorenz curve it is read from.

`gini` is gis.analysis's (re-exported here, one implementation); `lorenz` gives the
curve a chart draws: chiefs sorted by load, cumulative share of chiefs against
cumulative share of reports. Its trapezoid area A and the coefficient agree:
G = 1 - 2A (tests/gis/test_gini.py checks both against the pairwise formula).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gis.analysis import gini

__all__ = ["gini", "lorenz"]


def lorenz(values) -> pd.DataFrame:
    """The Lorenz curve of non-negative `values`: columns ``share_people`` and ``share_load``, from (0, 0) to (1, 1).

    n + 1 points: the origin, then one per value in increasing order. Empty input or a zero
    total gives the equality line's two end points (nothing to share unequally).
    """
    x = np.sort(np.asarray(values, dtype="f8").ravel())
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("lorenz needs finite, non-negative values")
    if x.size == 0 or x.sum() == 0:
        return pd.DataFrame({"share_people": [0.0, 1.0], "share_load": [0.0, 1.0]})
    n = x.size
    people = np.arange(n + 1) / n
    load = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    load[-1] = 1.0  # exact, whatever the rounding of the sum
    return pd.DataFrame({"share_people": people, "share_load": load})
