"""PostgreSQL bulk loading: binary COPY built from columns, and index rebuilds for large loads.

Rows are never formed in Python: the sizes of every row's fields are summed with
numpy, then compiled loops (numba) copy each column (a pyarrow array) into its
rows' places in one buffer. Binary COPY also spares the server parsing text timestamps,
numbers and hex geometry.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
TRAILER = b"\xff\xff"
BLOCK = 4096  # rows
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC, PostgreSQL's timestamp origin, in Unix µs


def _fixed(values_be: np.ndarray) -> np.ndarray:
    """Big-endian values as an (n, width) byte matrix."""
    return np.ascontiguousarray(values_be).view(np.uint8).reshape(len(values_be), values_be.dtype.itemsize)


def _field(a: pa.Array) -> tuple:
    """A column as ("fixed", (n, width) bytes, valid) or ("variable", offsets, payload bytes, valid)."""
    valid = a.is_valid().to_numpy(zero_copy_only=False) if a.null_count else np.ones(len(a), bool)
    t = a.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        wide = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        _, off, data = a.buffers()
        offsets = np.frombuffer(off, np.int64 if wide else np.int32, count=len(a) + 1,
                                offset=a.offset * (8 if wide else 4)).astype(np.int64)
        payload = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        return "variable", offsets, payload, valid
    if pa.types.is_timestamp(t):
        us = pc.fill_null(a.cast(pa.timestamp("us", tz="UTC")), 0).cast(pa.int64()).to_numpy()
        return "fixed", _fixed((us - _PG_EPOCH_US).astype(">i8")), valid
    if pa.types.is_boolean(t):
        return "fixed", _fixed(pc.fill_null(a, False).to_numpy(zero_copy_only=False).astype(np.uint8)), valid
    if pa.types.is_int32(t) or pa.types.is_int64(t) or pa.types.is_float64(t):
        v = pc.fill_null(a, 0).to_numpy()
        return "fixed", _fixed(v.astype(v.dtype.newbyteorder(">"))), valid
    raise TypeError(f"no binary COPY encoding for {t}")


@njit(cache=True, nogil=True)
def _put_length(out, p, length):  # 4 bytes, big-endian, two's complement (-1: NULL)
    out[p] = (length >> 24) & 0xFF
    out[p + 1] = (length >> 16) & 0xFF
    out[p + 2] = (length >> 8) & 0xFF
    out[p + 3] = length & 0xFF


@njit(cache=True, nogil=True)
def _put_fixed(out, pos, values, valid):
    """Row i's field at out[pos[i]]: length, then the value (NULL: length -1 alone); advances pos."""
    n, width = values.shape
    for i in range(n):
        p = pos[i]
        if valid[i]:
            _put_length(out, p, width)
            for k in range(width):  # a loop: numba's slice copy costs more for a few bytes
                out[p + 4 + k] = values[i, k]
            pos[i] = p + 4 + width
        else:
            _put_length(out, p, -1)
            pos[i] = p + 4


@njit(cache=True, nogil=True)
def _put_variable(out, pos, offsets, payload, valid):
    """As _put_fixed, for values of any length: row i's are payload[offsets[i]:offsets[i + 1]]."""
    for i in range(len(pos)):
        p = pos[i]
        if valid[i]:
            a, b = offsets[i], offsets[i + 1]
            _put_length(out, p, b - a)
            out[p + 4:p + 4 + b - a] = payload[a:b]
            pos[i] = p + 4 + b - a
        else:
            _put_length(out, p, -1)
            pos[i] = p + 4


@njit(cache=True, nogil=True)
def _add_lengths(size, offsets, valid):
    for i in range(len(size)):
        if valid[i]:
            size[i] += offsets[i + 1] - offsets[i]


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
    """The rows of `columns` (equal lengths, in table column order) as binary COPY data, without header.

    A row is its field count (2 bytes), then per field a 4-byte length and the value.
    """
    n = len(columns[0]) if columns else 0
    if n == 0:
        return pa.py_buffer(b"")
    fields = [_field(a) for a in columns]
    size = np.full(n, 2 + 4 * len(fields), np.int64)
    for f in fields:
        if f[0] == "fixed":
            size += f[1].shape[1] * f[2]
        else:
            _add_lengths(size, f[1], f[3])
    pos = np.zeros(n, np.int64)
    np.cumsum(size[:-1], out=pos[1:])
    buf = pa.allocate_buffer(int(pos[-1] + size[-1]))  # Arrow's pool: reused memory, no fresh page faults
    out = np.frombuffer(buf, np.uint8)
    out[pos], out[pos + 1] = len(fields) >> 8, len(fields) & 0xFF
    pos += 2
    for i0 in range(0, n, BLOCK):  # a block of rows at a time: its part of `out` stays in cache
        i1 = min(i0 + BLOCK, n)
        for f in fields:  # a column at a time, each into its rows' places
            if f[0] == "fixed":
                _put_fixed(out, pos[i0:i1], f[1][i0:i1], f[2][i0:i1])
            else:
                _put_variable(out, pos[i0:i1], f[1][i0:i1 + 1], f[2], f[3][i0:i1])
    return buf


def copy_columns(cur, table: str, names: list[str], chunks: Iterable[list[pa.Array]]) -> None:
    """COPY table (names) FROM STDIN in binary, encoding one chunk of columns at a time.

    A writer thread sends each chunk while the next is encoded, so the client's work
    overlaps the server's.
    """
    copy_encoded(cur, table, names, map(encode, chunks))


def copy_encoded(cur, table: str, names: list[str], data: Iterable) -> None:
    """COPY table (names) FROM STDIN in binary, from pieces of `encode` output."""
    from psycopg.copy import QueuedLibpqWriter

    with cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT binary)",
                  writer=QueuedLibpqWriter(cur)) as cp:
        cp.write(HEADER)
        for piece in data:
            cp.write(piece)
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
    # Also the foreign keys of other tables that point here (report_media → reports): a key cannot be
    # dropped while one depends on it.
    cur.execute("SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype = 'f' "
                "FROM pg_constraint c WHERE (c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('p', 'u', 'x', 'f')) "
                "OR (c.confrelid = ANY(%s::regclass[]) AND c.contype = 'f') "
                "ORDER BY c.contype = 'f', c.conrelid::regclass::text, c.conname", (tables, tables))
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
