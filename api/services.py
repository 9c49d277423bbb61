"""What the app serves from: the zone index, facilities, categories, the report store. Built once, lazily."""
from __future__ import annotations

import threading
from functools import cached_property

from gis.categories import load_categories
from gis.facilities import load_facilities
from gis.lookup import ZoneIndex
from gis.settings import Settings


class Services:
    def __init__(self, settings: Settings, index: ZoneIndex | None = None, database_url: str | None = None):
        self.settings = settings
        self._index = index
        self._database_url = database_url or settings.database_url
        self._lock = threading.Lock()

    @cached_property
    def index(self) -> ZoneIndex:
        return self._index or ZoneIndex.load()

    @cached_property
    def facilities(self):
        return load_facilities()

    @cached_property
    def categories(self):
        return load_categories()

    @cached_property
    def db(self):
        from gis.store.db import Database

        with self._lock:
            return Database(self._database_url).init(self.index, self.facilities, self.categories)

    @cached_property
    def reports(self):
        from gis.geocode import AmapProvider
        from gis.reports import Reports

        provider = None
        if self.settings.amap_key:
            provider = AmapProvider(self.settings.amap_key, base_url=self.settings.amap_base_url)
        return Reports(self.db, self.index, self.facilities, self.categories, provider=provider,
                       min_confidence=self.settings.address_min_confidence)
