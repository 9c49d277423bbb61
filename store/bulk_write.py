"""Bulk writes of reports and their events, and the lookup of idempotency keys already stored.

A batch is written in ONE transaction, so a crash leaves nothing half-imported.
PostGIS gets a binary COPY (store.pg_bulk): a thread builds and encodes window k+1
while the server stores window k. A load that at least doubles the tables rebuilds
their indexes instead of growing them row by row. SQLite gets executemany. Both
store values exactly as the ORM's column types do (store.types).
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from store import pg_bulk
from store.deadline import Deadlines
from store.models import Report
from store.tokens import new_tokens

REPORT_COLS = ["id", "created_at", "updated_at", "source", "category", "description", "location_input", "geom",
               "geocode_method", "geocode_confidence", "needs_review", "review_note", "zone_id", "village_code",
               "chief_id", "status", "reporter_name", "reporter_phone", "photo_url", "idempotency_key",
               "tracking_token", "satisfaction", "rating", "rating_comment", "rated_at", "first_rated_at", "generation_id"]
# Columns a batch may leave out: null for every row (a citizen's answer is given later, if at all).
OPTIONAL_COLS = {"satisfaction": pa.string(), "rating": pa.int32(), "rating_comment": pa.string(),
                 "rated_at": pa.timestamp("us", tz="UTC"), "first_rated_at": pa.timestamp("us", tz="UTC")}
EVENT_COLS = ["report_id", "status", "at", "actor", "note"]

CHUNK = 50_000  # rows per COPY message: bounded memory, and the encoding overlaps the server's work
FIRST_CHUNK = 5_000  # a small first window: the server starts storing sooner
REBUILD_MIN = 10_000  # smaller imports never take the exclusive lock


class Batch(Protocol):
    """The reports of an import, built a window at a time (zonechief.bulk.Batch, FileBatch)."""

    max_rows: int  # at most this many reports (0: nothing to write)
    built: int  # reports built so far
    generation: int | None  # the boundary generation the reports were assigned under

    def chunks(self, size: int, first: int | None = None) -> Iterator[tuple[int, pa.Table, pa.Table, int]]:
        """(offset, reports, events, progress advance) per window; events' "report" is the position in the window."""


