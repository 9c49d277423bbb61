"""PostgreSQL bulk loading: binary COPY built from columns, and index rebuilds for large loads.

Rows are never formed in Python: each column (a pyarrow array) becomes a run of
length-prefixed binary fields in one vectorized pass, and pyarrow joins the fields
of each row in C. Binary COPY also spares the server parsing text timestamps,
numbers and hex geometry.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC, PostgreSQL's timestamp origin, in Unix µs
_NULL = np.array([-1], ">i4").tobytes()


def _fixed(values_be: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """Fields of one fixed-width type: 4-byte length, then the big-endian value; NULL is length -1."""
    n, width = len(values_be), values_be.dtype.itemsize
    buf = np.empty((n, 4 + width), np.uint8)
    buf[:, :4] = np.frombuffer(np.array([width], ">i4").tobytes(), np.uint8)
    buf[:, 4:] = values_be.view(np.uint8).reshape(n, width)
    out = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 + width), n, [None, pa.py_buffer(buf)]).cast(pa.binary())
    if valid is not None and not valid.all():
        out = pc.if_else(pa.array(valid), out, pa.scalar(_NULL, pa.binary()))
    return out


def _variable(a: pa.Array) -> list[pa.Array]:
    """Text or bytes: the 4-byte lengths as one array, the payloads as another (joined later)."""
    a = a.cast(pa.binary())
    lens = pc.binary_length(a).to_numpy(zero_copy_only=False)
    if a.null_count:
        lens = np.where(a.is_null().to_numpy(zero_copy_only=False), -1, lens)
    prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(a), [None, pa.py_buffer(lens.astype(">i4"))])
    return [prefix.cast(pa.binary()), pc.fill_null(a, b"")]


def _fields(a: pa.Array) -> list[pa.Array]:
    valid = a.is_valid().to_numpy(zero_copy_only=False) if a.null_count else None
    t = a.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _variable(a)
    if pa.types.is_timestamp(t):
        us = pc.fill_null(a.cast(pa.timestamp("us", tz="UTC")), 0).cast(pa.int64()).to_numpy()
        return [_fixed((us - _PG_EPOCH_US).astype(">i8"), valid)]
    if pa.types.is_boolean(t):
        return [_fixed(pc.fill_null(a, False).to_numpy(zero_copy_only=False).astype(np.uint8), valid)]
    if pa.types.is_int32(t) or pa.types.is_int64(t) or pa.types.is_float64(t):
        v = pc.fill_null(a, 0).to_numpy()
        return [_fixed(v.astype(v.dtype.newbyteorder(">")), valid)]
    raise TypeError(f"no binary COPY encoding for {t}")


def ewkb_points(x: np.ndarray, y: np.ndarray, srid: int) -> pa.Array:
    """Points as little-endian EWKB (what PostGIS's binary input reads); NULL where x is NaN."""
    n = len(x)
    buf = np.empty((n, 25), np.uint8)
    buf[:, :9] = np.frombuffer(b"\x01" + (0x20000001).to_bytes(4, "little") + srid.to_bytes(4, "little"), np.uint8)
    buf[:, 9:17] = np.ascontiguousarray(x, "<f8").view(np.uint8).reshape(n, 8)
    buf[:, 17:] = np.ascontiguousarray(y, "<f8").view(np.uint8).reshape(n, 8)
    out = pa.FixedSizeBinaryArray.from_buffers(pa.binary(25), n, [None, pa.py_buffer(buf)]).cast(pa.binary())
    missing = np.isnan(x)
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.binary()), out) if missing.any() else out


def encode(columns: list[pa.Array]) -> pa.Buffer:
    """The rows of `columns` (equal lengths, in table column order) as binary COPY data, without header."""
    n = len(columns[0])
    if n == 0:
        return pa.py_buffer(b"")
    count = np.frombuffer(np.array([len(columns)], ">i2").tobytes(), np.uint8)
    parts = [pa.FixedSizeBinaryArray.from_buffers(pa.binary(2), n, [None, pa.py_buffer(np.tile(count, n))])
             .cast(pa.binary())]
    for a in columns:
        parts.extend(_fields(a))
    rows = pc.binary_join_element_wise(*parts, b"")
    offsets = np.frombuffer(rows.buffers()[1], np.int32, count=n + 1, offset=rows.offset * 4)
    return rows.buffers()[2][offsets[0]:offsets[-1]]


def copy_columns(cur, table: str, names: list[str], chunks: Iterable[list[pa.Array]]) -> None:
    """COPY table (names) FROM STDIN in binary, one encoded chunk at a time.

    A writer thread sends each chunk while the next is encoded, so the client's work
    overlaps the server's.
    """
    from psycopg.copy import QueuedLibpqWriter

    with cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT binary)",
                  writer=QueuedLibpqWriter(cur)) as cp:
        cp.write(HEADER)
        for cols in chunks:
            cp.write(encode(cols))
        cp.write(TRAILER)


# ------------------------------------------------------------------ index rebuilds
@contextmanager
def indexes_rebuilt(cur, tables: list[str]) -> Iterator[None]:
    """Drop the indexes and constraints of `tables`, run the block, recreate them.

    Building an index once over the whole table is several times cheaper than growing
    it row by row, so a load that at least doubles a table goes faster this way. Must
    run inside the caller's transaction: the tables stay locked (ACCESS EXCLUSIVE) until
    it ends, and if anything fails, rollback restores the indexes with the data. A
    unique or foreign-key violation surfaces when the constraint is added again.
    """
    cur.execute("SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype = 'f' "
                "FROM pg_constraint c WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('p', 'u', 'x', 'f') "
                "ORDER BY c.contype = 'f', c.conrelid::regclass::text, c.conname", (tables,))
    constraints = cur.fetchall()  # keys before the foreign keys that need them
    cur.execute("SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')) "
                "ORDER BY 1", (tables,))
    indexes = cur.fetchall()
    cur.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    for table, name, _, _ in reversed(constraints):  # foreign keys first
        cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cur.execute(f"DROP INDEX {name}")
    yield
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for table, name, ddl, foreign in constraints:
        if not foreign:
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
    for _, ddl in indexes:
        cur.execute(ddl)
    for table, name, ddl, foreign in constraints:
        if foreign:
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')


def estimated_rows(cur, table: str) -> int:
    """The planner's row estimate (no scan), or a count if the table was never analysed."""
    cur.execute("SELECT reltuples::bigint, pg_relation_size(oid) FROM pg_class WHERE oid = %s::regclass", (table,))
    tuples, size = cur.fetchone()
    if tuples < 0:  # never analysed: an empty file is 0 rows, otherwise count
        if size == 0:
            return 0
        cur.execute(f"SELECT count(*) FROM {table}")
        tuples = cur.fetchone()[0]
    return int(tuples)
