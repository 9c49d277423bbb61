"""gis.store.pg_bulk: binary COPY encoding, against a plain-Python encoder and through a real PostgreSQL."""
from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from store import pg_bulk
from tests.helpers import pg_database

UTC = timezone.utc
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# (arrow type, PostgreSQL type, hypothesis values, big-endian struct format or None for bytes)
KINDS = {
    "int4": (pa.int32(), "int4", st.integers(-2**31, 2**31 - 1), ">i"),
    "int8": (pa.int64(), "int8", st.integers(-2**63, 2**63 - 1), ">q"),
    "float8": (pa.float64(), "float8", st.floats(allow_nan=False), ">d"),
    "bool": (pa.bool_(), "bool", st.booleans(), ">?"),
    "timestamptz": (pa.timestamp("us", tz="UTC"), "timestamptz",
                    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                                 timezones=st.just(UTC)), None),
    "text": (pa.string(), "text", st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=40), None),
    "bytea": (pa.binary(), "bytea", st.binary(max_size=40), None),
}


def reference(columns: list[list], kinds: list[str]) -> bytes:
    """Binary COPY rows as PostgreSQL's documentation describes them, one value at a time."""
    out = bytearray()
    for row in zip(*columns):
        out += struct.pack(">h", len(row))
        for v, kind in zip(row, kinds):
            if v is None:
                out += struct.pack(">i", -1)
                continue
            fmt = KINDS[kind][3]
            if kind == "timestamptz":
                b = struct.pack(">q", (v - PG_EPOCH) // timedelta(microseconds=1))
            elif kind == "text":
                b = v.encode()
            elif fmt is None:
                b = bytes(v)
            else:
                b = struct.pack(fmt, v)
            out += struct.pack(">i", len(b)) + b
    return bytes(out)


@st.composite
def tables(draw):
    """Columns of random kinds and equal length, with nulls; some arrays are slices (offset > 0)."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8))
    n = draw(st.integers(1, 30))
    cols, arrays = [], []
    for kind in kinds:
        lead = draw(st.integers(0, 3))
        values = draw(st.lists(st.none() | KINDS[kind][2], min_size=n + lead, max_size=n + lead))
        arrays.append(pa.array(values, KINDS[kind][0]).slice(lead))
        cols.append(values[lead:])
    return kinds, cols, arrays


@settings(max_examples=200, deadline=None)
@given(tables())
def test_encode_matches_the_documented_format(t):
    kinds, cols, arrays = t
    assert bytes(pg_bulk.encode(arrays)) == reference(cols, kinds)


def test_encode_large_block_spanning_input():
    # more rows than one block of the encoder, strings of many lengths, nulls in a pattern
    n = 3 * pg_bulk.BLOCK + 17
    text = [None if i % 11 == 0 else "片长" * (i % 7) + str(i) for i in range(n)]
    ints = [None if i % 5 == 0 else i for i in range(n)]
    arrays = [pa.array(ints, pa.int32()), pa.array(text, pa.string())]
    assert bytes(pg_bulk.encode(arrays)) == reference([ints, text], ["int4", "text"])


def test_encode_refuses_unknown_types():
    with pytest.raises(TypeError, match="no binary COPY encoding"):
        pg_bulk.encode([pa.array([1], pa.int16())])


@pytest.fixture(scope="module")
def pg():
    with pg_database() as url:
        conn = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        yield conn
        conn.close()


@settings(max_examples=40, deadline=None)
@given(tables())
def test_copy_round_trip_through_postgresql(pg, t):
    kinds, cols, arrays = t
    names = [f"c{i}" for i in range(len(kinds))]
    with pg.transaction(force_rollback=True), pg.cursor() as cur:
        cur.execute(f"CREATE TEMPORARY TABLE t (k serial, {', '.join(f'{c} {KINDS[k][1]}' for c, k in zip(names, kinds))})")
        # two chunks: the COPY stream is the concatenation of encoded pieces
        half = len(cols[0]) // 2
        pg_bulk.copy_columns(cur, "t", names, [[a.slice(0, half) for a in arrays], [a.slice(half) for a in arrays]])
        cur.execute(f"SELECT {', '.join(names)} FROM t ORDER BY k")
        back = cur.fetchall()
    want = list(zip(*cols))
    assert len(back) == len(want)
    for got_row, want_row in zip(back, want):
        for g, w, kind in zip(got_row, want_row, kinds):
            if kind == "bytea" and g is not None:
                g = bytes(g)
            assert g == w, (kind, g, w)


def test_ewkb_points_read_back_as_the_same_points(pg):
    x = np.array([113.9, np.nan, -0.5, 1e-9])
    y = np.array([22.8, 1.0, 51.5, -1e-9])
    with pg.transaction(force_rollback=True), pg.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        cur.execute("CREATE TEMPORARY TABLE p (k serial, g geometry(Point, 4326))")
        pg_bulk.copy_columns(cur, "p", ["g"], [[pg_bulk.ewkb_points(x, y, 4326)]])
        cur.execute("SELECT ST_X(g), ST_Y(g), ST_SRID(g) FROM p ORDER BY k")
        rows = cur.fetchall()
    assert rows[1] == (None, None, None)
    assert [r for i, r in enumerate(rows) if i != 1] == [(113.9, 22.8, 4326), (-0.5, 51.5, 4326), (1e-9, -1e-9, 4326)]

