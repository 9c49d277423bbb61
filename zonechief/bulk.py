"""Bulk intake: import report files and seed demo data, all-or-nothing.

Rows take one of two routes. *Plain* rows (coordinates, unambiguous values; see
zonechief.bulk_columns) are checked, located and assigned a column at a time; every other
row goes through pydantic's ReportIn and `prepare`, one by one, which also gives the
reasons for rejects. Both routes end in zonechief.intake, so they store the same thing
for the same row. Bad rows go to a rejects file with a reason each. The good rows are
written in ONE transaction (binary COPY on PostGIS, executemany on SQLite), so a crash
leaves nothing half-imported. A load that at least doubles the table rebuilds the indexes instead
of growing them row by row (store.bulk_write).

A file is read twice, a window of rows at a time (zonechief.bulk_files), so that memory does
not grow with its length: once for its idempotency keys alone (zonechief.bulk_keys), then
window by window as the writer asks for them (FileBatch): read, split into routes, checked,
located, built, written, its rejects appended to the rejects file.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, repeat
from pathlib import Path
from typing import Callable, Iterator, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from store.bulk_write import CHUNK
from zonechief.bulk_columns import Plain, build_plain, clean, locate_plain, plain_rows, text_column
from zonechief.bulk_files import ArrowUnreadable, RejectsFile, ReportFile
from zonechief.bulk_files import read_table as read_table  # the whole file at once (tests, small files)
from zonechief.bulk_keys import KEY, KeyBook
from zonechief.intake import TS, Intaken, Located, Placed, intake, locate_points
from zonechief.reports import Location, ReportError, ReportIn, Reports
from zonechief.workflow import history_problem, zoneless

KEY_WINDOW = 100_000  # rows per window of the keys' pass over a file: one database lookup each


@dataclass
class Intake:
    """A validated report for the per-row route, with its source row (and, for demo data, its history)."""

    row: int  # 1-based row number in the source, for rejects
    data: ReportIn
    history: list[dict] | None = None  # [{"status", "at"}]; default new(+assigned) at created_at
    feedback: dict | None = None  # the citizen's answer {"satisfaction", "rating", "comment", "at"} (demo data)


@dataclass
class ImportResult:
    """What an import did: counts, the new ids, and where the rejects went."""

    inserted: int = 0
    already_present: int = 0
    rejected: int = 0
    needs_review: int = 0
    rejects_path: Path | None = None
    ids: Sequence[int] = field(default_factory=list)  # store.bulk_write.Ids: runs of consecutive ids

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
                loc.update(lon=float(r.get("lon")), lat=float(r.get("lat")))  # type: ignore[arg-type]
            except (TypeError, ValueError):  # one of them missing, or not a number
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


# ------------------------------------------------------------------ the per-row route
def prepare(reports: Reports, intakes: list[Intake], actor: str, now: datetime,
            progress: Callable[[int], None] | None = None) -> tuple[pa.Table, pa.Table, list[tuple[int, str]]]:
    """Locate and assign every intake, row by row where it must (geocoding), the rest as columns.

    Returns (reports, their events (column "report": position in reports), rejects[(row, reason)]).
    """
    rejects: list[tuple[int, str]] = []
    # Coordinates: one assign() per CRS, as on the column route.
    coord = [k for k, it in enumerate(intakes) if it.data.location.lon is not None]
    by_coords, why = locate_points(reports.index, np.array([intakes[k].data.location.lon for k in coord], "f8"),
                                   np.array([intakes[k].data.location.lat for k in coord], "f8"),
                                   pa.array([intakes[k].data.location.crs for k in coord], pa.string()))
    why = why.to_pylist()
    at_coord = dict(zip(coord, range(len(coord))))
    kept: list[Intake] = []
    take: list[int] = []  # per kept intake: its row in by_coords, or len(by_coords) + its place in geocoded
    how: list[tuple[str, float]] = []  # per kept intake: geocode method and confidence
    geocoded: list[Located] = []
    by_address: dict[str, Located] = {}
    ticked = 0
    for k, it in enumerate(intakes):
        if progress and k - ticked == 1000:
            progress(1000)
            ticked = k
        j = at_coord.get(k)
        if j is not None and why[j] is not None:
            rejects.append((it.row, why[j]))
            continue
        d = it.data
        if d.category not in reports.category_codes:
            rejects.append((it.row, f"unknown category {d.category!r}"))
            continue
        if j is None:  # service code or address: geocoded one by one
            key = d.location.address
            loc = by_address.get(key) if key is not None else None
            if loc is None:
                try:
                    loc = reports.locate(d.location)
                except ReportError as exc:
                    rejects.append((it.row, str(exc)))
                    continue
                if key is not None:
                    by_address[key] = loc
            j = len(coord) + len(geocoded)
            geocoded.append(loc)
            how.append((loc.method, loc.confidence))
        else:
            how.append(("coordinates", 1.0))
        kept.append(it)
        take.append(j)
    if progress and len(intakes) > ticked:
        progress(len(intakes) - ticked)

    placed = Placed.concat([by_coords, Placed.of(geocoded)]) if geocoded else by_coords
    placed = placed.take(np.array(take, np.int64))
    data = [it.data for it in kept]
    created = [d.created_at or now for d in data]
    got = intake(placed, pa.array(created, TS), reports.index.roster, actor)
    status, updated, events, ok = _given_histories(kept, got, placed.in_zone, created, actor, rejects)
    # An answer needs a resolution, so a report without a zone (never assigned) keeps none.
    fb = [it.feedback if it.feedback and z else {} for it, z in zip(kept, placed.in_zone)]
    rated_at = pa.array([f.get("at") for f in fb], TS)
    table = pa.table({
        "row": pa.array([it.row for it in kept], pa.int64()),
        "created_at": pa.array(created, TS), "updated_at": pa.array(updated, TS),
        "source": pa.array([d.source for d in data], pa.string()),
        "category": pa.array([d.category for d in data], pa.string()),
        "description": pa.array([d.description for d in data], pa.string()),
        "location_input": pa.array([json.dumps(_as_received(d.location), ensure_ascii=False) for d in data],
                                   pa.string()),
        "lon": placed.lon, "lat": placed.lat,
        "geocode_method": pa.array([m for m, _ in how], pa.string()),
        "geocode_confidence": pa.array([c for _, c in how], pa.float64()),
        "needs_review": got.needs_review, "review_note": got.review_note, "zone_id": got.zone_id,
        "village_code": got.village_code, "chief_id": got.chief_id, "status": pa.array(status, pa.string()),
        "reporter_name": pa.array([d.reporter.name if d.reporter else None for d in data], pa.string()),
        "reporter_phone": pa.array([d.reporter.phone if d.reporter else None for d in data], pa.string()),
        "photo_url": pa.array([d.photo_url for d in data], pa.string()),
        "idempotency_key": pa.array([d.idempotency_key for d in data], pa.string()),
        "satisfaction": pa.array([f.get("satisfaction") for f in fb], pa.string()),
        "rating": pa.array([f.get("rating") for f in fb], pa.int32()),
        "rating_comment": pa.array([f.get("comment") for f in fb], pa.string()),
        "rated_at": rated_at, "first_rated_at": rated_at,
    })
    if not ok.all():  # given histories that cannot be: drop those reports and their events
        report = events["report"].to_numpy()
        keep = ok[report]
        events = events.filter(pa.array(keep)).set_column(0, "report", pa.array((np.cumsum(ok) - 1)[report[keep]]))
        table = table.filter(pa.array(ok))
    return table, events, rejects


def _given_histories(kept: list[Intake], got: Intaken, in_zone: np.ndarray, created: list, actor: str,
                     rejects: list) -> tuple[list, list, pa.Table, np.ndarray]:
    """Status, updated_at and events of each report, where an intake gives its own history (zonechief.demo).

    Returns (status, updated_at, events, ok: the history is possible); rejects get the others.
    """
    status, updated = cast(pa.Array, got.status).to_pylist(), list(created)
    events = cast(pa.Table, got.events)
    ok = np.ones(len(kept), bool)
    given = [i for i, it in enumerate(kept) if it.history]
    if not given:
        return status, updated, events, ok
    ev: list[tuple] = []
    for i in given:
        hist = kept[i].history or []
        hist = hist if in_zone[i] else zoneless(hist)
        err = history_problem(hist)
        if err:
            rejects.append((kept[i].row, err))
            ok[i] = False
            continue
        status[i], updated[i] = hist[-1]["status"], hist[-1]["at"]
        ev += [(i, h["status"], h["at"], actor if j == 0 else "system") for j, h in enumerate(hist)]
    mine = np.zeros(len(kept), bool)
    mine[given] = True
    events = events.filter(pa.array(~mine[events["report"].to_numpy()]))
    report, st, at, who = zip(*ev) if ev else ((), (), (), ())
    events = pa.concat_tables([events, pa.table({
        "report": pa.array(report, pa.int64()), "status": pa.array(st, pa.string()), "at": pa.array(at, TS),
        "actor": pa.array(who, pa.string()), "note": pa.nulls(len(ev), pa.string())})])
    order = np.argsort(events["report"].to_numpy(), kind="stable")  # stable: each history keeps its order
    return status, updated, events.take(pa.array(order)), ok


def _as_received(loc: Location) -> dict:
    # Location.as_received() (a model_dump) for the common coordinate case, built directly.
    if loc.lon is not None and loc.lat is not None and loc.service_code is None and loc.address is None:
        return {"lon": loc.lon, "lat": loc.lat, "crs": loc.crs}
    return loc.as_received()


# ------------------------------------------------------------------ batches: reports and events as columns
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
        self.generation: int | None = None  # the boundary generation they are assigned under (set by write)

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
            t = pa.concat_tables(_conform(tables))
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


def _conform(tables: list[pa.Table]) -> list[pa.Table]:
    """The tables on the first one's schema, plus the columns only some carry (the answers): null elsewhere."""
    fields = list(tables[0].schema)
    for q in tables[1:]:
        fields += [f for f in q.schema if f.name not in {g.name for g in fields}]
    schema = pa.schema(fields)
    out = []
    for q in tables:
        for f in schema:
            if f.name not in q.column_names:
                q = q.append_column(f, pa.nulls(q.num_rows, f.type))
        out.append(q.select(schema.names).cast(schema))
    return out


