"""Replace reference data — boundaries, roster, facilities — transactionally, with an audit trail.

Each import is validated completely first (against the other reference data in
force, or imported with it), then written in ONE transaction together with its
audit_log entry. A failed import (invalid file, overlap, unknown zone ids, a
database error half-way) changes nothing. The caller swaps its in-memory index
only with the objects returned here, i.e. after the commit; other processes on the
same PostgreSQL hear of the commit (store.notify) and reload it with `load_from_db`.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import delete, select
from sqlalchemy.exc import DataError, IntegrityError

from gis.boundaries import METRIC, BoundaryError, load_and_validate, validate
from gis.boundary_diff import BoundaryDiff, diff_units
from gis.crs import normalize_crs
from gis.errors import ZonechiefError
from gis.lookup import ZoneIndex, normalize_units
from gis.official_layers import coverage_gaps, describe_mapping, format_problems, prepare_official
from gis.roster import REQUIRED as ROSTER_COLUMNS
from gis.roster import Roster, RosterError
from gis.shipped import OVERLAP_TOLERANCE_M2
from store import audit, notify
from store.db import Database, _insert, facility_rows, roster_rows, village_rows, zone_rows
from store.generations import GenerationRepository
from store.models import Facility, RosterEntry, Village, Zone
from zonechief import generations

KINDS = ("boundaries", "roster", "facilities")
MAX_LISTED = 100  # ids listed per change kind in an audit summary; counts are always complete
# Column widths of the reference tables (store/models.py): checked up front for a clear message.
ID_LEN, NAME_LEN, PHONE_LEN = 32, 100, 40
COVERAGE_MARGIN_M = 50.0  # new boundaries must cover the old towns except this close to their outline


class ImportRejected(ZonechiefError, ValueError):
    """The import was refused and nothing changed; the message says why."""


@dataclass
class ImportOutcome:
    """What an import did (or, on a dry run, would do): kinds, a summary per kind, audit ids, and the data to put in force."""

    kinds: list[str]
    summary: dict  # per kind
    dry_run: bool
    audit_ids: list[int] = field(default_factory=list)
    index: ZoneIndex | None = None  # the index to put in force (after commit)
    facilities: gpd.GeoDataFrame | None = None
    diff: BoundaryDiff | None = None  # boundaries: what moved, against the boundaries in force

    @property
    def version(self) -> int | None:
        """The reference version this import committed (its last audit id); None for a dry run."""
        return max(self.audit_ids) if self.audit_ids else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listed(ids) -> list:
    return sorted(ids)[:MAX_LISTED]


def _too_long(values, limit: int) -> list[str]:
    return sorted({str(v) for v in values if v is not None and len(str(v)) > limit})[:5]


# ------------------------------------------------------------------ validation
def is_official(path, layer: str | None = None) -> bool:
    """Whether a layer lacks this project's own columns (code and zone_id): then it is read as an official
    layer (gis.official_layers: 三调-style fields guessed, GBK .dbf, codes checked, zones kept by code)."""
    try:
        info = pyogrio.read_info(path, layer=layer)
    except Exception:  # not readable here: the reader says why
        return False
    cols = {c.lower() for c in info["fields"]}
    empty = info.get("features") == 0  # nothing to guess from: the plain reader says "no features"
    return not empty and not ({"code", "village_code", "unit_id"} & cols and "zone_id" in cols)


def read_boundaries(path, roster: Roster | None, *, id_field: str | None = None, zone_field: str = "zone_id",
                    layer: str | None = None, crs: str | None = None, allow_repairs: bool = False,
                    snap_tolerance_m: float | None = None, overlap_tolerance_m2: float = OVERLAP_TOLERANCE_M2,
                    official: dict | None = None, current: ZoneIndex | None = None) -> tuple[ZoneIndex, list[str]]:
    """A new index from a boundary file, or ImportRejected. Returns (index, repair notes).

    `official`: read it as an official layer (is_official), with options columns (code, name, zone, town:
    which column is which; else guessed), zones (a CSV code,zone_id[,zone_name] for codes `current`, the
    boundaries in force, does not zone) and encoding; its notes (what was guessed) come back with the repairs.
    """
    tol = overlap_tolerance_m2
    notes: list[str] = []
    try:
        if official is not None:
            try:
                gdf, notes = _read_official(path, layer, crs, official, current, tol)
            except BoundaryError as exc:
                raise BoundaryError(f"boundaries rejected, nothing was written: {exc}") from exc
            id_field, zone_field = "code", "zone_id"
            gdf, report = validate(gdf, id_field="code", tolerance_m2=tol, source=str(path))
        else:
            gdf, report = load_and_validate(path, id_field=id_field, tolerance_m2=tol, layer=layer, crs=crs)
    except BoundaryError as exc:
        raise ImportRejected(str(exc)) from exc
    if report.problems:
        raise ImportRejected(f"boundaries rejected:\n{report}")
    repairs = [str(i) for i in report.issues if i.kind == "repaired"]
    if repairs and not allow_repairs:
        raise ImportRejected("boundaries rejected: invalid polygons (fix them at the source, or allow repairs "
                             "explicitly):\n" + "\n".join(f"  - {r}" for r in repairs[:20]))
    gdf = gdf[gdf.geometry.notna()]
    try:
        units = normalize_units(gdf, id_field=id_field, zone_field=zone_field)
    except BoundaryError as exc:
        raise ImportRejected(str(exc)) from exc
    long_ids = _too_long(units["unit_id"], ID_LEN) + _too_long(units["zone_id"], ID_LEN)
    if long_ids:
        raise ImportRejected(f"ids longer than {ID_LEN} characters: {', '.join(long_ids)}")
    return ZoneIndex(units, roster, snap_tolerance_m, overlap_tolerance_m2), notes + repairs


def _read_official(path, layer, crs, options: dict, current: ZoneIndex | None, tol: float):
    """An official layer in the project's columns, or ImportRejected listing every problem at once."""
    out = prepare_official(path, current.units if current is not None else None, layer=layer, crs=crs,
                           encoding=options.get("encoding"), zone_map=options.get("zones"), tolerance_m2=tol,
                           columns={k: v for k, v in (options.get("columns") or {}).items() if v},
                           old=gpd.GeoDataFrame(geometry=[], crs=4326))  # coverage: import_reference checks it
    if not out.ok:
        raise ImportRejected(f"boundaries rejected ({len(out.problems)} problem(s)); nothing was written:\n"
                             + format_problems(out.problems) + "\ncolumns read:\n" + describe_mapping(out.mapping))
    return out.frame, [f"official layer: {n}" for n in out.notes] + ["columns read:\n" + describe_mapping(out.mapping)]


