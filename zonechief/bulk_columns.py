"""Column-at-a-time intake of plain report rows, for large imports.

A *plain* row gives its location as lon/lat and every field in a form whose
validation is unambiguous: ASCII numbers, a known source, a 1–5 digit category,
lengths within ReportIn's limits, an ISO 8601 created_at with an offset. Such rows
are checked and located a column at a time. Every other row is *doubtful* and goes
through the per-row route (pydantic ReportIn, zonechief.bulk.prepare), which gives the
exact reasons for rejects. Both routes locate with zonechief.intake.locate_points and
assign with zonechief.intake.intake, so they store the same thing for the same row
(tests/test_bulk_columns.py checks this against the per-row route, with hypothesis).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from zonechief.intake import TS, Placed, intake, locate_points
from zonechief.reports import Location, Reporter, ReportIn
from zonechief.workflow import SOURCES

# What str.strip() removes: every code point for which str.isspace() is true.
WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
CREATED_AT = (r"^(?P<wall>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?P<frac>\.[0-9]{1,6})?"
              r"(?P<off>Z|[+-][01][0-9]:[0-5][0-9])$")


def _constraint(model, field: str, name: str):
    """A Field constraint (max_length, pattern) as pydantic holds it, so both routes share one source."""
    return next(getattr(m, name) for m in model.model_fields[field].metadata if getattr(m, name, None) is not None)


LIMITS = {c: _constraint(model, field, "max_length") for c, (model, field) in {
    "description": (ReportIn, "description"), "reporter_name": (Reporter, "name"),
    "reporter_phone": (Reporter, "phone"), "photo_url": (ReportIn, "photo_url"),
    "idempotency_key": (ReportIn, "idempotency_key"), "crs": (Location, "crs")}.items()}
PHONE = _constraint(Reporter, "phone", "pattern")


@dataclass
class Plain:
    """Plain rows, cleaned: positions in the source table plus one array per ReportIn field."""
    pos: np.ndarray  # 0-based rows of the source table
    lon: np.ndarray
    lat: np.ndarray
    crs: pa.Array
    source: pa.Array
    category: pa.Array
    description: pa.Array
    reporter_name: pa.Array
    reporter_phone: pa.Array
    photo_url: pa.Array
    idempotency_key: pa.Array
    created_at: pa.Array  # timestamp[us, UTC]; null: the import's "now"

    def subset(self, keep: np.ndarray) -> "Plain":
        """The rows where `keep` is True."""
        take = pa.array(np.flatnonzero(keep))
        return Plain(**{f: (v[keep] if isinstance(v, np.ndarray) else v.take(take)) for f, v in vars(self).items()})

    def slice(self, i0: int, i1: int) -> "Plain":
        """Rows i0..i1 (zero-copy)."""
        return Plain(**{f: (v[i0:i1] if isinstance(v, np.ndarray) else v.slice(i0, i1 - i0))
                        for f, v in vars(self).items()})


def _np(a: pa.Array) -> np.ndarray:
    return a.to_numpy(zero_copy_only=False)


def clean(a: pa.Array) -> pa.Array:
    """zonechief.bulk._clean on a text column: stripped like str.strip(), empty → null."""
    a = pc.utf8_trim(a, characters=WHITESPACE)
    return pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)


def text_column(table: pd.DataFrame, name: str) -> pa.Array | None:
    """The column cleaned, as a string array (all null if absent); None if it holds anything but text."""
    if name not in table.columns:
        return pa.nulls(len(table), pa.string())
    col = table[name]
    if isinstance(col.dtype, pd.StringDtype) or col.dtype == object:
        try:
            a = pa.array(col, type=pa.string(), from_pandas=True)
        except (TypeError, pa.ArrowInvalid, pa.ArrowTypeError):  # numbers among the text
            return None
        return clean(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a)
    if col.isna().all():
        return pa.nulls(len(table), pa.string())
    return None


def plain_rows(table: pd.DataFrame, xs: np.ndarray | None, ys: np.ndarray | None, crs: str | None,
               file_crs: str | None) -> tuple[Plain, np.ndarray]:
    """Split a report table into plain rows (cleaned, as columns) and doubtful rows (their positions)."""
    n = len(table)
    cols = {}
    for name in ("lon", "lat", "crs", "source", "category", "description", "reporter_name", "reporter_phone",
                 "photo_url", "idempotency_key", "created_at", "service_code", "address"):
        c = text_column(table, name)
        if c is None:  # numbers or mixed values: only the per-row route knows how it reads them
            return _empty_plain(), np.arange(n)
        cols[name] = c
    ok = _np(pc.and_(cols["service_code"].is_null(), cols["address"].is_null()))

    # Location: geometry if the file has one and the row's is a point, else the lon/lat columns.
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    from_geom = np.isfinite(xs) if xs is not None else np.zeros(n, bool)
    if xs is not None and ys is not None:
        lon[from_geom], lat[from_geom] = xs[from_geom], ys[from_geom]
    numbers = pc.and_(pc.match_substring_regex(cols["lon"], NUMBER), pc.match_substring_regex(cols["lat"], NUMBER))
    numbers = _np(pc.fill_null(numbers, False)) & ~from_geom
    if numbers.any():
        lon[numbers] = _np(pc.cast(pc.filter(cols["lon"], numbers), pa.float64()))
        lat[numbers] = _np(pc.cast(pc.filter(cols["lat"], numbers), pa.float64()))
    ok &= from_geom | numbers
    # The per-row route's defaults: a file's own CRS applies to its geometries only.
    default = crs or "wgs84"
    if from_geom.any() and (crs or file_crs or "wgs84") != default:
        default = pc.if_else(pa.array(from_geom), crs or file_crs or "wgs84", default)
    crs_col = pc.coalesce(cols["crs"], default)
    ok &= _np(pc.utf8_length(crs_col)) <= LIMITS["crs"]

    source = pc.fill_null(cols["source"], "staff")  # a coordinate row's default
    ok &= _np(pc.is_in(source, pa.array(sorted(SOURCES))))
    cat = cols["category"]
    ok &= _np(pc.fill_null(pc.match_substring_regex(cat, r"^[0-9]{1,5}$"), False))
    cat = pc.utf8_lpad(pc.fill_null(cat, ""), 5, "0")
    description = pc.fill_null(cols["description"], "")
    for name, a in (("description", description), ("reporter_name", cols["reporter_name"]),
                    ("reporter_phone", cols["reporter_phone"]), ("photo_url", cols["photo_url"]),
                    ("idempotency_key", cols["idempotency_key"])):
        ok &= _np(pc.fill_null(pc.utf8_length(a), 0)) <= LIMITS[name]
    ok &= _np(pc.fill_null(pc.match_substring_regex(cols["reporter_phone"], PHONE), True))
    url = cols["photo_url"]
    ok &= _np(pc.fill_null(pc.or_(pc.starts_with(url, "http://"), pc.starts_with(url, "https://")), True))
    created, good_time = _timestamps(cols["created_at"])
    ok &= good_time

    pos = np.flatnonzero(ok)
    take = pa.array(pos)
    plain = Plain(pos=pos, lon=lon[pos], lat=lat[pos], crs=crs_col.take(take), source=source.take(take),
                  category=cat.take(take), description=description.take(take),
                  reporter_name=cols["reporter_name"].take(take), reporter_phone=cols["reporter_phone"].take(take),
                  photo_url=url.take(take), idempotency_key=cols["idempotency_key"].take(take),
                  created_at=created.take(take))
    return plain, np.flatnonzero(~ok)


def _empty_plain() -> Plain:
    s = pa.array([], pa.string())
    return Plain(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), s, s, s, s, s, s, s, s, pa.array([], TS))


def _timestamps(a: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 with an offset → UTC timestamps; (values, row is plain: null or parsed unambiguously)."""
    n = len(a)
    present = _np(a.is_valid())
    if not present.any():
        return pa.nulls(n, TS), np.ones(n, bool)
    parts = pc.extract_regex(a, CREATED_AT)  # null where it does not match
    matched = _np(parts.is_valid())
    base = pc.struct_field(parts, [0])
    wall = pc.strptime(base, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True)
    # strptime normalizes impossible dates (02-30 → 03-02); only an exact round trip is plain
    back = pc.strftime(wall, format="%Y-%m-%dT%H:%M:%S")  # with ".ffffff" at µs resolution
    exact = _np(pc.fill_null(pc.equal(back, pc.binary_join_element_wise(base, ".000000", "")), False))
    us = _np(pc.fill_null(wall.cast(pa.int64()), 0)).astype(np.int64)
    frac = pc.utf8_rpad(pc.fill_null(pc.utf8_slice_codeunits(pc.struct_field(parts, [1]), 1), ""), 6, "0")
    us += _np(pc.cast(pc.fill_null(frac, "000000"), pa.int64())).astype(np.int64)
    off = pc.fill_null(pc.struct_field(parts, [2]), "Z")
    zulu = _np(pc.equal(off, "Z"))
    sign = np.where(_np(pc.starts_with(off, "-")), -1, 1)
    hh = _np(pc.cast(pc.if_else(pc.equal(off, "Z"), "00", pc.utf8_slice_codeunits(off, 1, 3)), pa.int64()))
    mm = _np(pc.cast(pc.if_else(pc.equal(off, "Z"), "00", pc.utf8_slice_codeunits(off, 4, 6)), pa.int64()))
    us -= np.where(zulu, 0, sign * (hh * 3600 + mm * 60) * 10**6)
    good = present & matched & exact
    values = pa.array(us, pa.int64(), mask=~good).cast(TS)
    return values, good | ~present