# ------------------------------------------------------------------ writing
def write(reports: Reports, batch: "Batch | FileBatch", rebuild_indexes: bool | None = None,
          progress: Callable[[int], None] | None = None) -> Sequence[int]:
    """Insert a batch and its events in one transaction; returns the new ids, in batch order.

    store.bulk_write does it: binary COPY on PostGIS, where `rebuild_indexes` (None: for a
    load that at least doubles the table) drops and rebuilds the indexes under an exclusive
    lock; executemany on SQLite. `progress` gets the source rows each window settles that
    were not counted while being prepared.
    """
    batch.generation = reports.index.generation
    return reports.db.bulk_writer.write(batch, rebuild_indexes, progress)


# ------------------------------------------------------------------ importing
def plain_part(reports: Reports, plain: Plain, now: datetime, actor: str) -> Part:
    """Plain rows as a part: each window is located, checked and built when the writer asks for it."""
    def build(i0, i1):
        loc, bad = locate_plain(reports.index, reports.category_codes, plain.slice(i0, i1), now)
        table, events = build_plain(reports.index.roster, loc, actor)
        return table, events, [(pos + 1, reason) for pos, reason in bad]

    return Part(plain.pos + 1, build, counted=False)


def _settle_keys(book: KeyBook, plain: Plain | None, intakes: list[Intake], positions: np.ndarray,
                 rejects: list[tuple[int, str]]) -> tuple[np.ndarray, int]:
    """Which of the plain rows, then the intakes, to drop (key stored already, or repeating an earlier row's),
    and how many of them were stored; the repeats' rejects go to `rejects`."""
    p_pos = plain.pos if plain is not None else np.zeros(0, np.int64)
    pos = np.concatenate([p_pos, positions]).astype(np.int64)
    rows = np.concatenate([p_pos + 1, np.array([it.row for it in intakes], np.int64)])
    keys = pa.concat_arrays([plain.idempotency_key if plain is not None else pa.array([], pa.string()),
                             pa.array([it.data.idempotency_key for it in intakes], pa.string())])
    order = np.argsort(rows, kind="stable") if np.any(np.diff(rows) < 0) else np.arange(len(rows))
    present, again, bad = book.settle(pos[order], rows[order], keys.take(pa.array(order)))
    rejects.extend(bad)
    drop = np.zeros(len(rows), bool)
    drop[order[present | again]] = True
    return drop, int(present.sum())


