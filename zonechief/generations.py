"""Boundary generations: which boundaries were in force when, and what happens when new ones take effect.

The one rule of time: the generation in force at an instant is the one with the latest valid_from at
or before it (ties: the later import). A generation takes effect ("is put in force") at its
valid_from: at once when imported for now, else when `activate_due` runs after that instant (each
API process checks every ACTIVATE_EVERY_S; `zonechief boundaries activate` for cron).

Putting a generation in force replaces the zones and villages tables (what lookups without `at`
use), and moves every OPEN report whose point now falls in another zone to that zone and its chief
in force, with a history step naming both generations and a `report.reassigned` event. Closed
reports stay as they were, unless the import was allowed to rewrite history (then the reports filed
since its valid_from are re-explained by it, keeping who handled them).
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import delete

from gis.gazetteer import Gazetteer
from gis.lookup import ZoneIndex
from store import audit, notify
from store.db import Database, _insert, generation_rows, village_rows, zone_rows
from store.generations import GenerationRepository, ReportPoints
from store.models import BoundaryGeneration, GenerationVillage, Village, Zone
from zonechief import events
from zonechief.intake import chief_ids
from zonechief.workflow import OPEN_STATUSES

log = logging.getLogger("zonechief.generations")

GRACE = timedelta(minutes=5)  # a valid_from this close before now is "now": clocks and typing differ
ACTIVATE_EVERY_S = 30.0
ACTOR = "boundaries"  # the actor of the history steps a move writes
CACHED_INDEXES = 4  # past generations' indexes kept in memory per process


def utcnow() -> datetime:
    """Now, UTC-aware."""
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------ which generation when
@dataclass(frozen=True)
class GenerationInfo:
    """A generation as the catalog keeps it."""

    id: int
    valid_from: datetime
    activated_at: datetime | None


@dataclass
class Catalog:
    """The generations, in the order of the rule (valid_from, then id)."""

    items: list[GenerationInfo] = field(default_factory=list)

    @classmethod
    def of(cls, rows) -> "Catalog":
        """From store rows (anything with id, valid_from, activated_at)."""
        return cls(sorted((GenerationInfo(r.id, r.valid_from, r.activated_at) for r in rows),
                          key=lambda g: (g.valid_from, g.id)))

    def __post_init__(self):
        self._starts = [g.valid_from for g in self.items]  # sorted with the items: bisect per lookup

    def at(self, instant: datetime) -> GenerationInfo | None:
        """The generation in force at `instant` (None: before the first, or no generations)."""
        k = bisect.bisect_right(self._starts, instant)  # equal starts: the later id is after, and wins
        return self.items[k - 1] if k else None

    def get(self, gid: int) -> GenerationInfo | None:
        """The generation with this id."""
        return next((g for g in self.items if g.id == gid), None)

    @property
    def in_force(self) -> GenerationInfo | None:
        """The generation whose villages are in the zones/villages tables: the latest put in force."""
        done = [g for g in self.items if g.activated_at is not None]
        return done[-1] if done else None

    def previous(self, gid: int) -> GenerationInfo | None:
        """The generation before `gid` in the order of the rule."""
        ids = [g.id for g in self.items]
        k = ids.index(gid) if gid in ids else -1
        return self.items[k - 1] if k > 0 else None


# ------------------------------------------------------------------ rows and indexes
def units_of(villages: list[GenerationVillage]) -> gpd.GeoDataFrame:
    """A generation's villages as ZoneIndex units."""
    return gpd.GeoDataFrame({
        "unit_id": [v.code for v in villages], "zone_id": [v.zone_id for v in villages],
        "village_code": [v.code for v in villages], "village_name": [v.name for v in villages],
        "village_short_name": [v.short_name for v in villages], "town": [v.town for v in villages],
        "town_code": [v.town_code for v in villages], "zone_name": [v.zone_name for v in villages],
        "geometry_quality": [v.geometry_quality for v in villages]},
        geometry=[v.geom for v in villages], crs=4326)


