"""Engine, migrations and reference data for the report store (PostGIS or embedded SQLite)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import shapely
from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from store.deadline import Deadlines, Timeouts
from store.map_aggregates import MapAggregates
from store.models import Category, Facility, RosterEntry, Village, Zone
from store.reference_repo import ReferenceRepository
from store.reports_repo import ReportRepository

if TYPE_CHECKING:
    from store.bulk_write import BulkWriter

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _wkb_x(wkb):
    return None if wkb is None else shapely.from_wkb(bytes(wkb)).x


def _wkb_y(wkb):
    return None if wkb is None else shapely.from_wkb(bytes(wkb)).y


def make_engine(url: str, timeouts: Timeouts | None = None) -> Engine:
    """An engine for `url`: SQLite with WAL, foreign keys and the zc_x/zc_y functions; PostgreSQL with a pool
    that survives restarts. Every database use ends within `timeouts` (store.deadline)."""
    timeouts = timeouts or Timeouts()
    if url.startswith("sqlite"):
        # The busy timeout is how long a write waits for another writer's lock: as long as a statement may take.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeouts.statement_s})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # Geometry is WKB here; these let the same bbox filters run in SQL.
            dbapi_conn.create_function("zc_x", 1, _wkb_x, deterministic=True)
            dbapi_conn.create_function("zc_y", 1, _wkb_y, deterministic=True)

        return engine
    args = timeouts.connect_args()
    if "options" in make_url(url).query:  # the URL's own server options come first
        args["options"] = f"{make_url(url).query['options']} {args['options']}"
    # pre_ping replaces connections a database restart killed; the pool's wait is short, so an
    # exhausted pool answers 503 instead of piling requests up.
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=timeouts.pool_s,
                           connect_args=args)
    Deadlines(timeouts).install(engine)
    return engine


def alembic_config(conn):
    """Alembic's configuration for our migrations, run on `conn` (inside its transaction)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations (idempotent). Migrating gets the bulk deadline (Deadlines.extend):
    it may build indexes over every report. Checking that there is nothing to do gets the ordinary one."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.begin() as conn:
        cfg = alembic_config(conn)
        script = ScriptDirectory.from_config(cfg)
        if revision == "head" and set(MigrationContext.configure(conn).get_current_heads()) == set(script.get_heads()):
            return
        Deadlines.of(engine).extend(conn)
        command.upgrade(cfg, revision)


def _multi(g):
    return g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])


def zone_rows(index) -> list[dict]:
    """Rows for the zones table from a ZoneIndex, each geometry a MultiPolygon."""
    return [{"zone_id": r.zone_id, "name": r.name, "town": r.town, "town_code": r.town_code,
             "geometry_quality": r.geometry_quality, "geom": _multi(r.geometry)} for r in index.zones.itertuples()]


def village_rows(index) -> list[dict]:
    """Rows for the villages table from a ZoneIndex's units, each geometry a MultiPolygon."""
    return [{"code": r.unit_id, "name": r.village_name, "short_name": r.village_short_name, "town": r.town,
             "town_code": r.town_code, "zone_id": r.zone_id, "geometry_quality": r.geometry_quality,
             "geom": _multi(r.geometry)} for r in index.units.itertuples()]


def generation_rows(index) -> list[dict]:
    """Rows for generation_villages from a ZoneIndex: its villages, with their zone's name."""
    names = dict(zip(index.zones.zone_id, index.zones.name))
    return [{**v, "zone_name": names.get(v["zone_id"])} for v in village_rows(index)]


def roster_rows(roster) -> list[dict]:
    """Rows for the roster table (none without a roster); an open end date becomes NULL."""
    if roster is None:
        return []
    return [{"person_id": r.person_id, "role": r.role, "name": r.name, "phone": r.phone, "zone_id": r.zone_id,
             "effective_from": r.effective_from, "effective_to": None if pd.isna(r.effective_to) else r.effective_to}
            for r in roster.table.itertuples()]


def facility_rows(facilities) -> list[dict]:
    """Rows for the facilities table from the facilities layer."""
    return [{"facility_id": r.facility_id, "kind": r.kind, "name": r.name, "service_code": r.service_code,
             "town": getattr(r, "town", None), "zone_id": r.zone_id, "geom": r.geometry} for r in facilities.itertuples()]


def _insert(session: Session, model, rows: list[dict]) -> None:
    if rows:  # executemany with no rows is an error on some drivers
        session.execute(insert(model), rows)


def load_reference(session: Session, index, facilities, categories: pd.DataFrame) -> bool:
    """Copy zones, villages, roster, facilities and categories into empty tables. True if it loaded."""
    if session.scalar(select(func.count()).select_from(Zone)):
        return False
    _insert(session, Zone, zone_rows(index))
    _insert(session, Village, village_rows(index))
    _insert(session, RosterEntry, roster_rows(index.roster))
    _insert(session, Facility, facility_rows(facilities))
    _insert(session, Category, [{"code": r.code, "major_code": r.major_code, "major_name": r.major_name, "name": r.name}
                                for r in categories.itertuples()])
    from store.generations import GenerationRepository  # store.generations imports this module

    GenerationRepository.first(session, generation_rows(index))  # the boundaries it starts with are generation 1
    return True


class Database:
    """An engine with its schema migrated and reference data loaded."""

    def __init__(self, url: str, timeouts: Timeouts | None = None):
        self.url = url
        self.timeouts = timeouts or Timeouts()
        self.engine = make_engine(self.url, self.timeouts)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The backend's dialect name ("postgresql" or "sqlite"): it picks each repository's implementation."""
        return self.engine.dialect.name

    # What differs between PostGIS and SQLite sits behind one interface per job; each
    # picks its implementation from the dialect, once per database.
    @cached_property
    def report_repo(self) -> ReportRepository:
        """Report reads: get, by key, search, queue."""
        return ReportRepository.for_db(self)

    @cached_property
    def bulk_writer(self) -> BulkWriter:
        """Import writes and the stored-key lookup."""
        from store.bulk_write import BulkWriter  # imports numba (store.pg_bulk): only when bulk-writing

        return BulkWriter.for_db(self)

    @cached_property
    def map_aggregates(self) -> MapAggregates:
        """The maps' points and cell counts."""
        return MapAggregates.for_db(self)

    @cached_property
    def outbox(self):
        """Report events and their webhook deliveries (store.outbox)."""
        from store.outbox import OutboxRepository

        return OutboxRepository.for_db(self)

    @cached_property
    def reference_repo(self) -> ReferenceRepository:
        """The reference tables during an import."""
        return ReferenceRepository.for_db(self)

    def init(self, index, facilities, categories) -> "Database":
        """Migrate the schema and load the reference data if the store has none yet. Returns self."""
        migrate(self.engine)
        with self.sessions.begin() as s:
            load_reference(s, index, facilities, categories)
        return self
