"""Bulk intake: import report files and seed demo data, all-or-nothing.

Rows take one of two routes. *Plain* rows (coordinates, unambiguous values; see
gis.bulk_columns) are checked, located and assigned a column at a time; every other
row goes through pydantic's ReportIn and `prepare`, one by one, which also gives the
reasons for rejects. Both routes store the same thing for the same row. Bad rows go
to a rejects file with a reason each. The good rows are written in ONE transaction
(binary COPY on PostGIS, executemany on SQLite), so a crash leaves nothing
half-imported. A load that at least doubles the table rebuilds the indexes instead
of growing them row by row (gis.store.pg_bulk).
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pydantic import ValidationError
from sqlalchemy import select, text

from zonechief.bulk_columns import TS, Plain, build_plain, locate_plain, plain_rows, text_column
from gis.lookup import IN_ZONE
from zonechief.reports import Location, ReportError, ReportIn, Reports
from gis.localtime import local_day
from store import pg_bulk
from store.models import TRANSITIONS, Report

REPORT_COLS = ["id", "created_at", "updated_at", "source", "category", "description", "location_input", "geom",
               "geocode_method", "geocode_confidence", "needs_review", "review_note", "zone_id", "village_code",
               "chief_id", "status", "reporter_name", "reporter_phone", "photo_url", "idempotency_key"]
EVENT_COLS = ["report_id", "status", "at", "actor", "note"]


@dataclass
class Intake:
    row: int  # 1-based row number in the source, for rejects
    data: ReportIn
    history: list[dict] | None = None  # [{"status", "at"}]; default new(+assigned) at created_at


@dataclass
class ImportResult:
    inserted: int = 0
    already_present: int = 0
    rejected: int = 0
    needs_review: int = 0
    rejects_path: Path | None = None
    ids: list[int] = field(default_factory=list)

    def __str__(self):
        s = f"{self.inserted} imported ({self.needs_review} need review), {self.already_present} already present, {self.rejected} rejected"
        return s + (f" → {self.rejects_path}" if self.rejected and self.rejects_path else "")


# ------------------------------------------------------------------ reading files
def _clean(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    v = str(v).strip() if not isinstance(v, (int, float)) else v
    return None if v == "" else v


def _clean_column(col: pd.Series) -> list:
    """_clean over a column; plain str columns (CSV) take a fast path with the same result."""
    v = col.tolist()
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        if all(type(x) is str for x in v):
            return [x.strip() or None for x in v]
    return [_clean(x) for x in v]


def read_table(path: str | Path) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None, str | None]:
    """A report file as (attribute table, point x, point y, the file's CRS); x, y are None for CSV."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".csv", ".txt"):
        kw = dict(dtype=str, keep_default_na=False, encoding="utf-8-sig")
        try:  # pyarrow's reader is ~3× faster; pandas' own is the reference for anything it refuses
            table = pd.read_csv(path, engine="pyarrow", **kw)
        except Exception:  # noqa: BLE001
            table = pd.read_csv(path, **kw)
        return table, None, None, None
    import geopandas as gpd

    table = gpd.read_parquet(path) if ext in (".parquet", ".geoparquet") else gpd.read_file(path, engine="pyogrio")
    geom = table.geometry
    ok = geom.notna() & ~geom.is_empty & (geom.geom_type == "Point")
    xs = np.where(ok, geom.x.where(ok), np.nan)
    ys = np.where(ok, geom.y.where(ok), np.nan)
    file_crs = table.crs.to_string() if table.crs is not None else None
    return pd.DataFrame(table.drop(columns=table.geometry.name)), xs, ys, file_crs


def parse_rows(table: pd.DataFrame, xs, ys, crs: str | None, file_crs: str | None,
               positions: np.ndarray | None = None) -> list[dict | str]:
    """The per-row route: each row as a ReportIn-shaped dict, or the reason it cannot be one."""
    sub = table if positions is None else table.iloc[positions]
    at = range(len(table)) if positions is None else positions
    out: list[dict | str] = []
    # Column by column, not cell by cell: the same _clean results, several times faster.
    cols = list(sub.columns)
    vals = [_clean_column(sub.iloc[:, j]) for j in range(len(cols))]
    for i, rv in zip(at, zip(*vals) if vals else ((() for _ in range(len(sub))))):
        r = dict(zip(cols, rv))
        loc: dict = {}
        if r.get("service_code"):
            loc["service_code"] = r["service_code"]
        elif r.get("address"):
            loc["address"] = r["address"]
        elif xs is not None and np.isfinite(xs[i]):
            loc.update(lon=float(xs[i]), lat=float(ys[i]), crs=r.get("crs") or crs or file_crs or "wgs84")
        elif r.get("lon") is not None or r.get("lat") is not None:
            try:
                loc.update(lon=float(r.get("lon")), lat=float(r.get("lat")))
            except (TypeError, ValueError):
                out.append(f"lon/lat {r.get('lon')!r}, {r.get('lat')!r} are not numbers")
                continue
            loc["crs"] = r.get("crs") or crs or "wgs84"
        else:
            out.append("no location: give lon/lat, service_code or address")
            continue
        d = {"source": r.get("source") or ("service_code" if "service_code" in loc else "address" if "address" in loc else "staff"),
             "category": r.get("category"), "description": r.get("description") or "", "location": loc,
             "photo_url": r.get("photo_url"), "idempotency_key": r.get("idempotency_key")}
        if r.get("reporter_name") or r.get("reporter_phone"):
            d["reporter"] = {"name": r.get("reporter_name"), "phone": r.get("reporter_phone")}
        if r.get("created_at"):
            d["created_at"] = r["created_at"]
        if d["category"] is not None:
            d["category"] = str(d["category"]).zfill(5) if str(d["category"]).isdigit() else str(d["category"])
        out.append(d)
    return out


def _reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


# ------------------------------------------------------------------ locating and writing
def prepare(reports: Reports, intakes: list[Intake], actor: str, now: datetime,
            progress: Callable[[int], None] | None = None) -> tuple[list[dict], list[list[dict]], list[tuple[int, str]]]:
    """Locate and assign every intake. Returns (report rows, events per row, rejects[(row, reason)])."""
    index = reports.index
    rejects: list[tuple[int, str]] = []
    rows, events = [], []
    # Vectorize coordinate intakes: one assign() per CRS.
    coord = [k for k, it in enumerate(intakes) if it.data.location.lon is not None]
    located: dict[int, tuple] = {}
    by_crs: dict[str, list[int]] = {}
    for k in coord:
        by_crs.setdefault(intakes[k].data.location.crs, []).append(k)
    from gis.crs import UnknownCRSError, normalize_crs

    for crs_name, ks in by_crs.items():
        try:
            c = normalize_crs(crs_name)
        except UnknownCRSError as exc:
            rejects.extend((intakes[k].row, str(exc)) for k in ks)
            continue
        x = np.array([intakes[k].data.location.lon for k in ks])
        y = np.array([intakes[k].data.location.lat for k in ks])
        df = index.assign(x, y, crs=c)
        # Only the columns used below, as plain lists (itertuples over 17 columns is slow).
        use = ["status", "problem", "zone_id", "nearest_zone_id", "distance_m", "village_code", "lon_wgs84", "lat_wgs84"]
        for k, r in zip(ks, zip(*(df[c].tolist() for c in use))):
            if r[0] == "invalid":
                rejects.append((intakes[k].row, r[1]))
            else:
                located[k] = _Loc(*r)
    rejected_rows = {r for r, _ in rejects}
    chief_cache: dict[tuple, str | None] = {}
    addr_cache: dict[str, object] = {}
    for k, it in enumerate(intakes):
        if it.row in rejected_rows:
            continue
        d = it.data
        created = d.created_at or now
        if d.category not in reports.category_codes:
            rejects.append((it.row, f"unknown category {d.category!r}"))
            continue
        try:
            if k in located:
                r = located[k]
                zone = r.zone_id if r.status in IN_ZONE else None
                lon, lat, method, conf = r.lon_wgs84, r.lat_wgs84, "coordinates", 1.0
                review = zone is None
                note = None if zone else f"outside every zone; nearest {r.nearest_zone_id} at {r.distance_m:.0f} m"
                if r.status == "snapped":
                    note = f"attached to nearest zone {zone} ({r.distance_m:.0f} m outside)"
                village = r.village_code if zone else None
            else:
                key = d.location.address
                if key is not None and key in addr_cache:
                    loc = addr_cache[key]
                else:
                    loc = reports.locate(d.location, at=created)
                    if key is not None:
                        addr_cache[key] = loc
                lon, lat, method, conf, review, note = loc.lon, loc.lat, loc.method, loc.confidence, loc.needs_review, loc.note
                zone, village = loc.zone_id, loc.village_code
        except ReportError as exc:
            rejects.append((it.row, str(exc)))
            continue
        ck = (zone, local_day(created))  # the roster's day: Dongguan's calendar, whatever the input's offset
        if ck not in chief_cache:
            chief_cache[ck] = reports._chief(zone, created)
        chief = chief_cache[ck]
        hist = it.history or ([{"status": "new", "at": created}] + ([{"status": "assigned", "at": created}] if zone else []))
        if not zone:
            hist = [h for h in hist if h["status"] in ("new", "rejected", "duplicate")]
        err = _check_history(hist)
        if err:
            rejects.append((it.row, err))
            continue
        rows.append({
            "row": it.row, "created_at": created, "updated_at": hist[-1]["at"], "source": d.source, "category": d.category,
            "description": d.description, "location_input": _as_received(d.location), "geocode_method": method,
            "geocode_confidence": float(conf), "needs_review": bool(review), "review_note": note, "zone_id": zone,
            "village_code": village, "chief_id": chief, "status": hist[-1]["status"],
            "reporter_name": d.reporter.name if d.reporter else None,
            "reporter_phone": d.reporter.phone if d.reporter else None, "photo_url": d.photo_url,
            "idempotency_key": d.idempotency_key, "lon": lon, "lat": lat,
        })
        events.append([{"status": h["status"], "at": h["at"], "actor": actor if j == 0 else "system", "note": None}
                       for j, h in enumerate(hist)])
        if progress and (k + 1) % 1000 == 0:
            progress(1000)
    if progress and len(intakes) % 1000:
        progress(len(intakes) % 1000)
    return rows, events, rejects


class _Loc(NamedTuple):
    status: str
    problem: str | None
    zone_id: str | None
    nearest_zone_id: str | None
    distance_m: float
    village_code: str | None
    lon_wgs84: float
    lat_wgs84: float


def _as_received(loc: Location) -> dict:
    # Location.as_received() (a model_dump) for the common coordinate case, built directly.
    if loc.lon is not None and loc.lat is not None and loc.service_code is None and loc.address is None:
        return {"lon": loc.lon, "lat": loc.lat, "crs": loc.crs}
    return loc.as_received()


def _check_history(hist: list[dict]) -> str | None:
    if not hist or hist[0]["status"] != "new":
        return "history must start with status new"
    for a, b in zip(hist, hist[1:]):
        if b["status"] not in TRANSITIONS[a["status"]]:
            return f"invalid status change {a['status']} → {b['status']}"
        if b["at"] < a["at"]:
            return "history times must not go backwards"
    return None


# ------------------------------------------------------------------ batches: reports and events as columns
BATCH_TYPES = {"row": pa.int64(), "created_at": TS, "updated_at": TS, "lon": pa.float64(), "lat": pa.float64(),
               "geocode_confidence": pa.float64(), "needs_review": pa.bool_()}


def batch_from_rows(rows: list[dict], events: list[list[dict]]) -> tuple[pa.Table, pa.Table]:
    """The per-row route's output as a batch: a report table and an event table (column "report")."""
    names = ["row", *(c for c in REPORT_COLS if c not in ("id", "geom")), "lon", "lat"]
    cols = {}
    for c in names:
        v = [r[c] for r in rows]
        if c == "location_input":
            v = [json.dumps(x, ensure_ascii=False) for x in v]
        cols[c] = pa.array(v, BATCH_TYPES.get(c, pa.string()))
    report = [i for i, evs in enumerate(events) for _ in evs]
    flat = [e for evs in events for e in evs]
    ev = {"report": pa.array(report, pa.int64())}
    for c in EVENT_COLS[1:]:
        ev[c] = pa.array([e[c] for e in flat], TS if c == "at" else pa.string())
    return pa.table(cols), pa.table(ev)


@dataclass
class Part:
    """Candidate reports from one route: their source rows (ascending), and how to build some of them.

    build(i0, i1) turns candidates i0..i1 into (reports, events, rejects[(row, reason)]);
    events refer to their report by position in that reports table ("report").
    """
    rows: np.ndarray
    build: Callable[[int, int], tuple[pa.Table, pa.Table, list[tuple[int, str]]]]
    counted: bool  # progress was reported while preparing them


def rows_part(table: pa.Table, events: pa.Table) -> Part:
    """A part over ready tables (the per-row route; events sorted by "report")."""
    report = events["report"].to_numpy()

    def build(i0, i1):
        e0, e1 = np.searchsorted(report, [i0, i1])
        ev = events.slice(e0, e1 - e0)
        return table.slice(i0, i1 - i0), ev.set_column(0, "report", pa.array(report[e0:e1] - i0)), []

    return Part(table["row"].to_numpy(), build, counted=True)


class Batch:
    """The reports of an import in source-row order (so ids follow the file), built a window at a time.

    Building lazily lets the client locate and encode window k+1 while the server stores
    window k. Rows a window rejects are collected in `rejects`.
    """

    def __init__(self, parts: list[Part]):
        self.parts = [p for p in parts if len(p.rows)]
        self.max_rows = sum(len(p.rows) for p in self.parts)  # before any window rejects
        self.rejects: list[tuple[int, str]] = []
        self.needs_review = 0
        self.built = 0  # reports built so far (candidates minus the windows' rejects)

    def chunks(self, size: int, first: int | None = None):
        """(offset, reports, events, advance) per window of `size` candidates (the first: `first`).

        offset: reports built before this window; "report": the position in the window;
        advance: the window's source rows that progress has not been told of yet.
        """
        bounds = np.sort(np.concatenate([p.rows for p in self.parts])) if self.parts else np.zeros(0, np.int64)
        starts = [0, *range(first, self.max_rows, size)] if first else list(range(0, self.max_rows, size))
        for a, b in zip(starts, starts[1:] + [self.max_rows]):
            r0, r1 = bounds[a], (bounds[b] if b < len(bounds) else bounds[-1] + 1)
            tables, events, base, advance = [], [], 0, 0
            for part in self.parts:
                i0, i1 = np.searchsorted(part.rows, [r0, r1])
                if i1 == i0:
                    continue
                t, e, bad = part.build(int(i0), int(i1))
                self.rejects.extend(bad)
                if not part.counted:
                    advance += int(i1 - i0)
                tables.append(t)
                events.append(e.set_column(0, "report", pa.array(e["report"].to_numpy() + base)))
                base += t.num_rows
            t = pa.concat_tables([q.select(tables[0].column_names).cast(tables[0].schema) for q in tables])
            e = pa.concat_tables(events)
            if len(tables) > 1:  # interleave the routes by source row
                order = np.argsort(t["row"].to_numpy(), kind="stable")
                where = np.empty(len(order), np.int64)
                where[order] = np.arange(len(order))
                report = where[e["report"].to_numpy()]
                ev_order = np.argsort(report, kind="stable")  # stable: each report's history keeps its order
                t = t.take(pa.array(order))
                e = e.set_column(0, "report", pa.array(report)).take(pa.array(ev_order))
            self.needs_review += int(pc.sum(t["needs_review"]).as_py() or 0)
            offset, self.built = self.built, self.built + t.num_rows
            yield offset, t, e, advance


# ------------------------------------------------------------------ writing
CHUNK = 50_000  # rows per COPY message: bounded memory, and the encoding overlaps the server's work
FIRST_CHUNK = 5_000  # a small first window: the server starts storing sooner
REBUILD_MIN = 10_000  # smaller imports never take the exclusive lock


def write(reports: Reports, batch: Batch, rebuild_indexes: bool | None = None,
          progress: Callable[[int], None] | None = None) -> list[int]:
    """Insert a batch and its events in one transaction; returns the new ids, in batch order.

    On PostGIS this is a binary COPY. `rebuild_indexes` (None: when the batch has at least
    REBUILD_MIN rows and at least as many as the table) drops the indexes and constraints
    for the load and builds them again before commit, holding an exclusive lock on reports
    and report_events meanwhile. Ids are taken for every candidate up front; the ones rows
    rejected on the way leave gaps, as a rolled-back insert does. `progress` gets the
    source rows each window settles that were not counted while being prepared.
    """
    n = batch.max_rows
    if n == 0:
        return []
    db = reports.db
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            raw = conn.connection.driver_connection  # psycopg 3 connection, same transaction
            with raw.cursor() as cur:
                if rebuild_indexes is None:
                    rebuild_indexes = n >= REBUILD_MIN and n >= pg_bulk.estimated_rows(cur, "reports")
                ctx = pg_bulk.indexes_rebuilt(cur, ["reports", "report_events"]) if rebuild_indexes else nullcontext()
                with ctx:
                    ids = _new_ids(cur, "reports", n, locked=bool(rebuild_indexes))
                    # A window's reports, then its events: the server stores window k while
                    # a thread builds and encodes window k+1.
                    for data, ev, advance in _ahead(_pg_windows(batch, ids)):
                        pg_bulk.copy_encoded(cur, "reports", REPORT_COLS, [data])
                        names = EVENT_COLS
                        if rebuild_indexes:  # explicit ids: no nextval() per row
                            ev = [pa.array(_new_ids(cur, "report_events", len(ev[0]), locked=True), pa.int32()), *ev]
                            names = ["id", *EVENT_COLS]
                        pg_bulk.copy_columns(cur, "report_events", names, [ev])
                        if progress:
                            progress(advance)
            return ids[:batch.built].tolist()
        start = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM reports")).scalar_one() + 1
        cur = conn.connection.driver_connection.cursor()  # sqlite3, same transaction
        for a, t, e, advance in batch.chunks(CHUNK):
            ids = pa.array(np.arange(start + a, start + a + t.num_rows))
            cols = {"id": ids, "geom": _wkb_points(t["lon"].to_numpy(zero_copy_only=False),
                                                   t["lat"].to_numpy(zero_copy_only=False))}
            _insert_rows(cur, "reports", REPORT_COLS, [cols[c] if c in cols else t[c] for c in REPORT_COLS])
            ev = [pc.add(e["report"], start + a)] + [e[c] for c in EVENT_COLS[1:]]
            _insert_rows(cur, "report_events", EVENT_COLS, ev)
            if progress:
                progress(advance)
    return list(range(start, start + batch.built))


def _wkb_points(x: np.ndarray, y: np.ndarray) -> list:
    """WKB per point (None where x is NaN): how gis.store.types.Geom stores geometry on SQLite."""
    out = np.full(len(x), None, object)
    ok = ~np.isnan(x)
    out[ok] = shapely.to_wkb(shapely.points(x[ok], y[ok]))
    return out.tolist()


def _insert_rows(cur, table: str, names: list[str], columns: list) -> None:
    """executemany on SQLite with values stored as the ORM's types store them (see gis.store.types)."""
    values = []
    for c in columns:
        if isinstance(c, (pa.Array, pa.ChunkedArray)) and pa.types.is_timestamp(c.type):
            c = pc.strftime(c, format="%Y-%m-%d %H:%M:%S")  # UTC, with .ffffff: SQLAlchemy's SQLite format
        values.append(c.to_pylist() if isinstance(c, (pa.Array, pa.ChunkedArray)) else c)
    if values and len(values[0]):
        cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                        list(zip(*values)))