def load_generation(db: Database, gid: int, like: ZoneIndex) -> ZoneIndex:
    """The index of generation `gid`, with `like`'s roster and tolerances. KeyError for an unknown generation."""
    repo = GenerationRepository.for_db(db)
    with db.sessions() as s:
        villages = repo.villages(s, gid)
    if not villages:
        raise KeyError(gid)
    return ZoneIndex(units_of(villages), like.roster, like.snap_tolerance_m, like.overlap_tolerance_m2)


class IndexCache:
    """Past generations' indexes, built on first use and kept (LRU): as-of lookups cost what lookups cost."""

    def __init__(self, size: int = CACHED_INDEXES):
        self._items: OrderedDict[int, ZoneIndex] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, gid: int, build) -> ZoneIndex:
        """The cached index of `gid`, or `build()`'s (outside the lock: building takes a while)."""
        with self._lock:
            if gid in self._items:
                self._items.move_to_end(gid)
                return self._items[gid]
        index = build()
        with self._lock:
            self._items[gid] = index
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return index

    def peek(self, gid: int) -> ZoneIndex | None:
        """The cached index of `gid`, or None (nothing built)."""
        with self._lock:
            return self._items.get(gid)

    def with_roster(self, roster) -> None:
        """Roster imports reach past indexes too (the roster is dated; each lookup picks its day)."""
        with self._lock:
            for idx in self._items.values():
                idx.roster = roster


# ------------------------------------------------------------------ what a generation would move
@dataclass
class Moves:
    """Reports that change zone, as parallel columns."""

    ids: np.ndarray
    zone_from: np.ndarray
    zone_to: np.ndarray
    village_to: np.ndarray
    chief_from: np.ndarray
    chief_to: np.ndarray
    status_to: np.ndarray
    generation_from: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    outside: int = 0  # open reports whose point no zone of the new boundaries holds: left as they were

    def __len__(self) -> int:
        return len(self.ids)

    def by_zone(self) -> dict[str, int]:
        """How many move, per "from → to"."""
        pairs, counts = np.unique(np.array([f"{a} → {b}" for a, b in zip(self.zone_from, self.zone_to)], dtype=object)
                                  if len(self) else np.array([], dtype=object), return_counts=True)
        return {str(p): int(c) for p, c in zip(pairs, counts)}


def plan_moves(points: ReportPoints, index: ZoneIndex, at: datetime, *, keep_chief: bool = False) -> Moves:
    """The reports among `points` that `index` puts in another zone, with their new village and chief (in force at `at`).

    `keep_chief`: closed reports re-explained by a history rewrite keep who handled them.
    """
    if len(points) == 0:
        e, f = np.array([], dtype=object), np.array([], float)
        return Moves(np.array([], np.int64), e, e, e, e, e, e, e, f, f)
    unit = index.locate_once(points.lon, points.lat)  # no grids: this index may serve only this batch
    placed = unit >= 0
    zones = index.units["zone_id"].astype(str).to_numpy(dtype=object)
    codes = index.units["unit_id"].astype(str).to_numpy(dtype=object)
    zone = np.where(placed, zones[np.maximum(unit, 0)], None)
    village = np.where(placed, codes[np.maximum(unit, 0)], None)
    moved = placed & (zone != points.zone_id)
    k = np.flatnonzero(moved)
    zone_to = zone[k]
    chief_to = points.chief_id[k] if keep_chief else chief_ids(index.roster, zone_to, [at] * len(k))
    status = points.status[k].copy()
    status[status == "new"] = "assigned"  # as the intake does for a report in a zone
    return Moves(points.id[k], points.zone_id[k], zone_to, village[k], points.chief_id[k], chief_to, status,
                 points.generation_id[k], points.lon[k], points.lat[k], outside=int((~placed).sum()))


