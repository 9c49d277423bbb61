"""Intake: where located reports go (zone, village, chief, status, review note, first history).

Every way a report comes in (a single POST, the per-row import, the column import)
ends here, its point already located, one row per report, as columns:

- inside a zone (or on its edge): that zone and village and the chief in force on
  the Dongguan calendar day of created_at; status assigned, history new → assigned;
  the geocoder's note, if any, stays;
- outside but within the snap tolerance: the nearest zone, as above, noted
  "attached to nearest zone Z (N m outside)";
- farther out: no zone, needs review, noted "outside every zone; nearest Z at N m";
  status new, history new;
- not looked up (no point, or the geocoder wants a person to look first): no zone,
  needs review, the geocoder's note or "needs review".

The rule is written once, over a few column steps that run on Arrow for imports
(~100k reports/s go through here) and on numpy object arrays for a single report,
where each Arrow call would cost more than the whole report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from itertools import repeat
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gis.crs import UnknownCRSError, normalize_crs
from gis.localtime import LOCAL_OFFSET_S, as_local
from gis.lookup import IN_ZONE, Assignment
from gis.points import misplaced_problems
from gis.roster import Roster

TS = pa.timestamp("us", tz="UTC")
DAY_US = 86400 * 10**6
EPOCH = date(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
Column: TypeAlias = pa.Array | np.ndarray  # Arrow, or (one report) a numpy object array with None for null


def _np(a: pa.Array) -> np.ndarray:
    return a.to_numpy(zero_copy_only=False)


@dataclass
class Located:
    """One location resolved (a single report): geocoded to WGS-84, then looked up.

    found is None when nothing was looked up: no point, or the geocoder wants a review (note says why).
    """
    lon: float | None
    lat: float | None
    method: str
    confidence: float
    note: str | None
    found: Assignment | None = None


_FLAGS = ("in_zone", "snapped", "looked")


@dataclass
class Placed:
    """Where each report's point fell, one row per report: what ZoneIndex.assign (or lookup) says.

    The decisions are numpy booleans; the rest are columns (Arrow from assign, numpy from lookups).
    """
    lon: Column  # WGS-84
    lat: Column
    in_zone: np.ndarray  # inside a zone, on its edge, or snapped to it
    snapped: np.ndarray
    looked: np.ndarray  # False: not looked up (no point, or the geocoder wants a review first)
    zone_id: Column  # null where not in a zone
    village_code: Column
    nearest_zone_id: Column
    distance_m: Column
    note: Column | None = None  # the geocoder's; None: no row has one

    @classmethod
    def of(cls, located: list[Located]) -> "Placed":
        """Single lookups (ZoneIndex.lookup) as numpy columns."""
        found = [x.found for x in located]

        def col(values, dtype=object):
            return np.array([np.nan if v is None and dtype is float else v for v in values], dtype)

        return cls(lon=col([x.lon for x in located], float), lat=col([x.lat for x in located], float),
                   in_zone=col([a is not None and a.status in IN_ZONE for a in found], bool),
                   snapped=col([a is not None and a.snapped for a in found], bool),
                   looked=col([a is not None for a in found], bool),
                   zone_id=col([a and a.zone_id for a in found]), village_code=col([a and a.village_code for a in found]),
                   nearest_zone_id=col([a and a.nearest_zone_id for a in found]),
                   distance_m=col([a and a.distance_m for a in found], float), note=col([x.note for x in located]))

    def take(self, rows: np.ndarray) -> "Placed":
        """The given rows (positions), in that order."""
        idx = pa.array(rows, pa.int64())
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = None if v is None else v[rows] if isinstance(v, np.ndarray) else v.take(idx)
        return Placed(**out)

    @staticmethod
    def concat(parts: list["Placed"]) -> "Placed":
        """The rows of `parts` (at least one), one after the other; columns as Arrow."""
        out: dict[str, Any] = {}
        for f in fields(Placed):
            vals = [getattr(p, f.name) for p in parts]
            if f.name in _FLAGS:
                out[f.name] = np.concatenate(vals)
            elif all(v is None for v in vals):
                out[f.name] = None
            else:
                out[f.name] = pa.concat_arrays([_arrow_column(v, len(p.looked)) for p, v in zip(parts, vals)])
        return Placed(**out)


def _arrow_column(v: Column | None, n: int) -> pa.Array:
    if v is None:
        return pa.nulls(n, pa.string())
    if isinstance(v, np.ndarray):
        return pa.array(v, pa.float64() if v.dtype == float else pa.string(), from_pandas=True)  # NaN → null
    return v


# ------------------------------------------------------------------ locating columns of points
_TEXT_OUT = ("problem", "zone_id", "nearest_zone_id", "village_code")
_NUMBER_OUT = ("distance_m", "lon_wgs84", "lat_wgs84")
_NO_TEXT = pa.scalar(None, pa.string())


def locate_points(index, lon: np.ndarray, lat: np.ndarray, crs: pa.Array) -> tuple[Placed, pa.Array]:
    """Locate points given in the CRS each row names: one ZoneIndex.assign() per CRS.

    Returns (where they fell, why a row cannot be located: null where it can). Points
    evidently not in their CRS (degrees given in a projected one) cannot be located either.
    """
    n = len(lon)
    in_zone, snapped, invalid = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    located, crs_errors = [], {}
    misplaced = None  # why a point is evidently not in its CRS (gis.points.misplaced_problems)
    crs_codes = pc.dictionary_encode(crs)
    code = _np(crs_codes.indices)
    for k, name in enumerate(crs_codes.dictionary.to_pylist()):
        rows = np.flatnonzero(code == k)
        try:
            c = normalize_crs(name)
        except UnknownCRSError as exc:
            crs_errors[k] = str(exc)
            continue
        df = index.assign(lon[rows], lat[rows], crs=c)
        status = df["status"].array  # a Categorical: decide on its few categories, then index by code
        cats, codes = np.asarray(status.categories, object), np.asarray(status.codes)
        in_zone[rows], snapped[rows] = np.isin(cats, IN_ZONE)[codes], (cats == "snapped")[codes]
        invalid[rows] = (cats == "invalid")[codes]
        located.append((rows, _assigned(df)))
        why = misplaced_problems(index, lon[rows], lat[rows], c, df["lon_wgs84"].to_numpy(), df["lat_wgs84"].to_numpy())
        if why is not None:
            misplaced = np.full(n, None, object) if misplaced is None else misplaced
            misplaced[rows] = why
    a = _located_columns(located, n)
    reason = pc.if_else(pa.array(invalid), a["problem"], _NO_TEXT)
    if misplaced is not None:  # invalid points have no WGS-84 position, so never both
        reason = pc.coalesce(reason, pa.array(misplaced, pa.string()))
    for k, msg in crs_errors.items():
        reason = pc.if_else(pa.array(code == k), msg, reason)
    return Placed(lon=a["lon_wgs84"], lat=a["lat_wgs84"], in_zone=in_zone, snapped=snapped, looked=np.ones(n, bool),
                  zone_id=a["zone_id"], village_code=a["village_code"], nearest_zone_id=a["nearest_zone_id"],
                  distance_m=a["distance_m"]), reason


def _assigned(df: pd.DataFrame) -> dict[str, pa.Array]:
    """The assign() columns locating needs, as Arrow (its Categoricals decoded to strings)."""
    out = {}
    for c in _TEXT_OUT:
        cat = df[c].array
        codes = np.asarray(cat.codes)
        out[c] = pa.array(np.asarray(cat.categories, object), pa.string()).take(pa.array(codes, mask=codes < 0))
    for c in _NUMBER_OUT:
        out[c] = pa.array(df[c].to_numpy(), from_pandas=True)  # NaN → null
    return out


def _located_columns(parts: list[tuple[np.ndarray, dict[str, pa.Array]]], n: int) -> dict[str, pa.Array]:
    """The (rows, columns) of each CRS's assign() as columns for all n rows, in row order.

    Rows no CRS could read get nulls.
    """
    if len(parts) == 1 and len(parts[0][0]) == n:  # one CRS for all: rows are 0..n-1 already
        return parts[0][1]
    if not parts:
        return {**{c: pa.nulls(n, pa.string()) for c in _TEXT_OUT}, **{c: pa.nulls(n, pa.float64()) for c in _NUMBER_OUT}}
    at = np.concatenate([rows for rows, _ in parts])
    where = np.full(n, -1, np.int64)
    where[at] = np.arange(len(at))
    idx = pa.array(where, mask=where < 0)
    return {c: pa.concat_arrays([cols[c] for _, cols in parts]).take(idx) for c in (*_TEXT_OUT, *_NUMBER_OUT)}


# ------------------------------------------------------------------ column steps, on Arrow or numpy
class _Arrow:
    """The steps on Arrow columns: a call costs ~10 µs, whether the column holds one row or 100k."""

    _scalars: dict = {}

    @classmethod
    def _s(cls, v):
        if isinstance(v, str):  # made once: converting a str costs more than a call on a short column
            s = cls._scalars.get(v)
            if s is None:
                s = pa.scalar(v, pa.string())
                if len(cls._scalars) < 64:  # the rule's words and a few actors
                    cls._scalars[v] = s
            return s
        return _NO_TEXT if v is None else v

    @classmethod
    def where(cls, mask: np.ndarray, a, b) -> pa.Array:
        return pc.if_else(pa.array(mask), cls._s(a), cls._s(b))

    @classmethod
    def fill_null(cls, col: pa.Array, v: str) -> pa.Array:
        return pc.fill_null(col, cls._s(v))

    @classmethod
    def join(cls, *parts) -> pa.Array:
        """Text joined row by row; null where a part is null."""
        return pc.binary_join_element_wise(*map(cls._s, parts), cls._s(""))

    @staticmethod
    def metres(d: pa.Array) -> pa.Array:
        """f"{d:.0f}" per row (0 where missing)."""
        d = pc.fill_null(d, 0.0)
        d = pc.if_else(pc.is_finite(d), d, 0.0)
        return pc.cast(pc.round(d, round_mode="half_to_even"), pa.int64()).cast(pa.string())

    @classmethod
    def blank(cls, col: pa.Array) -> np.ndarray:
        return _np(pc.equal(pc.fill_null(col, cls._s("")), cls._s("")))

    @staticmethod
    def take(col: pa.Array, idx: np.ndarray) -> pa.Array:
        return col.take(pa.array(idx))

    @staticmethod
    def encode(col: pa.Array) -> tuple[np.ndarray, list]:
        """(code per row, -1 where null; the distinct values)."""
        z = pc.dictionary_encode(col)
        return _np(pc.fill_null(z.indices, -1)).astype(np.int64), z.dictionary.to_pylist()

    @staticmethod
    def lookup(values: list, idx: np.ndarray) -> pa.Array:
        """values[idx] per row; null where idx is -1."""
        return pa.array(values, pa.string()).take(pa.array(idx, mask=idx < 0))

    flags = staticmethod(pa.array)
    ints = staticmethod(pa.array)
    table = staticmethod(pa.table)

    @staticmethod
    def nulls(n: int) -> pa.Array:
        return pa.nulls(n, pa.string())


class _Numpy(_Arrow):
    """The same steps on numpy object arrays (None for null): ~1 µs each for one report."""

    @staticmethod
    def where(mask: np.ndarray, a, b) -> np.ndarray:
        out = np.where(mask, a, b)
        return out if out.dtype == object else out.astype(object)  # two str: numpy's own str dtype

    @staticmethod
    def fill_null(col: np.ndarray, v: str) -> np.ndarray:
        return np.array([v if x is None else x for x in col], object)

    @staticmethod
    def join(*parts) -> np.ndarray:
        rows = zip(*(p if isinstance(p, np.ndarray) else repeat(p) for p in parts))
        return np.array([None if None in row else "".join(row) for row in rows], object)

    @staticmethod
    def metres(d: np.ndarray) -> np.ndarray:
        return np.array([f"{x:.0f}" if math.isfinite(x) else "0" for x in d], object)

    @staticmethod
    def blank(col: np.ndarray) -> np.ndarray:
        return np.array([not x for x in col], bool)

    @staticmethod
    def take(col: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return col[idx]

    @staticmethod
    def encode(col: np.ndarray) -> tuple[np.ndarray, list]:
        names = list(dict.fromkeys(x for x in col if x is not None))
        code = {x: i for i, x in enumerate(names)}
        return np.array([-1 if x is None else code[x] for x in col], np.int64), names

    @staticmethod
    def lookup(values: list, idx: np.ndarray) -> np.ndarray:
        return np.array(values + [None], object)[idx]  # -1: the None after them

    @staticmethod
    def flags(mask: np.ndarray) -> np.ndarray:
        return mask

    @staticmethod
    def ints(idx: np.ndarray) -> np.ndarray:
        return idx

    @staticmethod
    def table(columns: dict) -> dict:
        return columns

    @staticmethod
    def nulls(n: int) -> np.ndarray:
        return np.full(n, None, object)


# ------------------------------------------------------------------ the intake rule
@dataclass
class Intaken:
    """The intake of located reports, one row each, and their first history.

    Columns are Arrow, or numpy arrays where Placed came from single lookups (Placed.of).
    """
    zone_id: Column
    village_code: Column
    chief_id: Column
    status: Column
    needs_review: Column
    review_note: Column
    events: pa.Table | dict  # report (row position), status, at, actor, note; ordered by report


def intake(placed: Placed, created: pa.Array | np.ndarray, roster: Roster | None, actor: str,
           event_notes: bool = False) -> Intaken:
    """Apply the rule above. created: per row, timestamp[us, UTC] (numpy: utc_times); actor files the "new" event.

    event_notes: the "new" event carries the review note and "assigned" says "zone Z, chief C"
    (a single report); otherwise events have no note (imports).
    """
    x = _Numpy if isinstance(placed.zone_id, np.ndarray) else _Arrow
    n = len(placed.in_zone)
    in_zone, snapped, looked = placed.in_zone, placed.snapped, placed.looked
    outside = looked & ~in_zone
    zone, village = placed.zone_id, placed.village_code
    if not in_zone.all():
        zone, village = x.where(in_zone, zone, None), x.where(in_zone, village, None)
    notes = placed.note if placed.note is not None else x.nulls(n)  # in a zone: the geocoder's
    if snapped.any() or outside.any():  # (a branch no row takes costs nothing: one report is common)
        metres = x.metres(placed.distance_m)  # only outside and snapped rows use it; they always have one
        if snapped.any():
            notes = x.where(snapped, x.join("attached to nearest zone ", zone, " (", metres, " m outside)"), notes)
        if outside.any():
            nearest = x.fill_null(placed.nearest_zone_id, "None")  # as f"{None}" prints it
            notes = x.where(outside, x.join("outside every zone; nearest ", nearest, " at ", metres, " m"), notes)
    if not looked.all():  # not looked up: the geocoder's reason
        why = "needs review" if placed.note is None else x.where(x.blank(placed.note), "needs review", placed.note)
        notes = x.where(looked, notes, why)
    chief = chiefs(x, roster, zone, created)
    # History: "new" by the actor, then "assigned" by the system where a zone took the report.
    at = np.repeat(np.arange(n), 1 + in_zone)  # the report of each event, in order
    first = np.ones(len(at), bool)  # its "new" event
    first[1:] = at[1:] != at[:-1]
    ev_notes = x.nulls(len(at))
    if event_notes:
        assigned = x.join("zone ", zone, ", chief ", x.fill_null(chief, "None"))
        ev_notes = x.where(first, x.take(notes, at), x.take(assigned, at))
    events = x.table({"report": x.ints(at), "status": x.where(first, "new", "assigned"),
                      "at": x.take(created, at), "actor": x.where(first, actor, "system"), "note": ev_notes})
    return Intaken(zone_id=zone, village_code=village, chief_id=chief, status=x.where(in_zone, "assigned", "new"),
                   needs_review=x.flags(~in_zone), review_note=notes, events=events)


def utc_times(times: list[datetime]) -> np.ndarray:
    """Times as numpy datetime64[us] in UTC (naive: Dongguan wall time, as gis.localtime reads it)."""
    return np.array([(as_local(t) - _EPOCH_UTC) // timedelta(microseconds=1) for t in times], "datetime64[us]")


def local_days(created: pa.Array | np.ndarray) -> np.ndarray:
    """gis.localtime.local_day of each UTC timestamp, as days since 1970-01-01 (Dongguan keeps one offset)."""
    us = created.view(np.int64) if isinstance(created, np.ndarray) else _np(created.view(pa.int64()))
    return (us + LOCAL_OFFSET_S * 10**6) // DAY_US


def chief_ids(roster: Roster | None, zone_ids: np.ndarray, created: list[datetime]) -> np.ndarray:
    """The chief in force per (zone, time) pair, None where there is none: `chiefs` for plain Python values."""
    return chiefs(_Numpy, roster, np.asarray(zone_ids, dtype=object), utc_times(created))


def chiefs(x: type[_Arrow], roster: Roster | None, zone: Column, created: pa.Array | np.ndarray) -> Column:
    """The chief in force for each row's zone on its local day (null where no zone or no chief)."""
    code, names = x.encode(zone)
    if roster is None or not names:
        return x.nulls(len(code))
    day = local_days(created)
    if (day == day[0]).all():  # one report, or an import of one day: nothing to sort
        days, at_day = day[:1], np.zeros(len(day), np.int64)
    else:
        days, at_day = np.unique(day, return_inverse=True)
    # The roster is asked once a day; the chief of (day k, zone j) is at k * len(names) + j.
    by_day = [roster.chiefs_by_zone(EPOCH + timedelta(days=int(d))) for d in days]
    ids = [c.person_id if (c := by.get(name)) else None for by in by_day for name in names]
    return x.lookup(ids, np.where(code < 0, -1, at_day.ravel() * len(names) + code))
