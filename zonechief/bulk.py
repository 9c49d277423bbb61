"""Bulk intake: import report files and seed demo data, all-or-nothing.

Rows take one of two routes. *Plain* rows (coordinates, unambiguous values; see
zonechief.bulk_columns) are checked, located and assigned a column at a time; every other
row goes through pydantic's ReportIn and `prepare`, one by one, which also gives the
reasons for rejects. Both routes end in zonechief.intake, so they store the same thing
for the same row. Bad rows go to a rejects file with a reason each. The good rows are
written in ONE transaction (binary COPY on PostGIS, executemany on SQLite), so a crash
leaves nothing half-imported. A load that at least doubles the table rebuilds the indexes instead
of growing them row by row (store.bulk_write).
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from zonechief.bulk_columns import Plain, build_plain, locate_plain, plain_rows, text_column
from zonechief.intake import TS, Intaken, Located, Placed, intake, locate_points
from zonechief.reports import Location, ReportError, ReportIn, Reports
from zonechief.workflow import history_problem, zoneless


@dataclass
class Intake:
    """A validated report for the per-row route, with its source row (and, for demo data, its history)."""

    row: int  # 1-based row number in the source, for rejects
    data: ReportIn
    history: list[dict] | None = None  # [{"status", "at"}]; default new(+assigned) at created_at


@dataclass
class ImportResult:
    """What an import did: counts, the new ids, and where the rejects went."""

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
def write(reports: Reports, batch: Batch, rebuild_indexes: bool | None = None,
          progress: Callable[[int], None] | None = None) -> list[int]:
    """Insert a batch and its events in one transaction; returns the new ids, in batch order.

    store.bulk_write does it: binary COPY on PostGIS, where `rebuild_indexes` (None: for a
    load that at least doubles the table) drops and rebuilds the indexes under an exclusive
    lock; executemany on SQLite. `progress` gets the source rows each window settles that
    were not counted while being prepared.
    """
    return reports.db.bulk_writer.write(batch, rebuild_indexes, progress)


# ------------------------------------------------------------------ importing
def plain_part(reports: Reports, plain: Plain, now: datetime, actor: str) -> Part:
    """Plain rows as a part: each window is located, checked and built when the writer asks for it."""
    def build(i0, i1):
        loc, bad = locate_plain(reports.index, reports.category_codes, plain.slice(i0, i1), now)
        table, events = build_plain(reports.index.roster, loc, actor)
        return table, events, [(pos + 1, reason) for pos, reason in bad]

    return Part(plain.pos + 1, build, counted=False)


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
            stored = pa.concat_arrays([stored, reports.db.bulk_writer.stored_keys(rest)])
    else:
        stored = reports.db.bulk_writer.stored_keys(uniques)
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
    table, events, bad = prepare(reports, todo, actor, now, progress)
    rejects.extend(bad)
    parts.append(rows_part(table, events))
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


def import_file(reports: Reports, path: str | Path, rejects_path: str | Path | None = None, crs: str | None = None,
                actor: str = "import", progress=None, rebuild_indexes: bool | None = None,
                now: datetime | None = None, columnar: bool = True) -> ImportResult:
    """Import a CSV / GeoJSON / GeoParquet of reports. Bad rows go to `rejects_path` with a reason.

    `now` stands in for rows without created_at (default: the time of the import). `columnar`
    False sends every row through the per-row route (tests and benchmarks compare the two).
    """
    path = Path(path)
    table, xs, ys, file_crs = read_table(path)
    with ThreadPoolExecutor(1) as pool:  # the database looks up the file's keys while the rows are checked
        res, rejects = _import_table(reports, table, xs, ys, file_crs, crs, actor, progress, rebuild_indexes, now,
                                     pool.submit(_prefetch_keys, reports.db, table), columnar)
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
    return keys, db.bulk_writer.stored_keys(keys)


def _import_table(reports, table, xs, ys, file_crs, crs, actor, progress, rebuild_indexes, now, prefetched,
                  columnar):
    if columnar:
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
    """Write n synthetic reports (zonechief.demo) with their status histories."""
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