# ------------------------------------------------------------------ when it may take effect
@dataclass
class Timing:
    """When an import takes effect, and what it would rewrite."""

    valid_from: datetime
    now: datetime
    reports_in_window: int = 0  # reports filed between valid_from and now
    later: list[int] = field(default_factory=list)  # generations valid from later (they stay in force after theirs)

    @property
    def takes_effect_now(self) -> bool:
        """Valid from now or before: put in force by the import itself."""
        return self.valid_from <= self.now + timedelta(seconds=1)

    @property
    def rewrites_history(self) -> bool:
        """Whether it would change how already filed reports are explained, or slip in before a later generation."""
        return bool(self.reports_in_window or self.later)

    def refusal(self) -> str:
        """Why it needs --rewrite-history."""
        why = []
        if self.reports_in_window:
            why.append(f"{self.reports_in_window} report(s) were filed since {self.valid_from.isoformat()} under the "
                       "boundaries then in force")
        if self.later:
            why.append(f"generation(s) {', '.join(map(str, self.later))} are valid from later and would cut it short")
        return ("valid_from is in the past and would rewrite history: " + "; ".join(why)
                + ". Give --rewrite-history (rewrite_history=true) to do it anyway; it is audited")


def timing(db: Database, session, valid_from: datetime | None, now: datetime) -> Timing:
    """The timing of an import valid from `valid_from` (None: now)."""
    if valid_from is None or now - GRACE <= valid_from <= now:
        return Timing(now, now)
    t = Timing(valid_from, now)
    repo = GenerationRepository.for_db(db)
    t.later = [g.id for g in repo.all(session) if g.valid_from > valid_from and g.valid_from <= now]
    if valid_from < now:
        t.reports_in_window = repo.count_reports_since(session, valid_from)
    return t


def count_moves(db: Database, index: ZoneIndex, at: datetime) -> Moves:
    """What putting `index` in force at `at` would move now (the dry run's number)."""
    repo = GenerationRepository.for_db(db)
    with db.sessions() as s:
        points = repo.report_points(s, statuses=OPEN_STATUSES)
    return plan_moves(points, index, at)


# ------------------------------------------------------------------ putting one in force
def record(session, db: Database, index: ZoneIndex, *, valid_from: datetime, now: datetime, actor: str, source: str,
           sha256: str | None, rewrite_history: bool, summary: dict) -> BoundaryGeneration:
    """Keep a new generation (its villages as imported); not yet in force."""
    return GenerationRepository.for_db(db).add(session, generation_rows(index), valid_from=valid_from, created_at=now,
                                               actor=actor[:100], source=source[:200], sha256=sha256,
                                               rewrite_history=rewrite_history, summary=summary, activated_at=None)


def put_in_force(session, db: Database, gen: BoundaryGeneration, index: ZoneIndex, *, now: datetime,
                 previous: int | None, public_url: str, rewrite_since: datetime | None = None) -> dict:
    """Replace zones and villages with `index` and move the reports it puts in other zones. Returns what moved."""
    repo = GenerationRepository.for_db(db)
    session.execute(delete(Village))
    session.execute(delete(Zone))
    _insert(session, Zone, zone_rows(index))
    _insert(session, Village, village_rows(index))
    open_points = repo.report_points(session, statuses=OPEN_STATUSES)
    moves = plan_moves(open_points, index, now)
    _move(session, repo, moves, gen.id, previous, now, public_url, announce=True)
    out = {"generation": gen.id, "previous": previous, "moved": len(moves), "moved_by_zone": dict(list(moves.by_zone().items())[:200]),
           "open_outside_new_boundaries": moves.outside}
    if rewrite_since is not None:
        since = repo.report_points(session, since=rewrite_since)
        closed = since.where(~np.isin(since.status, OPEN_STATUSES))
        rewritten = plan_moves(closed, index, now, keep_chief=True)
        _move(session, repo, rewritten, gen.id, previous, now, public_url, announce=False)
        out["closed_rewritten"] = len(rewritten)
    gen.activated_at = now
    gen.summary = {**(gen.summary or {}), "put_in_force": out}
    return out


