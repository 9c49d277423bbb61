"""The citizen's answers and the time to fix, per zone or per chief.

Read a report frame (gis.analysis, from zonechief.report_frames) with the
citizen's answer columns: ``satisfaction`` (``fixed`` 已解决, ``partly_fixed``
部分解决, ``not_fixed`` 未解决, or none), ``rating`` 1–5 (NaN when none) and
``rated_at``.

>>> satisfaction(frame, "zone")       # doctest: +SKIP  (answered, rates, median rating)
>>> time_to_fix(frame, "chief")       # doctest: +SKIP  (median hours with a bootstrap 95 % interval)

Reports without a zone (or chief) are left out of the per-zone (per-chief)
tables, as in gis.analysis.
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from gis.analysis import _key

OUTCOMES = ("fixed", "partly_fixed", "not_fixed")
MIN_N = 5  # fewer resolved reports than this: a median, but no interval

__all__ = ["satisfaction", "time_to_fix", "bootstrap_median", "bootstrap_medians", "OUTCOMES", "MIN_N"]

_SAT_COLS = ["eligible", "answered", "answer_rate", "fixed_rate", "partly_rate", "not_fixed_rate", "rated",
             "median_rating"]
_TTF_COLS = ["n", "median_h", "low_h", "high_h"]


def satisfaction(frame, by: str = "zone") -> pd.DataFrame:
    """Per zone or per chief: how many answered and how (indexed by ``zone_id`` / ``chief_id``).

    Columns:

    - ``eligible``: reports a citizen could answer: resolved or closed now
      (``resolved_at`` set), or answered already (a ``not_fixed`` answer
      reopens its report, which is then in progress but keeps its answer);
    - ``answered``: reports with an answer; ``answer_rate`` = answered / eligible;
    - ``fixed_rate``: the satisfaction rate, the share of answers that are
      ``fixed`` (已解决). ``partly_fixed`` (部分解决) does NOT count as
      satisfied: its share is ``partly_rate``, beside ``not_fixed_rate``; the
      three add up to 1;
    - ``rated``: answers with a rating; ``median_rating``: their median (1–5).

    Every group with a report is listed; rates are NaN where nothing was
    answered (or nothing was eligible). An empty frame gives an empty table.
    """
    key = _key(by)
    f = frame[frame[key].notna()]
    if f.empty:
        return pd.DataFrame({c: pd.Series(dtype="f8") for c in _SAT_COLS}, index=pd.Index([], name=key, dtype=object))
    sat = f["satisfaction"]
    answered = sat.notna()
    d = pd.DataFrame({
        key: f[key].to_numpy(),
        "eligible": (f["resolved_at"].notna() | answered).to_numpy(),
        "answered": answered.to_numpy(),
        **{o: (sat == o).to_numpy() for o in OUTCOMES},
        "rating": f["rating"].to_numpy(dtype="f8"),
    })
    g = d.groupby(key)
    sums = g[["eligible", "answered", *OUTCOMES]].sum()
    out = pd.DataFrame({"eligible": sums["eligible"].astype("int64"), "answered": sums["answered"].astype("int64")})
    n = out["answered"].where(out["answered"] > 0)  # NaN: no share of nothing
    out["answer_rate"] = out["answered"] / out["eligible"].where(out["eligible"] > 0)
    out["fixed_rate"] = sums["fixed"] / n
    out["partly_rate"] = sums["partly_fixed"] / n
    out["not_fixed_rate"] = sums["not_fixed"] / n
    out["rated"] = g["rating"].count().astype("int64")
    out["median_rating"] = g["rating"].median()
    return out[_SAT_COLS]


def _seed_for(seed: int, group) -> np.random.Generator:
    # One stream per group, from its name: a group's interval does not depend on the other groups.
    return np.random.default_rng([seed, zlib.crc32(str(group).encode())])


def bootstrap_medians(x, n_boot: int = 2000, rng: np.random.Generator | int = 0) -> np.ndarray:
    """The medians of ``n_boot`` bootstrap resamples of ``x`` (NaNs for an empty ``x``).

    Each median is drawn directly, with the distribution resampling gives, in O(n_boot)
    after one sort instead of O(n_boot × n): a resample of n values is x_(ceil(n·U)) for
    n uniforms U, a monotone map, so its k-th smallest value is x_(ceil(n·U_(k))), where
    U_(k) ~ Beta(k, n-k+1) is the k-th smallest uniform. For even n the median also needs
    U_(k+1) = U_(k) + (1 - U_(k))·Beta(1, n-k) (the least of the n-k uniforms above U_(k)).
    tests/gis/test_satisfaction.py checks the draws against resampling.
    """
    v = np.sort(np.asarray(x, dtype="f8"))
    n = v.size
    if n == 0:
        return np.full(n_boot, np.nan)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = (n + 1) // 2  # the (lower) middle rank, 1-based

    def value(u: np.ndarray) -> np.ndarray:
        return v[np.clip(np.ceil(n * u).astype(np.int64), 1, n) - 1]

    u_k = gen.beta(k, n - k + 1, size=n_boot)
    meds = value(u_k)
    if n % 2 == 0:
        meds = (meds + value(u_k + (1.0 - u_k) * gen.beta(1, n - k, size=n_boot))) / 2.0
    return meds


def bootstrap_median(x, n_boot: int = 2000, rng: np.random.Generator | int = 0,
                     ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``x``: (low, high), from ``n_boot`` resamples."""
    if np.asarray(x).size == 0:
        return np.nan, np.nan
    lo, hi = np.percentile(bootstrap_medians(x, n_boot, rng), [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def time_to_fix(frame, by: str = "zone", n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                min_n: int = MIN_N) -> pd.DataFrame:
    """Hours from report (``created_at``) to resolution (``resolved_at``) per zone or chief: n, median, interval.

    Only reports resolved or closed now count (``resolved_at`` is the last
    resolution, see zonechief.report_frames). Columns: ``n``, ``median_h`` and
    ``low_h`` / ``high_h``, a percentile bootstrap ``ci`` interval of the
    median (``n_boot`` resamples; the same ``seed`` gives the same interval).
    Medians, never means: a few reports left for weeks would drag a mean.
    Groups with fewer than ``min_n`` resolved reports get their median and a
    NaN interval (too few to resample). Indexed by ``zone_id`` / ``chief_id``;
    groups with no resolved report are left out. Each group draws from its own
    stream (seeded by ``seed`` and its name), so it gets the same interval
    whatever other groups the frame holds. Cost: a sort per group and n_boot draws
    (bootstrap_median), not n_boot resamples of the whole group.
    """
    if not 0 < ci < 1:
        raise ValueError("ci must be between 0 and 1")
    key = _key(by)
    f = frame[frame[key].notna() & frame["resolved_at"].notna()]
    hours = ((f["resolved_at"] - f["created_at"]).dt.total_seconds() / 3600.0).to_numpy(dtype="f8")
    rows: dict = {}
    for k, pos in pd.Series(f[key].to_numpy(dtype=object)).groupby(f[key].to_numpy(dtype=object)).indices.items():
        x = hours[pos]
        lo, hi = bootstrap_median(x, n_boot, _seed_for(seed, k), ci) if len(x) >= min_n else (np.nan, np.nan)
        rows[k] = (len(x), float(np.median(x)), lo, hi)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=_TTF_COLS)
    out.index.name = key
    return out.astype({"n": "int64", "median_h": "f8", "low_h": "f8", "high_h": "f8"})
