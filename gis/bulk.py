"""Bulk intake: import report files and seed demo data, all-or-nothing.

Rows are validated and located first (coordinates vectorized through the zone
index); bad rows go to a rejects file with a reason each. The good rows are
written in ONE transaction (PostgreSQL COPY on PostGIS, executemany on SQLite),
so a crash leaves nothing half-imported.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import pandas as pd
import shapely
from pydantic import ValidationError
from sqlalchemy import insert, select, text

from .reports import Location, ReportError, ReportIn, Reports
from .store.models import TRANSITIONS, Report, ReportEvent

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


def rows_from_file(path: str | Path, crs: str | None = None) -> tuple[pd.DataFrame, list[dict | str]]:
    """Read a report file: returns (original table, per row a ReportIn-shaped dict or an error string)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".csv", ".txt"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        xs = ys = None
        file_crs = None
    else:
        import geopandas as gpd

        table = gpd.read_parquet(path) if ext in (".parquet", ".geoparquet") else gpd.read_file(path, engine="pyogrio")
        geom = table.geometry
        ok = geom.notna() & ~geom.is_empty & (geom.geom_type == "Point")
        xs = np.where(ok, geom.x.where(ok), np.nan)
        ys = np.where(ok, geom.y.where(ok), np.nan)
        file_crs = table.crs.to_string() if table.crs is not None else None
        table = pd.DataFrame(table.drop(columns=table.geometry.name))
    out: list[dict | str] = []
    # Column by column, not cell by cell: the same _clean results, several times faster.
    cols = list(table.columns)
    vals = [_clean_column(table.iloc[:, j]) for j in range(len(cols))]
    for i, rv in enumerate(zip(*vals) if vals else ({} for _ in range(len(table)))):
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
    return table, out


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
    from .crs import UnknownCRSError, normalize_crs

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
    pts: list[tuple[int, float, float]] = []
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
                zone = r.zone_id if r.status in ("inside", "boundary", "snapped") else None
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
        ck = (zone, created.date())
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
            "created_at": created, "updated_at": hist[-1]["at"], "source": d.source, "category": d.category,
            "description": d.description, "location_input": _as_received(d.location),
            "geom": None, "geocode_method": method,
            "geocode_confidence": float(conf), "needs_review": bool(review), "review_note": note, "zone_id": zone,
            "village_code": village, "chief_id": chief, "status": hist[-1]["status"],
            "reporter_name": d.reporter.name if d.reporter else None,
            "reporter_phone": d.reporter.phone if d.reporter else None, "photo_url": d.photo_url,
            "idempotency_key": d.idempotency_key,
        })
        events.append([{"status": h["status"], "at": h["at"], "actor": actor if j == 0 else "system", "note": None}
                       for j, h in enumerate(hist)])
        if lon is not None:
            pts.append((len(rows) - 1, lon, lat))
        if progress and k % 1000 == 0:
            progress(1000)
    if pts:  # one vectorized call instead of a shapely.Point per row
        at, xs, ys = zip(*pts)
        for j, g in zip(at, shapely.points(np.array(xs, dtype="f8"), np.array(ys, dtype="f8"))):
            rows[j]["geom"] = g
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


def write(reports: Reports, rows: list[dict], events: list[list[dict]]) -> list[int]:
    """Insert rows and their events in one transaction; returns the new ids."""
    if not rows:
        return []
    db = reports.db
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            ids = [r[0] for r in conn.execute(text("SELECT nextval(pg_get_serial_sequence('reports', 'id')) "
                                                   "FROM generate_series(1, :n)"), {"n": len(rows)})]
            raw = conn.connection.driver_connection  # psycopg 3 connection, same transaction
            with raw.cursor() as cur:
                with cur.copy(f"COPY reports ({', '.join(REPORT_COLS)}) FROM STDIN") as cp:
                    for i, r in zip(ids, rows):
                        cp.write_row([i, r["created_at"], r["updated_at"], r["source"], r["category"], r["description"],
                                      json.dumps(r["location_input"], ensure_ascii=False),
                                      None if r["geom"] is None else _ewkb(r["geom"]),
                                      r["geocode_method"], r["geocode_confidence"], r["needs_review"], r["review_note"],
                                      r["zone_id"], r["village_code"], r["chief_id"], r["status"], r["reporter_name"],
                                      r["reporter_phone"], r["photo_url"], r["idempotency_key"]])
                with cur.copy(f"COPY report_events ({', '.join(EVENT_COLS)}) FROM STDIN") as cp:
                    for i, evs in zip(ids, events):
                        for e in evs:
                            cp.write_row([i, e["status"], e["at"], e["actor"], e["note"]])
        else:
            start = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM reports")).scalar_one() + 1
            ids = list(range(start, start + len(rows)))
            conn.execute(insert(Report.__table__), [{"id": i, **r} for i, r in zip(ids, rows)])
            conn.execute(insert(ReportEvent.__table__),
                         [{"report_id": i, **e} for i, evs in zip(ids, events) for e in evs])
    return ids