def _parts(reports: Reports, book: KeyBook, plain: Plain | None, intakes: list[Intake], positions: np.ndarray,
           rejects: list[tuple[int, str]], actor: str, now: datetime, progress) -> tuple[list[Part], int]:
    """Idempotency, then both routes (plain rows as columns, the rest row by row): (parts, rows stored already).

    The last part is always the per-row route's, even when empty.
    """
    drop, present = _settle_keys(book, plain, intakes, positions, rejects)
    if progress and drop.any():
        progress(int(drop.sum()))
    n_plain = len(plain.pos) if plain is not None else 0
    parts = [plain_part(reports, plain.subset(~drop[:n_plain]), now, actor)] if plain is not None and n_plain else []
    todo = [it for it, d in zip(intakes, drop[n_plain:]) if not d]
    table, events, bad = prepare(reports, todo, actor, now, progress)
    rejects.extend(bad)
    parts.append(rows_part(table, events))
    return parts, present


def import_intakes(reports: Reports, intakes: list[Intake], pre_rejects: list[tuple[int, str]] | None = None,
                   actor: str = "import", progress=None,
                   rebuild_indexes: bool | None = None) -> tuple[ImportResult, list[tuple[int, str]]]:
    """Import validated reports (row by row), all or nothing; returns (result, rejects[(row, reason)])."""
    rejects = list(pre_rejects or [])
    keys = pa.array([it.data.idempotency_key for it in intakes], pa.string())
    book = KeyBook.scan([(0, keys)], reports.db.bulk_writer.stored_keys)  # positions: places in `intakes`
    parts, present = _parts(reports, book, None, intakes, np.arange(len(intakes)), rejects, actor,
                            datetime.now(timezone.utc), progress)
    batch = Batch(parts)
    ids = write(reports, batch, rebuild_indexes, progress)
    rejects.extend(batch.rejects)
    res = ImportResult(inserted=len(ids), already_present=present, rejected=len(rejects),
                       needs_review=batch.needs_review, ids=ids)
    return res, sorted(rejects)


