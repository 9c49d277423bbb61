"""Assembly: the one place where settings are read and the app's parts are built (once, lazily).

The API, the CLI and the notebooks get their zone index, facilities, categories and
report store from a `Services`; nothing below this module reads the environment.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from concurrent.futures import Future
from functools import cached_property
from typing import TYPE_CHECKING

from gis.categories import load_categories
from gis.facilities import load_facilities
from gis.lookup import ZoneIndex
from zonechief import generations
from zonechief.settings import Settings, get_settings

if TYPE_CHECKING:
    from store.notify import ReferenceListener
    from zonechief.dispatcher import Dispatcher

log = logging.getLogger("zonechief.services")


REOPEN_AFTER_S = 1.0  # a failed attempt to open the store is everyone's answer for this long


def load_settings() -> Settings:
    """The settings in force (environment and .env), read once per process."""
    return get_settings()


def load_index(settings: Settings) -> ZoneIndex:
    """The zone index from the configured boundary files and tolerances."""
    return ZoneIndex.load(settings.boundaries, data_dir=settings.data_dir, snap_tolerance_m=settings.snap_tolerance_m,
                          overlap_tolerance_m2=settings.overlap_tolerance_m2)


class Services:
    """The app's parts, built from one Settings on first use and shared by every request or command."""

    def __init__(self, settings: Settings | None = None, index: ZoneIndex | None = None, database_url: str | None = None):
        self.settings = settings = settings or load_settings()
        self._index = index
        self._facilities = None
        self._db = None
        self._opening: Future | None = None  # the latest attempt to open the store
        self._reopen_at = 0.0
        self._database_url = database_url  # None: the settings' store (Settings.store_url)
        # Re-entrant: swap_reference reads the index under the same lock.
        self._lock = threading.RLock()
        self.reference_lock = threading.Lock()  # one reference-data import at a time in this process
        self.reference_version: int | None = None  # audit id of the import in force; None: the shipped files
        self._fingerprint: str | None = None
        self._limits = None
        self._listener: ReferenceListener | None = None
        self._dispatcher: Dispatcher | None = None
        self._catalog: generations.Catalog | None = None  # the boundary generations in the store
        self._gazetteer = None
        self._past = generations.IndexCache()  # indexes of generations not in force, for as-of lookups
        self._activator: threading.Thread | None = None
        self._stop_activator = threading.Event()

    @property
    def index(self) -> ZoneIndex:
        """The zone index in force: from the configured boundaries until an import swaps it."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = load_index(self.settings)
        return self._index

    @property
    def generations(self) -> "generations.Catalog":
        """The boundary generations in the store (read on first use after each swap)."""
        cat = self._catalog
        if cat is None:
            cat = generations.catalog(self.db)
            with self._lock:
                self._catalog = cat
        return cat

    def index_at(self, at=None) -> ZoneIndex:
        """The index of the boundaries in force at `at` (a datetime; None: now, the index in force).

        Before the store is opened, or when its generation is the one in force, that is `index`;
        others are read from the store once and kept (generations.IndexCache).
        """
        index = self.index
        if at is None:
            return index
        g = self.generations.at(at)
        return index if g is None else self.generation_index(g.id)

    def generation_index(self, gid: int) -> ZoneIndex:
        """The index of boundary generation `gid` (KeyError: no such generation)."""
        index = self.index
        if gid == index.generation:
            return index
        return self._past.get(gid, lambda: self._past_index(gid, index))

    def index_at_nowait(self, at) -> ZoneIndex | None:
        """index_at(at) when it needs no database (the catalog read, the generation in force or cached); else None."""
        index, cat = self.index, self._catalog
        if at is None:
            return index
        if cat is None:
            return None
        g = cat.at(at)
        if g is None or g.id == index.generation:
            return index
        return self._past.peek(g.id)

    def _past_index(self, gid: int, like: ZoneIndex) -> ZoneIndex:
        idx = generations.load_generation(self.db, gid, like)
        idx.generation = gid
        return idx

    @property
    def gazetteer(self):
        """The place names of the boundaries in force (official names, short names, codes, the aliases file), with
        the names earlier generations had and these do not: an address naming one needs review, with candidates."""
        g = self._gazetteer
        if g is None:
            g = generations.gazetteer(self.settings.data_dir, self.index, self.facilities,
                                      self._db if self._db is not None else None)
            with self._lock:
                self._gazetteer = g
        return g

    @property
    def facilities(self):
        """The facilities in force: data_dir/facilities.geojson until an import swaps them."""
        if self._facilities is None:
            with self._lock:
                if self._facilities is None:
                    self._facilities = load_facilities(self.settings.data_dir / "facilities.geojson")
        return self._facilities

    @cached_property
    def categories(self):
        """The report categories (GB/T 47678.5 管理事项) shipped with zonechief."""
        return load_categories()

    @property
    def db(self):
        """The store, migrated. Not cached when opening fails (database down): the next request tries again.

        One thread opens it; calls meanwhile, and for REOPEN_AFTER_S after a failure, share that
        attempt's outcome instead of each trying in turn, which would pile requests up behind a
        database that does not answer (one connect timeout after another).
        """
        if self._db is not None:
            return self._db
        with self._lock:
            opening = self._opening
            mine = opening is None or (opening.done() and time.monotonic() >= self._reopen_at)
            if mine:
                opening = self._opening = Future()
        assert opening is not None
        if mine:
            try:
                opening.set_result(self._open_db())
            except BaseException as exc:
                self._reopen_at = time.monotonic() + REOPEN_AFTER_S
                opening.set_exception(exc)
        return opening.result()

    def _open_db(self):
        from store.db import Database
        from store.deadline import Timeouts
        from zonechief.reference import load_from_db

        s = self.settings
        db = Database(self._database_url or s.store_url(),
                      Timeouts(s.db_connect_timeout_s, s.db_statement_timeout_s, s.db_bulk_statement_timeout_s,
                               s.db_pool_timeout_s))
        try:
            db.init(self.index, self.facilities, self.categories)
            # Reference data imported earlier (zonechief.reference) is what is in force, not the shipped files.
            stored = load_from_db(db, self.index.snap_tolerance_m, self.index.overlap_tolerance_m2)
        except BaseException:
            db.engine.dispose()
            raise
        if stored is not None:
            self.swap_reference(*stored)
        elif self.index.generation is None:  # the shipped boundaries: the store's generation 1
            index = copy.copy(self.index)
            index.generation = generations.catalog(db).in_force.id
            self.swap_reference(index)
        self._db = db
        self._catalog = generations.catalog(db)
        return db

    def swap_reference(self, index: ZoneIndex | None = None, facilities=None, version: int | None = None) -> None:
        """Put new reference data in force (call only after it is committed to the store).

        `version` is the audit id of the import it comes from (None: the shipped files).
        """
        with self._lock:
            self.reference_version = version
            self._fingerprint = None
            self._catalog = None  # read again on next use: an import or activation may have added a generation
            if index is not None:
                self._index = index
                self._past.with_roster(index.roster)
            if facilities is not None:
                self._facilities = facilities
            self._gazetteer = None  # names follow the boundaries: built again on first use
            r = self.__dict__.get("reports")
            if r is not None:
                r.index, r.facilities, r.gazetteer = self.index, self.facilities, None

    def reload_reference(self) -> bool:
        """Put the store's reference data in force if it is not what is in force already; True if it swapped.

        Called by the reference listener after each notification from another process's import.
        Under reference_lock: an import through this process, swapped in meanwhile, is not undone
        by data read just before it committed.
        """
        from zonechief.reference import load_from_db, stored_version

        with self.reference_lock:
            db = self.db
            if stored_version(db) == self.reference_version:
                return False
            t0, index = time.monotonic(), self.index
            stored = load_from_db(db, index.snap_tolerance_m, index.overlap_tolerance_m2, in_force=index)
            if stored is None:
                return False
            self.swap_reference(*stored)
        log.info("reference data of import #%s in force after %.2f s (fingerprint %s)", stored[2],
                 time.monotonic() - t0, self.reference_fingerprint)
        return True

    def listen_for_reference_changes(self) -> None:
        """On PostgreSQL, reload the reference data whenever another process imports some (store.notify)."""
        from store.notify import ReferenceListener

        with self._lock:
            if self._listener is None:
                self._listener = ReferenceListener(lambda: self.db, self.reload_reference,
                                                   on_start=self._prepare_reloads).start()

    def _prepare_reloads(self) -> None:
        """Build a tiny index in the listener's thread: pyproj sets itself up per thread, which would
        otherwise cost the first reload ~0.2 s of CPU (several seconds on a busy machine)."""
        ZoneIndex(self.index.units.head(1))

    def stop_listening(self) -> None:
        """Stop the reference listener, if it runs."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    @property
    def reference_fingerprint(self) -> str:
        """A short fingerprint of the reference data in force (zonechief.reference.fingerprint), computed once per swap."""
        from zonechief.reference import fingerprint

        fp = self._fingerprint
        if fp is None:
            index, facilities = self.index, self.facilities
            fp = fingerprint(index, facilities)
            with self._lock:
                if self._index is index and self._facilities is facilities:  # not swapped meanwhile
                    self._fingerprint = fp
        return fp

    @property
    def submission_limits(self):
        """The public submission limit (store.rate_limits), shared by every worker on PostGIS; None when off."""
        if self._limits is None and self.settings.rate_limit_per_minute:
            from store.rate_limits import RateLimits

            db = self.db  # outside the lock: opening may wait for a database that does not answer
            with self._lock:
                if self._limits is None:
                    self._limits = RateLimits.for_db(db, self.settings.rate_limit_per_minute)
        return self._limits

    def health(self) -> dict:
        """Each dependency with its status; never raises."""
        checks = {}
        try:
            i = self.index
            checks["zones_index"] = {"status": "ok", "zones": len(i.zones), "villages": len(i.units),
                                     "roster": i.roster is not None}
        except Exception as exc:  # a broken boundary file must show here, not as a 500
            checks["zones_index"] = {"status": "down", "error": type(exc).__name__}
        try:
            db = self.db
            with db.engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
            checks["database"] = {"status": "ok", "dialect": db.dialect}
        except Exception as exc:
            # The class only (the driver's, e.g. ConnectionTimeout): driver messages name hosts and ports.
            checks["database"] = {"status": "down", "error": type(getattr(exc, "orig", None) or exc).__name__}
        return checks

    @cached_property
    def reports(self):
        """The report service on the store; geocodes online with Amap when a key is set."""
        from zonechief.amap import AmapProvider
        from zonechief.reports import Reports

        provider = None
        if self.settings.amap_key:
            provider = AmapProvider(self.settings.amap_key, base_url=self.settings.amap_base_url)
        reports = Reports(self.db, self.index, self.facilities, self.categories, provider=provider, gazetteer_of=lambda: self.gazetteer,
                          min_confidence=self.settings.address_min_confidence, media=self.media,
                          public_url=self.settings.public_url)
        reports.on_events.append(self._wake_dispatcher)
        return reports

    def _wake_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake(fresh=True)

    wake_dispatcher = _wake_dispatcher  # after an import moved reports (their report.reassigned events)

    def activate_due_generations(self, now=None) -> bool:
        """Put in force a boundary generation whose valid_from has come (if one waits); True if it did."""
        with self.reference_lock:
            done = generations.activate_due(self.db, self.index, self.settings.public_url or "", now=now)
            if done is None:
                return False
            self.swap_reference(done[0], None, done[1])
        self._wake_dispatcher()
        return True

    def start_activator(self) -> None:
        """Check every generations.ACTIVATE_EVERY_S for a generation due to take effect (any worker may do it)."""
        def run():
            while not self._stop_activator.wait(generations.ACTIVATE_EVERY_S):
                try:
                    due = self.generations.items and any(g.activated_at is None and g.valid_from <= generations.utcnow()
                                                         for g in self.generations.items)
                    if due:
                        self.activate_due_generations()
                except Exception as exc:  # the database may be down: try again next round
                    log.warning("boundary activation check failed (%s)", type(exc).__name__)

        with self._lock:
            if self._activator is None:
                self._stop_activator.clear()
                self._activator = threading.Thread(target=run, name="zonechief-generations", daemon=True)
                self._activator.start()

    def stop_activator(self) -> None:
        """Stop the activation checks."""
        t, self._activator = self._activator, None
        self._stop_activator.set()
        if t is not None:
            t.join(timeout=5)

    def start_dispatcher(self) -> None:
        """Deliver report events to webhook subscribers from this process (zonechief.dispatcher)."""
        from zonechief.dispatcher import Dispatcher

        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(lambda: self.db.outbox, self.category_names).start()

    def stop_dispatcher(self) -> None:
        """Stop delivering (attempts under way finish or their leases run out)."""
        d, self._dispatcher = self._dispatcher, None
        if d is not None:
            d.stop()

    def category_names(self) -> dict[str, str]:
        """Category code → name (the shipped categories do not change while running: built once)."""
        return self._category_names

    @cached_property
    def _category_names(self) -> dict[str, str]:
        c = self.categories
        return dict(zip(c["code"], c["name"]))

    @cached_property
    def media(self):
        """The media store of report photos: a folder (ZONECHIEF_MEDIA_DIR)."""
        from store.media import FolderMediaStore

        return FolderMediaStore(self.settings.media_dir)