# ------------------------------------------------------------------ locating and assigning
@dataclass
class LocatedPlain:
    """Plain rows that passed locating, with what the per-window build needs."""
    p: Plain
    placed: Placed
    created: pa.Array  # timestamp[us, UTC], the import's "now" filled in


def locate_plain(index, category_codes, p: Plain, now: datetime) -> tuple[LocatedPlain, list[tuple[int, str]]]:
    """Locate plain rows (one assign() per CRS) and reject what the per-row route would reject.

    Returns (the accepted rows, rejects[(0-based position, reason)]).
    """
    n = len(p.pos)
    placed, reason = locate_points(index, p.lon, p.lat, p.crs)
    # The per-row route checks the catalogue after the coordinates.
    unknown = ~_np(pc.is_in(p.category, pa.array(sorted(category_codes)))) & _np(reason.is_null())
    if unknown.any():
        msgs = np.full(n, None, object)
        cats = p.category.to_pylist()
        for i in np.flatnonzero(unknown):
            msgs[i] = f"unknown category {cats[i]!r}"
        reason = pc.coalesce(reason, pa.array(msgs, pa.string()))
    bad = _np(reason.is_valid())
    rejects = list(zip(p.pos[bad].tolist(), pc.filter(reason, pa.array(bad)).to_pylist()))
    if bad.any():
        placed = placed.take(np.flatnonzero(~bad))
        p = p.subset(~bad)
    now_us = int(pd.Timestamp(now).tz_convert("UTC").value // 1000)
    return LocatedPlain(p=p, placed=placed,
                        created=pc.fill_null(p.created_at, pa.scalar(now_us, pa.int64()).cast(TS))), rejects


def build_plain(roster, loc: LocatedPlain, actor: str) -> tuple[pa.Table, pa.Table]:
    """Report and event tables (zonechief.bulk's batch columns) for located plain rows.

    Events refer to their report by position in the returned table ("report").
    """
    p, created = loc.p, loc.created
    m = len(p.pos)
    got = intake(loc.placed, created, roster, actor)
    table = pa.table({
        "row": pa.array(p.pos + 1, pa.int64()),
        "created_at": created, "updated_at": created,
        "source": p.source, "category": p.category,
        "description": p.description,
        "location_input": _location_json(p.lon, p.lat, p.crs),
        "lon": loc.placed.lon, "lat": loc.placed.lat,
        "geocode_method": pa.repeat(pa.scalar("coordinates"), m),
        "geocode_confidence": pa.array(np.ones(m)), "needs_review": got.needs_review,
        "review_note": got.review_note, "zone_id": got.zone_id, "village_code": got.village_code,
        "chief_id": got.chief_id, "status": got.status,
        "reporter_name": p.reporter_name, "reporter_phone": p.reporter_phone,
        "photo_url": p.photo_url, "idempotency_key": p.idempotency_key,
    })
    return table, got.events


def _location_json(lon: np.ndarray, lat: np.ndarray, crs: pa.Array) -> pa.Array:
    """json.dumps({"lon": lon, "lat": lat, "crs": crs}, ensure_ascii=False) for each row."""
    def numbers(v):
        # Arrow prints floats shortest-round-trip like repr(), but "114" for 114.0 and its own
        # exponent style: those rows (and any out of the plain range) take repr() itself.
        s = pa.array(v).cast(pa.string())
        odd = ~((np.abs(v) >= 1e-4) & (np.abs(v) < 1e7)) | (v == np.trunc(v))  # agrees with repr() here
        if odd.any():
            fixed = s.to_pylist()
            for i in np.flatnonzero(odd):
                fixed[i] = repr(float(v[i]))
            s = pa.array(fixed, pa.string())
        return s

    codes = pc.dictionary_encode(crs)
    quoted = pa.array([json.dumps(c, ensure_ascii=False) for c in codes.dictionary.to_pylist()], pa.string())
    return pc.binary_join_element_wise('{"lon": ', numbers(lon), ', "lat": ', numbers(lat), ', "crs": ',
                                       quoted.take(codes.indices), "}", "")