def import_file(reports: Reports, path: str | Path, rejects_path: str | Path | None = None, crs: str | None = None,
                actor: str = "import", progress=None, rebuild_indexes: bool | None = None,
                now: datetime | None = None, columnar: bool = True) -> ImportResult:
    """Import a CSV / GeoJSON / GeoParquet of reports. Bad rows go to `rejects_path` with a reason.

    `now` stands in for rows without created_at (default: the time of the import). `columnar`
    False sends every row through the per-row route (tests and benchmarks compare the two).
    """
    path = Path(path)
    file = ReportFile(path)
    try:
        book = KeyBook.scan(_key_windows(file), reports.db.bulk_writer.stored_keys)
    except ArrowUnreadable:  # Arrow failed part way: pandas' parser reads the file, both times
        file.use_pandas()
        book = KeyBook.scan(_key_windows(file), reports.db.bulk_writer.stored_keys)
    out = Path(rejects_path) if rejects_path else path.with_name(path.stem + ".rejects.csv")
    with RejectsFile(out) as rejects:
        batch = FileBatch(reports, file, book, rejects, crs, actor, now or datetime.now(timezone.utc), columnar)
        ids = write(reports, batch, rebuild_indexes, progress)
        batch.drain(progress)
    return ImportResult(inserted=len(ids), already_present=batch.already_present, rejected=rejects.count,
                        needs_review=batch.needs_review, rejects_path=out if rejects.count else None, ids=ids)


def _key_windows(file: ReportFile) -> Iterator[tuple[int, pa.Array]]:
    """(first row's position, the window's keys as the routes clean them) per window of the file."""
    for start, table, _, _ in file.windows(repeat(KEY_WINDOW), arrow=True):
        if isinstance(table, pa.Table):  # CSV through Arrow: text, as text_column would find it
            yield start, (clean(table[KEY].combine_chunks()) if KEY in table.column_names
                          else pa.nulls(table.num_rows, pa.string()))
            continue
        keys = text_column(table, KEY)
        if keys is None:  # not all text: the per-row route reads them; only text can be a key (ReportIn)
            keys = clean(pa.array([c if isinstance(c := _clean(v), str) else None for v in table[KEY]], pa.string()))
        yield start, keys