def uncovered(old: ZoneIndex, new: ZoneIndex, tol: float) -> list[str]:
    """Parts of the old towns the new boundaries leave uncovered, beyond COVERAGE_MARGIN_M of the old outline
    (town outlines differ by tens of metres between sources) and above `tol` m²; as readable lines."""
    units = old.units.to_crs(METRIC)
    towns = units.dissolve(by=units["town"].fillna("?").to_numpy()).buffer(-COVERAGE_MARGIN_M)
    old_towns = gpd.GeoDataFrame({"town": towns.index}, geometry=towns.values, crs=METRIC)
    return [str(p) for p in coverage_gaps(old_towns, new.units, tol)]


def read_roster(path) -> Roster:
    """A roster from a CSV file, checked for empty ids, field lengths, date order and duplicate rows; or ImportRejected."""
    try:
        t = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        roster = Roster(t)
    except RosterError as exc:
        raise ImportRejected(f"roster rejected: {exc}") from exc
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # pandas' own messages (bad dates, bad CSV) are specific enough; keep them.
        raise ImportRejected(f"roster rejected: not a readable roster CSV ({exc})") from exc
    t = roster.table
    problems = []
    for col, limit in (("person_id", ID_LEN), ("zone_id", ID_LEN), ("name", NAME_LEN), ("phone", PHONE_LEN)):
        if col in ("person_id", "zone_id", "name") and (t[col].str.strip() == "").any():
            problems.append(f"empty {col} in row(s) {', '.join(str(i + 2) for i in np.flatnonzero(t[col].str.strip() == '')[:10])}")
        long_ = _too_long(t[col], limit)
        if long_:
            problems.append(f"{col} longer than {limit} characters: {', '.join(long_)}")
    backwards = t[t.effective_to.notna() & (t.effective_to <= t.effective_from)]
    if len(backwards):
        problems.append(f"effective_to is not after effective_from for {', '.join(backwards.person_id.head(10))}")
    dup = t.duplicated(["person_id", "role", "zone_id", "effective_from"], keep=False)
    if dup.any():
        problems.append(f"duplicate rows for {', '.join(sorted(set(t.person_id[dup]))[:10])}")
    if problems:
        raise ImportRejected("roster rejected: " + "; ".join(problems))
    return roster