def _ewkb(g) -> str:
    return shapely.to_wkb(shapely.set_srid(g, 4326), hex=True, include_srid=True)


def import_intakes(reports: Reports, intakes: list[Intake], pre_rejects: list[tuple[int, str]] | None = None,
                   actor: str = "import", progress=None) -> tuple[ImportResult, list[tuple[int, str]]]:
    now = datetime.now(timezone.utc)
    res = ImportResult()
    rejects = list(pre_rejects or [])
    # Idempotency keys: already stored → skipped; repeated within the input → later ones rejected.
    keys = [it.data.idempotency_key for it in intakes if it.data.idempotency_key]
    existing: set[str] = set()
    with reports.db.sessions() as s:
        for i in range(0, len(keys), 5000):
            existing |= set(s.scalars(select(Report.idempotency_key).where(Report.idempotency_key.in_(keys[i:i + 5000]))))
    seen: dict[str, int] = {}
    todo = []
    for it in intakes:
        k = it.data.idempotency_key
        if k and k in existing:
            res.already_present += 1
            continue
        if k and k in seen:
            rejects.append((it.row, f"idempotency_key {k!r} repeats row {seen[k]}"))
            continue
        if k:
            seen[k] = it.row
        todo.append(it)
    rows, events, bad = prepare(reports, todo, actor, now, progress)
    rejects.extend(bad)
    res.ids = write(reports, rows, events)
    res.inserted = len(res.ids)
    res.needs_review = sum(1 for r in rows if r["needs_review"])
    res.rejected = len(rejects)
    return res, sorted(rejects)


def import_file(reports: Reports, path: str | Path, rejects_path: str | Path | None = None, crs: str | None = None,
                actor: str = "import", progress=None) -> ImportResult:
    """Import a CSV / GeoJSON / GeoParquet of reports. Bad rows go to `rejects_path` with a reason."""
    path = Path(path)
    table, parsed = rows_from_file(path, crs)
    intakes, pre = [], []
    for i, d in enumerate(parsed, start=1):
        if isinstance(d, str):
            pre.append((i, d))
            continue
        try:
            intakes.append(Intake(i, ReportIn.model_validate(d)))
        except ValidationError as exc:
            pre.append((i, _reason(exc)))
    res, rejects = import_intakes(reports, intakes, pre, actor, progress)
    if rejects:
        rp = Path(rejects_path) if rejects_path else path.with_name(path.stem + ".rejects.csv")
        out = table.iloc[[r - 1 for r, _ in rejects]].copy()
        out.insert(0, "reason", [reason for _, reason in rejects])
        out.insert(0, "row", [r for r, _ in rejects])
        out.to_csv(rp, index=False)
        res.rejects_path = rp
    return res


def seed_demo(reports: Reports, n: int, seed: int = 0, now: datetime | None = None, progress=None) -> ImportResult:
    """Write n synthetic reports (gis.demo) with their status histories."""
    from .demo import generate_reports

    gen = generate_reports(n, seed=seed, now=now, index=reports.index, facilities=reports.facilities)
    intakes = []
    for i, d in enumerate(gen, start=1):
        data = ReportIn(source=d["source"], category=d["category"], description=d["description"],
                        location=Location(**d["location"]), reporter=d["reporter"], photo_url=d["photo_url"],
                        idempotency_key=d["idempotency_key"], created_at=d["created_at"])
        intakes.append(Intake(i, data, history=d["history"]))
    res, rejects = import_intakes(reports, intakes, actor="demo", progress=progress)
    res.rejected = len(rejects)
    return res
