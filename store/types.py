"""A geometry column that is PostGIS `geometry(<type>, 4326)` on PostgreSQL and WKB bytes elsewhere.

The embedded SQLite default has no spatial extension; it keeps the same data
as WKB so that both stores hold and return identical shapely geometries.
"""
from __future__ import annotations

from datetime import timezone

import shapely
from geoalchemy2 import Geometry
from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import to_shape
from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.types import TypeDecorator


class Geom(TypeDecorator):
    """A shapely geometry column: PostGIS geometry(<type>, srid) on PostgreSQL, WKB bytes elsewhere."""

    impl = LargeBinary
    cache_ok = True
    # Attributes geoalchemy2's DDL hooks read; the GiST index is declared explicitly.
    spatial_index = False
    use_N_D_index = False
    use_typmod = None
    dimension = 2
    nullable = True

    def __init__(self, geometry_type: str = "GEOMETRY", srid: int = 4326):
        super().__init__()
        self.geometry_type = geometry_type
        self.srid = srid

    def load_dialect_impl(self, dialect):
        """PostGIS geometry on PostgreSQL (and for geoalchemy2's probe), plain bytes elsewhere."""
        # geoalchemy2 probes with dialect=None to find spatial columns.
        if dialect is None or dialect.name == "postgresql":
            g = Geometry(self.geometry_type, srid=self.srid, spatial_index=False)
            return g if dialect is None else dialect.type_descriptor(g)
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value, dialect):
        """A shapely geometry as stored: a WKB element with the SRID on PostGIS, WKB bytes elsewhere."""
        if value is None:
            return None
        if dialect.name == "postgresql":
            return WKBElement(shapely.to_wkb(value), srid=self.srid)
        return shapely.to_wkb(value)

    def process_result_value(self, value, dialect):
        """The stored value back as a shapely geometry."""
        if value is None:
            return None
        if dialect.name == "postgresql":
            return to_shape(value)
        return shapely.from_wkb(bytes(value))


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes in, UTC-aware datetimes out, on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """An aware datetime as UTC (without tzinfo on SQLite, which cannot keep it); a naive one is refused."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass a timezone-aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        """A UTC-aware datetime, whatever the backend returned."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