def read_facilities(path) -> gpd.GeoDataFrame:
    """A facilities layer in WGS-84 with text ids, checked (points, ids, service codes, lengths); or ImportRejected."""
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises many types; the admin needs the reason
        raise ImportRejected(f"facilities rejected: cannot read as a vector layer ({exc})") from exc
    missing = [c for c in ("facility_id", "kind", "service_code", "zone_id") if c not in gdf.columns]
    if missing:
        raise ImportRejected(f"facilities rejected: missing columns {missing}")
    if gdf.crs is None:
        raise ImportRejected("facilities rejected: the file has no CRS")
    if len(gdf) == 0:
        raise ImportRejected("facilities rejected: the file has no features")
    normalize_crs(gdf.crs)  # a declared CRS that cannot be used (the Moon, absurd parameters): UnknownCRSError
    gdf = gdf.to_crs(4326)
    for c in ("facility_id", "kind", "service_code", "zone_id", "name", "town"):
        if c in gdf.columns:
            gdf[c] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in gdf[c]]
    problems = []
    g = gdf.geometry
    bad_geom = g.isna() | g.is_empty | (g.geom_type != "Point")
    if bad_geom.any():
        problems.append(f"features without a Point geometry: {', '.join(map(str, gdf.facility_id[bad_geom].head(10)))}")
    else:
        xs, ys = g.x.to_numpy(), g.y.to_numpy()
        off = ~(np.isfinite(xs) & np.isfinite(ys) & (np.abs(xs) <= 180) & (np.abs(ys) <= 90))
        if off.any():
            problems.append(f"features with coordinates outside WGS-84 range: {', '.join(map(str, gdf.facility_id[off].head(10)))}")
    for c in ("facility_id", "kind", "service_code", "zone_id"):
        empty = gdf[c].isna() | (gdf[c].fillna("").str.strip() == "")
        if empty.any():
            problems.append(f"{int(empty.sum())} feature(s) without {c}")
    for c in ("facility_id", "service_code"):
        d = gdf[c][gdf[c].notna() & gdf[c].duplicated()]
        if len(d):
            problems.append(f"duplicate {c}: {', '.join(sorted(set(d))[:10])}")
    long_ = _too_long(gdf.facility_id, ID_LEN) + _too_long(gdf.zone_id, ID_LEN) + _too_long(gdf.service_code, 64)
    if long_:
        problems.append(f"ids or service codes too long: {', '.join(long_)}")
    if problems:
        raise ImportRejected("facilities rejected: " + "; ".join(problems))
    return gdf


# ------------------------------------------------------------------ diffs for the audit trail
def _diff_ids(before: dict, after: dict) -> dict:
    added, removed = set(after) - set(before), set(before) - set(after)
    changed = {k for k in set(before) & set(after) if before[k] != after[k]}
    return {"added": _listed(added), "removed": _listed(removed), "changed": _listed(changed),
            "n_added": len(added), "n_removed": len(removed), "n_changed": len(changed)}


def _geom_key(g) -> bytes:
    if g is None:
        return b""
    if g.geom_type == "Polygon":  # the store keeps MultiPolygons; the same shape must not count as changed
        g = shapely.MultiPolygon([g])
    return shapely.to_wkb(shapely.normalize(g), hex=False)


def boundaries_summary(old: ZoneIndex, new: ZoneIndex) -> dict:
    """The audit summary of a boundary change: zone and village counts, and the ids added, removed and changed."""
    z = lambda i: {r.zone_id: (r.name, _geom_key(r.geometry)) for r in i.zones.itertuples()}  # noqa: E731
    u = lambda i: {r.unit_id: (r.zone_id, r.village_name, _geom_key(r.geometry)) for r in i.units.itertuples()}  # noqa: E731
    return {"zones_before": len(old.zones), "zones_after": len(new.zones), "zones": _diff_ids(z(old), z(new)),
            "villages_before": len(old.units), "villages_after": len(new.units), "villages": _diff_ids(u(old), u(new))}


def roster_summary(old: Roster | None, new: Roster | None) -> dict:
    """The audit summary of a roster change: row counts, people added, removed or changed, and assignments added and removed."""
    def rows(r):
        if r is None:
            return set()
        return {f"{x.person_id} {x.role} {x.zone_id} {x.effective_from}–{'' if pd.isna(x.effective_to) else x.effective_to}"
                for x in r.table.itertuples()}

    def people(r):
        return {} if r is None else {x.person_id: (x.name, x.phone) for x in r.table.itertuples()}

    b, a = rows(old), rows(new)
    return {"rows_before": len(b), "rows_after": len(a), "people": _diff_ids(people(old), people(new)),
            "assignments_added": _listed(a - b), "assignments_removed": _listed(b - a),
            "n_assignments_added": len(a - b), "n_assignments_removed": len(b - a)}


