"""The table a bulk lookup returns: one row per point, text columns as Categoricals (a small code per point, no strings)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from gis.parallel import in_parts

LOOKUP_STATUSES = ("inside", "boundary", "snapped", "outside", "invalid")  # in the order of lookup_kernels' codes
IN_ZONE = ("inside", "boundary", "snapped")  # the statuses that put a point in a zone

# The string dtype pandas infers for str (pandas 3 with pyarrow: "str"): the categories' dtype.
_TEXT = pd.Series(np.array(["", None], dtype=object)).dtype
_STATUS_DTYPE = pd.CategoricalDtype(pd.Index(LOOKUP_STATUSES, dtype=_TEXT))


def code_dtype(categories: int):
    """The smallest integer dtype for codes -1 .. categories - 1."""
    return np.int8 if categories < 127 else np.int16 if categories < 32767 else np.int32


class CodeMaps(NamedTuple):
    """Unit -> category code, per text column of the result."""

    maps: np.ndarray  # one row per distinct map; maps[:, 0] is -1 (no unit), maps[:, k + 1] the code of unit k
    columns: dict  # {column: (row of maps, CategoricalDtype)}
    identity: set  # the rows that give each unit its own category, in unit order


def code_maps(per_unit: dict, cache: dict) -> CodeMaps:
    """CodeMaps for {column: value per unit}, cached in `cache` per distinct set of values.

    Each column's values are factorized once; columns with the same unit -> code map share one row.
    """
    key = tuple(tuple(v) for v in per_unit.values())
    hit = cache.get(key)
    if hit is None:
        units = len(per_unit["zone_id"])
        rows: list[np.ndarray] = []
        row_of: dict[bytes, int] = {}
        cols = {}
        for name, values in per_unit.items():
            codes, uniques = pd.factorize(np.asarray(values, dtype=object).reshape(-1))  # first-seen order: shared maps
            if codes.tobytes() not in row_of:
                row_of[codes.tobytes()] = len(rows)
                rows.append(codes)
            cols[name] = (row_of[codes.tobytes()], pd.CategoricalDtype(pd.Index(uniques, dtype=_TEXT)))
        dt = code_dtype(max((len(d.categories) for _, d in cols.values()), default=0))
        maps = np.column_stack([np.full(len(rows), -1), np.array(rows).reshape(len(rows), units)]).astype(dt)
        identity = {r for r, m in enumerate(maps) if len(m) > 1 and (m[1:] == np.arange(len(m) - 1)).all()}
        hit = CodeMaps(maps, cols, identity)
        if len(cache) > 16:  # a roster change per day; keep it bounded
            cache.clear()
        cache[key] = hit
    return hit


def result_frame(column_codes: CodeMaps, unit, nearest, dist, status, all_nearest, lon, lat, problems_of) -> pd.DataFrame:
    """The result table from the kernels' per-point answers (see ZoneIndex.assign for its columns).

    column_codes: for the zone_id, ... columns, zone_id's also for nearest_zone_id. problems_of(indices of
    invalid points) gives their problem messages; those points get NaN lon/lat.
    """
    from gis import lookup_kernels as kernels  # here, not at the top: single lookups never import numba

    n = len(unit)
    maps, cats, identity = column_codes
    zone_row, zone_dtype = cats["zone_id"]
    # A map that is the identity (one category per unit, in unit order) needs no pass: the unit
    # indices are its codes.
    ident = identity if maps.dtype == unit.dtype else set()
    rows = [r for r in range(len(maps)) if r not in ident]
    codes = np.empty((len(rows) + 1, n), dtype=maps.dtype)
    onb, snapped = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    invalid = in_parts(n, lambda a, b: kernels.finish(unit[a:b], nearest[a:b], status[a:b], dist[a:b], all_nearest,
                                                      maps[rows], maps[zone_row], codes[:, a:b], onb[a:b], snapped[a:b]))
    code_of = {r: unit if r in ident else codes[rows.index(r)] for r in range(len(maps))}
    cols = {name: pd.Categorical.from_codes(code_of[row], dtype=dtype, validate=False) for name, (row, dtype) in cats.items()}
    cols["status"] = pd.Categorical.from_codes(status, dtype=_STATUS_DTYPE, validate=False)
    cols["on_boundary"] = onb
    cols["snapped"] = snapped
    cols["distance_m"] = dist
    cols["nearest_zone_id"] = pd.Categorical.from_codes(codes[-1], dtype=zone_dtype, validate=False)
    cols["lon_wgs84"] = lon
    cols["lat_wgs84"] = lat
    bad = np.flatnonzero(status == kernels.INVALID) if sum(invalid) else np.empty(0, dtype=np.intp)
    if len(bad):  # not the input's values (lon/lat may be the input arrays themselves)
        cols["lon_wgs84"], cols["lat_wgs84"] = lon.copy(), lat.copy()
        cols["lon_wgs84"][bad] = cols["lat_wgs84"][bad] = np.nan
    pcodes, puniques = pd.factorize(np.asarray(problems_of(bad), dtype=object), sort=True)
    p = np.full(n, -1, dtype=code_dtype(len(puniques)))
    p[np.asarray(bad, dtype=np.intp)] = pcodes
    cols["problem"] = pd.Categorical.from_codes(p, categories=pd.Index(puniques, dtype=_TEXT), validate=False)
    return pd.DataFrame(cols, copy=False)