def _pg_windows(batch: Batch, ids: np.ndarray):
    """(reports as binary COPY data, event columns with report ids, progress advance) per window."""
    for a, t, e, advance in batch.chunks(CHUNK, FIRST_CHUNK):
        b = a + t.num_rows
        lon = t["lon"].to_numpy(zero_copy_only=False)
        lat = t["lat"].to_numpy(zero_copy_only=False)
        cols = {"id": pa.array(ids[a:b], pa.int32()), "geom": pg_bulk.ewkb_points(lon, lat, 4326)}
        data = pg_bulk.encode([cols[c] if c in cols else t[c].combine_chunks() for c in REPORT_COLS])
        events = [pa.array(ids[a + e["report"].to_numpy()], pa.int32()),
                  *(e[c].combine_chunks() for c in EVENT_COLS[1:])]
        yield data, events, advance


def _ahead(iterable):
    """The items of `iterable`, each next one computed in a thread while the caller uses the current one."""
    it = iter(iterable)
    end = object()
    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(next, it, end)
        while (item := nxt.result()) is not end:
            nxt = pool.submit(next, it, end)
            yield item


def _new_ids(cur, table: str, n: int, locked: bool) -> np.ndarray:
    if n == 0:
        return np.zeros(0, np.int64)
    seq = f"pg_get_serial_sequence('{table}', 'id')"
    if locked:  # nobody else can insert into the table now: take the whole range in one step
        cur.execute(f"SELECT setval({seq}, nextval({seq}) + %s - 1)", (n,))
        last = cur.fetchone()[0]
        return np.arange(last - n + 1, last + 1, dtype=np.int64)
    cur.execute(f"SELECT nextval({seq}) FROM generate_series(1, %s)", (n,))
    return np.array([r[0] for r in cur.fetchall()], np.int64)