class Ids(Sequence[int]):
    """The new ids of a write, in order, held as runs of consecutive ids: no Python int per row."""

    def __init__(self) -> None:
        self._first: list[int] = []  # each run's first id
        self._end: list[int] = []  # each run's end as a position in the whole (cumulative length)

    def add_run(self, first: int, n: int) -> None:
        """Append ids first .. first + n - 1."""
        if n <= 0:
            return
        if self._first and self._first[-1] + self._length(-1) == first:
            self._end[-1] += n
        else:
            self._first.append(first)
            self._end.append(len(self) + n)

    def add(self, ids: np.ndarray) -> None:
        """Append ids in the order given."""
        cuts = [0, *(np.flatnonzero(np.diff(ids) != 1) + 1).tolist(), len(ids)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                self.add_run(int(ids[a]), b - a)

    def _length(self, k: int) -> int:
        k %= len(self._end)
        return self._end[k] - (self._end[k - 1] if k else 0)

    def __len__(self) -> int:
        return self._end[-1] if self._end else 0

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return list(self)[i]
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = bisect.bisect_right(self._end, i)
        return self._first[k] + i - (self._end[k - 1] if k else 0)

    def __iter__(self):
        for k, first in enumerate(self._first):
            yield from range(first, first + self._length(k))

    def __eq__(self, other) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Ids(" + ", ".join(f"{f}..{f + self._length(k) - 1}" for k, f in enumerate(self._first)) + ")"


class BulkWriter(ABC):
    """Writes whole imports and answers which of their keys are stored."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @staticmethod
    def for_db(db) -> "BulkWriter":
        """The implementation for `db`'s dialect."""
        return (PostgisBulkWriter if db.dialect == "postgresql" else SqliteBulkWriter)(db.engine)

    def write(self, batch: Batch, rebuild_indexes: bool | None = None,
              progress: Callable[[int], None] | None = None) -> Ids:
        """Insert a batch and its events in one transaction; returns the new ids, in batch order.

        `rebuild_indexes` (PostGIS only; None: when the batch has at least REBUILD_MIN rows and
        at least as many as the table) drops the indexes and constraints for the load and builds
        them again before commit, holding an exclusive lock on reports and report_events
        meanwhile. `progress` gets the source rows each window settles.
        """
        if batch.max_rows == 0:
            return Ids()
        return self._write(batch, rebuild_indexes, progress)

    def stored_keys(self, keys: pa.Array) -> pa.Array:
        """Which of `keys` (distinct idempotency keys) are already stored."""
        if not len(keys):
            return pa.array([], pa.string())
        return self._stored_keys(keys)

    @abstractmethod
    def _write(self, batch: Batch, rebuild_indexes: bool | None, progress) -> Ids: ...

    @abstractmethod
    def _stored_keys(self, keys: pa.Array) -> pa.Array: ...


# ------------------------------------------------------------------ PostGIS
class PostgisBulkWriter(BulkWriter):
    """Binary COPY, windows encoded ahead in a thread, index rebuilds for large loads."""

    def _write(self, batch, rebuild_indexes, progress):
        # Each window takes its ids when built, on a second connection: sequences are not
        # transactional, and the transaction's own connection is busy with the COPY meanwhile.
        n = batch.max_rows
        ids = Ids()
        with self.engine.begin() as conn, _bulk_cursor(conn) as cur, \
                self.engine.begin() as side_conn, _bulk_cursor(side_conn) as side:
            if rebuild_indexes is None:
                rebuild_indexes = n >= REBUILD_MIN and n >= pg_bulk.estimated_rows(cur, "reports")
            cur.execute("SELECT pg_get_serial_sequence('reports', 'id'), pg_get_serial_sequence('report_events', 'id')")
            seq, event_seq = cur.fetchone()
            ctx = pg_bulk.indexes_rebuilt(cur, ["reports", "report_events"]) if rebuild_indexes else nullcontext()
            with ctx:
                def take(m):
                    return _new_ids(side, seq, m, locked=bool(rebuild_indexes))

                # A window's reports, then its events: the server stores window k while
                # a thread builds and encodes window k+1.
                for data, ev, advance, got in _ahead(_pg_windows(batch, take)):
                    ids.add(got)
                    pg_bulk.copy_encoded(cur, "reports", REPORT_COLS, [data])
                    names = EVENT_COLS
                    if rebuild_indexes:  # explicit ids: no nextval() per row
                        ev = [pa.array(_new_ids(cur, event_seq, len(ev[0]), locked=True), pa.int32()), *ev]
                        names = ["id", *EVENT_COLS]
                    pg_bulk.copy_columns(cur, "report_events", names, [ev])
                    if progress:
                        progress(advance)
        return ids

    def _stored_keys(self, keys):
        # COPY the keys into a temporary table and join: no parameter, no round trip per key
        with self.engine.begin() as conn, _bulk_cursor(conn) as cur:
            cur.execute("CREATE TEMPORARY TABLE zc_import_keys (key text) ON COMMIT DROP")
            pg_bulk.copy_columns(cur, "zc_import_keys", ["key"], [[keys]])
            cur.execute("SELECT r.idempotency_key FROM zc_import_keys k JOIN reports r ON r.idempotency_key = k.key")
            return pa.array([r[0] for r in cur.fetchall()], pa.string())


@contextmanager
def _bulk_cursor(conn) -> Iterator:
    """The psycopg cursor of `conn`'s transaction; each statement (a COPY of one window, an index build)
    and the commit get the bulk deadline (store.deadline)."""
    deadlines = Deadlines.of(conn.engine)
    deadlines.extend(conn)
    with conn.connection.driver_connection.cursor() as cur:
        yield deadlines.cursor(cur)


def _pg_windows(batch: Batch, take_ids: Callable[[int], np.ndarray]):
    """(reports as binary COPY data, event columns with report ids, progress advance, the ids) per window."""
    for _, t, e, advance in batch.chunks(CHUNK, FIRST_CHUNK):
        ids = take_ids(t.num_rows)
        lon = t["lon"].to_numpy(zero_copy_only=False)
        lat = t["lat"].to_numpy(zero_copy_only=False)
        cols = {"id": pa.array(ids, pa.int32()), "geom": pg_bulk.ewkb_points(lon, lat, 4326), **_own_columns(t, getattr(batch, "generation", None))}
        data = pg_bulk.encode([cols[c] if c in cols else t[c].combine_chunks() for c in REPORT_COLS])
        events = [pa.array(ids[e["report"].to_numpy()], pa.int32()),
                  *(e[c].combine_chunks() for c in EVENT_COLS[1:])]
        yield data, events, advance, ids


def _own_columns(t: pa.Table, generation: int | None) -> dict[str, pa.Array]:
    """The columns the store adds to a window of reports: a fresh tracking token each (store.tokens), the
    boundary generation, and nulls for the optional columns the batch does not carry."""
    n = t.num_rows
    out = {"tracking_token": new_tokens(n), "generation_id": pa.nulls(n, pa.int32()) if generation is None
           else pa.repeat(pa.scalar(generation, pa.int32()), n)}
    out.update({c: pa.nulls(n, typ) for c, typ in OPTIONAL_COLS.items() if c not in t.column_names})
    return out


def _ahead(iterable):
    """The items of `iterable`, each next one computed in a thread while the caller uses the current one."""
    it = iter(iterable)
    end = object()
    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(next, it, end)
        while (item := nxt.result()) is not end:
            nxt = pool.submit(next, it, end)
            yield item


def _new_ids(cur, seq: str, n: int, locked: bool) -> np.ndarray:
    """n new ids of the sequence named `seq`, ascending."""
    if n == 0:
        return np.zeros(0, np.int64)
    if locked:  # nobody else can insert into the table now: take the whole range in one step
        cur.execute("SELECT setval(%s::regclass, nextval(%s::regclass) + %s - 1)", (seq, seq, n))
        last = cur.fetchone()[0]
        return np.arange(last - n + 1, last + 1, dtype=np.int64)
    cur.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (seq, n))
    return np.array([r[0] for r in cur.fetchall()], np.int64)


