"""Assembly: the one place where settings are read and the app's parts are built (once, lazily).

The API, the CLI and the notebooks get their zone index, facilities, categories and
report store from a `Services`; nothing below this module reads the environment.
"""
from __future__ import annotations

import threading
from functools import cached_property

from gis.categories import load_categories
from gis.facilities import load_facilities
from gis.lookup import ZoneIndex
from zonechief.settings import Settings, get_settings


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
        self._database_url = database_url  # None: the settings' store (Settings.store_url)
        # Re-entrant: opening the store reads the index under the same lock.
        self._lock = threading.RLock()
        self.reference_lock = threading.Lock()  # one reference-data import at a time in this process

    @property
    def index(self) -> ZoneIndex:
        """The zone index in force: from the configured boundaries until an import swaps it."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = load_index(self.settings)
        return self._index

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
        """The store, migrated. Not cached when opening fails (database down): the next request tries again."""
        if self._db is not None:
            return self._db
        from store.db import Database
        from zonechief.reference import load_from_db

        with self._lock:
            if self._db is None:
                db = Database(self._database_url or self.settings.store_url())
                try:
                    db.init(self.index, self.facilities, self.categories)
                    # Reference data imported earlier (zonechief.reference) is what is in force, not the shipped files.
                    stored = load_from_db(db, self.index.snap_tolerance_m, self.index.overlap_tolerance_m2)
                except BaseException:
                    db.engine.dispose()
                    raise
                if stored is not None:
                    self.swap_reference(*stored)
                self._db = db
        return self._db

    def swap_reference(self, index: ZoneIndex | None = None, facilities=None) -> None:
        """Put new reference data in force (call only after it is committed to the store)."""
        with self._lock:
            if index is not None:
                self._index = index
            if facilities is not None:
                self._facilities = facilities
            r = self.__dict__.get("reports")
            if r is not None:
                r.index, r.facilities = self.index, self.facilities

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
            # The class only: driver messages name hosts and ports.
            checks["database"] = {"status": "down", "error": type(exc).__name__}
        return checks

    @cached_property
    def reports(self):
        """The report service on the store; geocodes online with Amap when a key is set."""
        from zonechief.amap import AmapProvider
        from zonechief.reports import Reports

        provider = None
        if self.settings.amap_key:
            provider = AmapProvider(self.settings.amap_key, base_url=self.settings.amap_base_url)
        return Reports(self.db, self.index, self.facilities, self.categories, provider=provider,
                       min_confidence=self.settings.address_min_confidence)