# ------------------------------------------------------------------ importing
def plain_part(reports: Reports, plain: Plain, now: datetime, actor: str) -> Part:
    """Plain rows as a part: each window is located, checked and built when the writer asks for it."""
    def build(i0, i1):
        loc, bad = locate_plain(reports, plain.slice(i0, i1), now)
        table, events = build_plain(reports, loc, actor)
        return table, events, [(pos + 1, reason) for pos, reason in bad]

    return Part(plain.pos + 1, build, counted=False)


def _stored_keys(db, keys: pa.Array) -> pa.Array:
    """Which of `keys` are already stored (idempotency)."""
    if not len(keys):
        return pa.array([], pa.string())
    if db.dialect == "postgresql":
        # COPY the keys into a temporary table and join: no parameter, no round trip per key
        with db.engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute("CREATE TEMPORARY TABLE zc_import_keys (key text) ON COMMIT DROP")
            pg_bulk.copy_columns(cur, "zc_import_keys", ["key"], [[keys]])
            cur.execute("SELECT r.idempotency_key FROM zc_import_keys k JOIN reports r ON r.idempotency_key = k.key")
            return pa.array([r[0] for r in cur.fetchall()], pa.string())
    found: list[str] = []
    names = keys.to_pylist()
    with db.engine.connect() as conn:
        for i in range(0, len(names), 5000):
            found += conn.execute(select(Report.idempotency_key)
                                  .where(Report.idempotency_key.in_(names[i:i + 5000]))).scalars().all()
    return pa.array(found, pa.string())