def _move(session, repo: GenerationRepository, moves: Moves, gid: int, previous: int | None, now: datetime,
          public_url: str, *, announce: bool) -> None:
    if not len(moves):
        return
    repo.move(session, moves.ids, moves.zone_to, moves.village_to, moves.chief_to, moves.status_to, gid, now)
    repo.add_history(session, [
        {"report_id": int(i), "status": st, "at": now, "actor": ACTOR,
         "note": f"区域调整 re-assigned by new boundaries: {zf or '—'} → {zt} (generation {gf if gf is not None else previous} → {gid})"}
        for i, st, zf, zt, gf in zip(moves.ids, moves.status_to, moves.zone_from, moves.zone_to, moves.generation_from)])
    if not announce:
        return
    rows = repo.event_rows(session, moves.ids)
    before = {int(i): (zf, cf, gf, x, y) for i, zf, cf, gf, x, y in zip(moves.ids, moves.zone_from, moves.chief_from,
                                                                         moves.generation_from, moves.lon, moves.lat)}
    evs = []
    for r in rows:
        zf, cf, gf, x, y = before[r.id]
        rr = SimpleNamespace(**r._mapping, geom=shapely.Point(x, y))
        evs.append(events.on_reassigned(rr, now, public_url,
                                        {"zone_id": zf, "chief_id": cf, "generation": gf if gf is not None else previous},
                                        {"zone_id": r.zone_id, "chief_id": r.chief_id, "generation": gid}))
    repo.add_events(session, evs)


# ------------------------------------------------------------------ scheduled ones
def activate_due(db: Database, like: ZoneIndex, public_url: str, now: datetime | None = None,
                 actor: str = "system") -> tuple[ZoneIndex, int] | None:
    """Put in force the latest generation whose valid_from has come, if one waits. Returns (index, version) to swap in.

    Two processes may call this at once: the generation rows are locked (SKIP LOCKED on PostGIS), so
    one of them does it and the other finds nothing to do.
    """
    now = now or utcnow()
    repo = GenerationRepository.for_db(db)
    with db.sessions.begin() as s:
        db.reference_repo.lock_for_replace(s)
        due = repo.due(s, now)
        if not due:
            return None
        gen = due[-1]
        for skipped in due[:-1]:  # superseded before anyone put them in force: their windows stay for as-of
            skipped.activated_at = now
            skipped.summary = {**(skipped.summary or {}), "superseded_by": gen.id}
        cat = Catalog.of(repo.all(s))
        prev = cat.in_force
        index = ZoneIndex(units_of(repo.villages(s, gen.id)), like.roster, like.snap_tolerance_m, like.overlap_tolerance_m2)
        index.generation = gen.id
        out = put_in_force(s, db, gen, index, now=now, previous=prev.id if prev else None, public_url=public_url)
        entry = audit.record(s, actor, "boundaries.activate", {"generation": gen.id, "valid_from": gen.valid_from.isoformat(),
                                                               **out})
        notify.announce(s, entry.id)
    log.info("boundary generation %s in force: %s open report(s) moved", gen.id, out["moved"])
    return index, entry.id


def gazetteer(data_dir, index: ZoneIndex, facilities, db: Database | None) -> Gazetteer:
    """The gazetteer of `index` (the boundaries in force), the towns and aliases files of `data_dir`, the facilities,
    and, with a store, the names of earlier generations' villages that `index` no longer has."""
    from pathlib import Path

    d = Path(data_dir)
    retired = None
    if db is not None and index.generation is not None:
        with db.sessions() as s:
            old = GenerationRepository.for_db(db).retired(s, index.generation)
        if old:
            retired = gpd.GeoDataFrame({"code": [v.code for v in old], "name": [v.name for v in old],
                                        "short_name": [v.short_name for v in old], "town": [v.town for v in old]},
                                       geometry=[v.geom for v in old], crs=4326)
    towns = gpd.read_file(d / "towns.geojson", engine="pyogrio")
    return Gazetteer.from_index(index, towns, facilities, d / "gazetteer_extra.csv", retired)


def catalog(db: Database) -> Catalog:
    """The generations in the store."""
    with db.sessions() as s:
        return Catalog.of(GenerationRepository.for_db(db).all(s))