class FileBatch:
    """A file's reports in source-row order, read, checked and built a window of rows at a time (see Batch).

    Each window of source rows is read, split into the two routes, settled for keys, located and
    built when the writer asks for it (store.bulk_write), and its rejects are appended to the
    rejects file; nothing of it is kept after. `advance` is every source row of the window.
    """

    def __init__(self, reports: Reports, file: ReportFile, book: KeyBook, rejects: RejectsFile, crs: str | None,
                 actor: str, now: datetime, columnar: bool):
        self.reports, self.file, self.book, self.rejects = reports, file, book, rejects
        self.crs, self.actor, self.now, self.columnar = crs, actor, now, columnar
        self.max_rows = book.rows - len(book.stored)  # at most: a row whose key is stored is never new
        self.built = self.needs_review = self.already_present = 0
        self.generation: int | None = None  # the boundary generation they are assigned under (set by write)
        self._asked = False

    def chunks(self, size: int, first: int | None = None):
        """(offset, reports, events, advance) per window of `size` source rows (the first: `first`), as Batch.chunks."""
        self._asked = True
        for start, table, xs, ys in self.file.windows(chain([first], repeat(size)) if first else repeat(size)):
            t, e = self._window(start, table, xs, ys)
            offset, self.built = self.built, self.built + t.num_rows
            yield offset, t, e, len(table)

    def drain(self, progress) -> None:
        """Settle the rejects of a file the writer read nothing of (it does not when no row can be new)."""
        if self._asked:
            return
        for _, t, _, advance in self.chunks(CHUNK):
            if t.num_rows:
                raise RuntimeError("a report that could be new was not written")
            if progress:
                progress(advance)

    def _window(self, start: int, table: pd.DataFrame, xs, ys) -> tuple[pa.Table, pa.Table]:
        rejects: list[tuple[int, str]] = []
        if self.columnar:
            plain, doubtful = plain_rows(table, xs, ys, self.crs, self.file.file_crs)
            plain.pos = plain.pos + start
        else:
            plain, doubtful = None, np.arange(len(table))
        intakes = []
        for i, d in zip(doubtful.tolist(), parse_rows(table, xs, ys, self.crs, self.file.file_crs, doubtful)):
            row = start + i + 1
            if isinstance(d, str):
                rejects.append((row, d))
                continue
            try:
                intakes.append(Intake(row, ReportIn.model_validate(d)))
            except ValidationError as exc:
                rejects.append((row, _reason(exc)))
        positions = np.array([it.row - 1 for it in intakes], np.int64)
        parts, present = _parts(self.reports, self.book, plain, intakes, positions, rejects, self.actor, self.now,
                                None)
        self.already_present += present
        inner = Batch(parts)
        got = list(inner.chunks(max(inner.max_rows, 1)))  # the whole window at once, both routes interleaved
        rejects.extend(inner.rejects)
        self.needs_review += inner.needs_review
        self.rejects.add(table, start, sorted(rejects))
        if got:
            return got[0][1], got[0][2]
        t, e, _ = parts[-1].build(0, 0)  # nothing new here: an empty window, so progress still hears of its rows
        return t, e


def seed_demo(reports: Reports, n: int, seed: int = 0, now: datetime | None = None, progress=None) -> ImportResult:
    """Write n synthetic reports (zonechief.demo) with their status histories."""
    from zonechief.demo import generate_reports

    gen = generate_reports(n, seed=seed, now=now, index=reports.index, facilities=reports.facilities)
    intakes = []
    for i, d in enumerate(gen, start=1):
        data = ReportIn(source=d["source"], category=d["category"], description=d["description"],
                        location=Location(**d["location"]), reporter=d["reporter"], photo_url=d["photo_url"],
                        idempotency_key=d["idempotency_key"], created_at=d["created_at"])
        intakes.append(Intake(i, data, history=d["history"], feedback=d["feedback"]))
    res, rejects = import_intakes(reports, intakes, actor="demo", progress=progress)
    return res