def _import(reports: Reports, plain: Plain | None, intakes: list[Intake], rejects: list[tuple[int, str]],
            actor: str, progress, rebuild_indexes: bool | None, now: datetime | None = None,
            prefetched: Future | None = None) -> ImportResult:
    """Idempotency, then both routes (plain rows as columns, the rest row by row), then one write."""
    now = now or datetime.now(timezone.utc)
    res = ImportResult()
    # Idempotency keys, over both routes in source-row order: stored → skipped; repeated → later ones rejected.
    p_rows = (plain.pos + 1) if plain is not None else np.zeros(0, np.int64)
    rows = np.concatenate([p_rows, np.array([it.row for it in intakes], np.int64)])
    keys = pa.concat_arrays([plain.idempotency_key if plain is not None else pa.array([], pa.string()),
                             pa.array([it.data.idempotency_key for it in intakes], pa.string())])
    has = np.flatnonzero(keys.is_valid().to_numpy(zero_copy_only=False))
    order = has if np.all(np.diff(rows[has]) > 0) else has[np.argsort(rows[has], kind="stable")]
    enc = keys.take(pa.array(order)).dictionary_encode()
    codes, uniques = enc.indices.to_numpy(), enc.dictionary  # codes numbered in order of first appearance
    if prefetched is not None:  # (keys looked up, those stored): only keys it did not cover are left
        asked, stored = prefetched.result()
        # usually the very same keys in the same order (all rows plain): nothing to hash again
        rest = (uniques.slice(0, 0) if uniques.equals(asked)
                else pc.filter(uniques, pc.invert(pc.is_in(uniques, asked))))
        if len(rest):
            stored = pa.concat_arrays([stored, _stored_keys(reports.db, rest)])
    else:
        stored = _stored_keys(reports.db, uniques)
    first = np.ones(len(codes), bool)  # a code's first row: higher than every code before it
    first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    first_row = rows[order[first]]
    present = (pc.is_in(uniques, stored).to_numpy(zero_copy_only=False)[codes] if len(stored)
               else np.zeros(len(order), bool))
    repeat = ~present & ~first
    res.already_present = int(present.sum())
    drop = np.zeros(len(rows), bool)
    drop[order[present | repeat]] = True
    if repeat.any():
        names = uniques.to_pylist()
        for i, c in zip(order[repeat], codes[repeat]):
            rejects.append((int(rows[i]), f"idempotency_key {names[c]!r} repeats row {first_row[c]}"))
    if progress and drop.any():
        progress(int(drop.sum()))
    parts = []
    if plain is not None and len(plain.pos):
        parts.append(plain_part(reports, plain.subset(~drop[:len(p_rows)]), now, actor))
    todo = [it for it, d in zip(intakes, drop[len(p_rows):]) if not d]
    r_rows, r_events, bad = prepare(reports, todo, actor, now, progress)
    rejects.extend(bad)
    parts.append(rows_part(*batch_from_rows(r_rows, r_events)))
    batch = Batch(parts)
    res.ids = write(reports, batch, rebuild_indexes, progress)
    rejects.extend(batch.rejects)
    res.inserted = len(res.ids)
    res.needs_review = batch.needs_review
    res.rejected = len(rejects)
    return res