def facilities_summary(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> dict:
    """The audit summary of a facilities change: counts, and the facility ids added, removed and changed."""
    f = lambda d: {str(r.facility_id): (r.kind, getattr(r, "name", None), r.service_code, r.zone_id, _geom_key(r.geometry))  # noqa: E731
                   for r in d.itertuples()}
    return {"before": len(old), "after": len(new), "facilities": _diff_ids(f(old), f(new))}


# ------------------------------------------------------------------ the import
def import_reference(db: Database, index: ZoneIndex, facilities: gpd.GeoDataFrame, actor: str, *,
                     boundaries=None, roster=None, facilities_file=None, dry_run: bool = False,
                     boundary_options: dict | None = None, source_names: dict | None = None,
                     valid_from: datetime | None = None, rewrite_history: bool = False, allow_uncovered: bool = False,
                     public_url: str = "", now: datetime | None = None) -> ImportOutcome:
    """Validate and replace any of boundaries / roster / facilities together, in one transaction.

    `index` and `facilities` are what is in force now; they are not modified. Boundaries become a new
    generation (zonechief.generations), valid from `valid_from` (default now): in force at once, moving
    open reports, or kept until then. A `valid_from` in the past that would rewrite history is refused
    unless `rewrite_history`.
    Raises ImportRejected (nothing changed) or a database error (rolled back).
    """
    if boundaries is None and roster is None and facilities_file is None:
        raise ImportRejected("nothing to import: give a boundaries, roster or facilities file")
    now = now or generations.utcnow()
    names = source_names or {}
    new_roster = read_roster(roster) if roster is not None else index.roster
    summary: dict[str, dict] = {}
    timing, diff = None, None
    if boundaries is not None:
        opts = dict(boundary_options or {})
        if opts.get("official") is None and is_official(boundaries, opts.get("layer")):
            opts["official"] = {}
        new_index, repairs = read_boundaries(boundaries, new_roster, snap_tolerance_m=index.snap_tolerance_m,
                                             overlap_tolerance_m2=index.overlap_tolerance_m2, current=index, **opts)
        with db.sessions() as s:
            timing = generations.timing(db, s, valid_from, now)
        if timing.rewrites_history and not rewrite_history:
            raise ImportRejected(timing.refusal())
        gaps = [] if allow_uncovered else uncovered(index, new_index, index.overlap_tolerance_m2)
        if gaps:
            raise ImportRejected(f"boundaries rejected, nothing was written: they do not cover the old towns ({len(gaps)} part(s) left "
                                 "uncovered; give --allow-uncovered if that is intended, which is audited):\n"
                                 + "\n".join(f"  - {g}" for g in gaps[:MAX_LISTED]))
        diff = diff_units(index, new_index, tolerance_m2=index.overlap_tolerance_m2)
        summary["boundaries"] = {**boundaries_summary(index, new_index), "repairs": repairs[:MAX_LISTED],
                                 "diff": diff.summary(),
                                 **_timing_summary(db, timing, new_index, rewrite_history, count=dry_run)}
        if allow_uncovered:
            summary["boundaries"]["allow_uncovered"] = True
    else:
        new_index = copy.copy(index)  # shares the geometry index; only the roster may differ
        new_index.roster = new_roster
    scheduled = timing is not None and (not timing.takes_effect_now or bool(timing.later))
    if scheduled and facilities_file is not None:
        raise ImportRejected("facilities cannot be imported together with boundaries valid from later: import them "
                             "when the boundaries take effect")
    in_force_after = index if scheduled else new_index  # whose geometry lookups use once this commits
    if scheduled:
        in_force_after = copy.copy(index)
        in_force_after.roster = new_roster
    new_facilities = read_facilities(facilities_file) if facilities_file is not None else facilities

    # Cross-checks against the zones that will be in force (a roster may already name a scheduled generation's zones).
    zones = set(in_force_after.zones.zone_id) | (set(new_index.zones.zone_id) if scheduled else set())
    problems = []
    if new_roster is not None:
        unknown = sorted(set(new_roster.table.zone_id) - zones)
        if unknown:
            problems.append(f"the roster names zones that do not exist: {', '.join(unknown[:20])}"
                            + ("" if roster is not None else " (import the roster together with the boundaries)"))
    unknown_f = sorted(set(new_facilities.zone_id) - set(in_force_after.zones.zone_id))
    if unknown_f:
        problems.append(f"facilities name zones that do not exist: {', '.join(unknown_f[:20])}"
                        + ("" if facilities_file is not None else " (import the facilities together with the boundaries)"))
    if problems:
        raise ImportRejected("; ".join(problems))

    if roster is not None:
        summary["roster"] = roster_summary(index.roster, new_roster)
    if facilities_file is not None:
        summary["facilities"] = facilities_summary(facilities, new_facilities)
    for kind, src in (("boundaries", boundaries), ("roster", roster), ("facilities", facilities_file)):
        if src is not None:
            summary[kind] = {"source": names.get(kind, Path(src).name), "sha256": _sha256(Path(src)), **summary[kind]}
    kinds = [k for k in KINDS if k in summary]
    out = ImportOutcome(kinds, summary, dry_run, index=in_force_after, facilities=new_facilities,
                        diff=diff if boundaries is not None else None)
    if dry_run:
        return out

    try:
        with db.sessions.begin() as s:
            db.reference_repo.lock_for_replace(s)  # concurrent imports wait; readers do not
            if "boundaries" in kinds:
                assert timing is not None
                _new_generation(s, db, new_index, timing, summary["boundaries"], actor=actor, now=now,
                                rewrite_history=rewrite_history, public_url=public_url)
            if "roster" in kinds:
                s.execute(delete(RosterEntry))
                _insert(s, RosterEntry, roster_rows(new_roster))
            if "facilities" in kinds:
                s.execute(delete(Facility))
                _insert(s, Facility, facility_rows(new_facilities))
            together = kinds if len(kinds) > 1 else None
            for k in kinds:
                entry = audit.record(s, actor, f"{k}.import", {**summary[k], **({"together_with": together} if together else {})})
                out.audit_ids.append(entry.id)
            notify.announce(s, max(out.audit_ids))  # delivered at commit, to every worker
    except (IntegrityError, DataError) as exc:
        # The database refused a row (a constraint the checks above do not know): all rolled back.
        raise ImportRejected(f"the database refused the import; nothing was changed: {exc.orig}") from exc
    return out


def _timing_summary(db: Database, timing: generations.Timing, new_index: ZoneIndex, rewrite_history: bool,
                    count: bool) -> dict:
    """When the boundaries take effect and what they would move. Counted here for a dry run or a generation not put
    in force now; one put in force reports what it moved (_new_generation), so the reports are read once."""
    takes_effect = "window" if timing.later else "now" if timing.takes_effect_now else "scheduled"
    # now; scheduled (valid from later); window (before a later generation: in force only in the past)
    out: dict = {"valid_from": timing.valid_from.isoformat(), "takes_effect": takes_effect}
    if count or takes_effect != "now":
        moves = generations.count_moves(db, new_index, timing.now)
        out.update(open_reports_changing_zone=len(moves), changing_zone=dict(list(moves.by_zone().items())[:MAX_LISTED]))
    if rewrite_history and timing.rewrites_history:
        out["rewrite_history"] = {"reports_in_window": timing.reports_in_window, "later_generations": timing.later}
    return out


def _new_generation(s, db: Database, new_index: ZoneIndex, timing: generations.Timing, summary: dict, *, actor: str,
                    now: datetime, rewrite_history: bool, public_url: str) -> None:
    """Keep the boundaries as a generation; put it in force now unless it is valid from later (or before a later one)."""
    cat = generations.Catalog.of(GenerationRepository.for_db(db).all(s))
    gen = generations.record(s, db, new_index, valid_from=timing.valid_from, now=now, actor=actor,
                             source=str(summary.get("source", "")), sha256=summary.get("sha256"),
                             rewrite_history=rewrite_history and timing.rewrites_history,
                             summary={k: summary[k] for k in ("zones_after", "villages_after") if k in summary})
    summary["generation"] = gen.id
    if timing.later:  # slipped in before a later generation: in force only in its window, which lies in the past
        gen.activated_at = now
        return
    if not timing.takes_effect_now:
        return
    prev = cat.in_force
    rewrite_since = timing.valid_from if rewrite_history and timing.reports_in_window else None
    moved = summary["put_in_force"] = generations.put_in_force(s, db, gen, new_index, now=now, public_url=public_url,
                                                               previous=prev.id if prev else None, rewrite_since=rewrite_since)
    summary["open_reports_changing_zone"] = moved["moved"]
    summary["changing_zone"] = dict(list(moved["moved_by_zone"].items())[:MAX_LISTED])
    new_index.generation = gen.id


# ------------------------------------------------------------------ reading back
def stored_version(db: Database) -> int | None:
    """The version of the reference data in the store: the audit id of its last import (None: never imported)."""
    with db.sessions() as s:
        return audit.latest_reference_import(s)


def load_from_db(db: Database, snap_tolerance_m: float | None = None, overlap_tolerance_m2: float = OVERLAP_TOLERANCE_M2,
                 in_force: ZoneIndex | None = None) -> tuple[ZoneIndex, gpd.GeoDataFrame, int] | None:
    """The index, facilities and version stored in the database, if reference data was ever imported; else None.

    Parts the store holds unchanged from `in_force` (the index in force now: its roster, its geometry)
    are kept rather than built and checked again, so a worker hearing of a roster import reloads at once.
    """
    with db.sessions() as s:
        db.reference_repo.read_snapshot(s)  # the version and every table from the same commit
        version = audit.latest_reference_import(s)
        if version is None:
            return None
        in_force_generation = generations.Catalog.of(GenerationRepository.for_db(db).all(s)).in_force
        zone_names = dict(s.execute(select(Zone.zone_id, Zone.name)).all())
        villages = s.scalars(select(Village).order_by(Village.code)).all()
        people = s.scalars(select(RosterEntry).order_by(RosterEntry.id)).all()
        facs = s.scalars(select(Facility).order_by(Facility.facility_id)).all()
    units = gpd.GeoDataFrame({
        "unit_id": [v.code for v in villages], "zone_id": [v.zone_id for v in villages],
        "village_code": [v.code for v in villages], "village_name": [v.name for v in villages],
        "village_short_name": [v.short_name for v in villages], "town": [v.town for v in villages],
        "town_code": [v.town_code for v in villages], "zone_name": [zone_names.get(v.zone_id) for v in villages],
        "geometry_quality": [v.geometry_quality for v in villages]},
        geometry=[v.geom for v in villages], crs=4326)
    rows = [{c: getattr(p, c) for c in ROSTER_COLUMNS} for p in people]
    if in_force is not None and in_force.roster is not None and _keys(rows) == _keys(roster_rows(in_force.roster)):
        roster: Roster | None = in_force.roster
    else:
        roster = Roster(pd.DataFrame(rows, columns=ROSTER_COLUMNS)) if rows else None
    fac = gpd.GeoDataFrame({
        "facility_id": [f.facility_id for f in facs], "kind": [f.kind for f in facs], "name": [f.name for f in facs],
        "service_code": [f.service_code for f in facs], "town": [f.town for f in facs],
        "zone_id": [f.zone_id for f in facs]}, geometry=[f.geom for f in facs], crs=4326)
    if in_force is not None and _same_geography(in_force, units, zone_names):
        index = copy.copy(in_force)  # shares the geometry index; only the roster may differ
        index.roster = roster
    else:
        index = ZoneIndex(units, roster, snap_tolerance_m, overlap_tolerance_m2)
    index.generation = in_force_generation.id if in_force_generation else None
    return index, fac, version


def _same_geography(index: ZoneIndex, units: gpd.GeoDataFrame, zone_names: dict) -> bool:
    """Whether `units` (and the zones' names) are what `index` was built from."""
    if dict(zip(index.zones.zone_id, index.zones.name)) != zone_names:
        return False
    return _keys(village_rows(index)) == _keys(village_rows(SimpleNamespace(units=units)))


def fingerprint(index: ZoneIndex, facilities: gpd.GeoDataFrame) -> str:
    """12 hex digits naming the reference data in force: the rows it would be stored as (geometries normalized),
    so the same data read from files, from an upload or from the store has the same fingerprint."""
    h = hashlib.sha256()
    for rows in (zone_rows(index), village_rows(index), roster_rows(index.roster), facility_rows(facilities)):
        h.update(b"\x1e")
        for key in _keys(rows):
            h.update(key.encode())
    return h.hexdigest()[:12]


def _keys(rows: list[dict]) -> list[str]:
    """Rows as comparable text, sorted (the store returns rows in its own order), geometries normalized."""
    return sorted(repr(sorted((k, _geom_key(v) if k == "geom" else _plain(v)) for k, v in row.items())) for row in rows)


def _plain(v):
    """NaN, NaT and None alike (files and the store spell "missing" differently); numpy scalars as Python ones."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v