# ------------------------------------------------------------------ SQLite
class SqliteBulkWriter(BulkWriter):
    """executemany through the sqlite3 cursor of the transaction, ids counted on from MAX(id)."""

    def _write(self, batch, rebuild_indexes, progress):
        with self.engine.begin() as conn:
            start = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM reports")).scalar_one() + 1
            cur = conn.connection.driver_connection.cursor()  # sqlite3, same transaction
            for a, t, e, advance in batch.chunks(CHUNK):
                ids = pa.array(np.arange(start + a, start + a + t.num_rows))
                cols = {"id": ids, "geom": _wkb_points(t["lon"].to_numpy(zero_copy_only=False),
                                                       t["lat"].to_numpy(zero_copy_only=False)), **_own_columns(t, getattr(batch, "generation", None))}
                _insert_rows(cur, "reports", REPORT_COLS, [cols[c] if c in cols else t[c] for c in REPORT_COLS])
                ev = [pc.add(e["report"], start + a)] + [e[c] for c in EVENT_COLS[1:]]
                _insert_rows(cur, "report_events", EVENT_COLS, ev)
                if progress:
                    progress(advance)
        ids = Ids()
        ids.add_run(start, batch.built)
        return ids

    def _stored_keys(self, keys):
        found: list[str] = []
        names = keys.to_pylist()
        with self.engine.connect() as conn:
            for i in range(0, len(names), 5000):
                found += conn.execute(select(Report.idempotency_key)
                                      .where(Report.idempotency_key.in_(names[i:i + 5000]))).scalars().all()
        return pa.array(found, pa.string())


def _wkb_points(x: np.ndarray, y: np.ndarray) -> list:
    """WKB per point (None where x is NaN): how store.types.Geom stores geometry on SQLite."""
    out = np.full(len(x), None, object)
    ok = ~np.isnan(x)
    out[ok] = shapely.to_wkb(shapely.points(x[ok], y[ok]))
    return out.tolist()


def _insert_rows(cur, table: str, names: list[str], columns: list) -> None:
    """executemany with values stored as the ORM's types store them (see store.types)."""
    values = []
    for c in columns:
        if isinstance(c, (pa.Array, pa.ChunkedArray)) and pa.types.is_timestamp(c.type):
            c = pc.strftime(c, format="%Y-%m-%d %H:%M:%S")  # UTC, with .ffffff: SQLAlchemy's SQLite format
        values.append(c.to_pylist() if isinstance(c, (pa.Array, pa.ChunkedArray)) else c)
    if values and len(values[0]):
        cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                        list(zip(*values)))