def import_intakes(reports: Reports, intakes: list[Intake], pre_rejects: list[tuple[int, str]] | None = None,
                   actor: str = "import", progress=None,
                   rebuild_indexes: bool | None = None) -> tuple[ImportResult, list[tuple[int, str]]]:
    """Import validated reports (row by row), all or nothing; returns (result, rejects[(row, reason)])."""
    rejects = list(pre_rejects or [])
    res = _import(reports, None, intakes, rejects, actor, progress, rebuild_indexes)
    return res, sorted(rejects)


COLUMNAR = True  # plain rows as columns; False sends every row through the per-row route (tests compare)


def import_file(reports: Reports, path: str | Path, rejects_path: str | Path | None = None, crs: str | None = None,
                actor: str = "import", progress=None, rebuild_indexes: bool | None = None,
                now: datetime | None = None) -> ImportResult:
    """Import a CSV / GeoJSON / GeoParquet of reports. Bad rows go to `rejects_path` with a reason.

    `now` stands in for rows without created_at (default: the time of the import).
    """
    path = Path(path)
    table, xs, ys, file_crs = read_table(path)
    with ThreadPoolExecutor(1) as pool:  # the database looks up the file's keys while the rows are checked
        res, rejects = _import_table(reports, table, xs, ys, file_crs, crs, actor, progress, rebuild_indexes, now,
                                     pool.submit(_prefetch_keys, reports.db, table))
    if rejects:
        rp = Path(rejects_path) if rejects_path else path.with_name(path.stem + ".rejects.csv")
        out = table.iloc[[r - 1 for r, _ in rejects]].copy()
        out.insert(0, "reason", [reason for _, reason in rejects])
        out.insert(0, "row", [r for r, _ in rejects])
        out.to_csv(rp, index=False)
        res.rejects_path = rp
    return res


def _prefetch_keys(db, table: pd.DataFrame) -> tuple[pa.Array, pa.Array]:
    """(the file's distinct idempotency keys as cleaned, those already stored)."""
    keys = text_column(table, "idempotency_key")  # None if not text: the per-row route reads those
    keys = pc.unique(keys).drop_null() if keys is not None else pa.array([], pa.string())
    return keys, _stored_keys(db, keys)


def _import_table(reports, table, xs, ys, file_crs, crs, actor, progress, rebuild_indexes, now, prefetched):
    if COLUMNAR:
        plain, doubtful = plain_rows(table, xs, ys, crs, file_crs)
    else:
        plain, doubtful = None, np.arange(len(table))
    intakes, pre = [], []
    for i, d in zip(doubtful.tolist(), parse_rows(table, xs, ys, crs, file_crs, doubtful)):
        if isinstance(d, str):
            pre.append((i + 1, d))
            continue
        try:
            intakes.append(Intake(i + 1, ReportIn.model_validate(d)))
        except ValidationError as exc:
            pre.append((i + 1, _reason(exc)))
    if progress and pre:
        progress(len(pre))
    rejects = list(pre)
    res = _import(reports, plain, intakes, rejects, actor, progress, rebuild_indexes, now, prefetched)
    return res, sorted(rejects)


def seed_demo(reports: Reports, n: int, seed: int = 0, now: datetime | None = None, progress=None) -> ImportResult:
    """Write n synthetic reports (gis.demo) with their status histories."""
    from zonechief.demo import generate_reports

    gen = generate_reports(n, seed=seed, now=now, index=reports.index, facilities=reports.facilities)
    intakes = []
    for i, d in enumerate(gen, start=1):
        data = ReportIn(source=d["source"], category=d["category"], description=d["description"],
                        location=Location(**d["location"]), reporter=d["reporter"], photo_url=d["photo_url"],
                        idempotency_key=d["idempotency_key"], created_at=d["created_at"])
        intakes.append(Intake(i, data, history=d["history"]))
    res, rejects = import_intakes(reports, intakes, actor="demo", progress=progress)
    return res
