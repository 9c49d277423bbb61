"""Response models and request schemas, for the OpenAPI document."""
from __future__ import annotations

from pydantic import BaseModel


class PersonOut(BaseModel):
    """A chief or inspector."""
    id: str
    name: str
    phone: str


class Ref(BaseModel):
    """A zone: id and name."""
    id: str
    name: str


class VillageOut(BaseModel):
    """A village or community: NBS code and name."""
    code: str | None
    name: str | None


class TownOut(BaseModel):
    """A town or subdistrict: NBS code and name."""
    code: str | None
    name: str | None


class PointOut(BaseModel):
    """The point looked up, in the output CRS; null when unusable."""
    lon: float | None
    lat: float | None
    crs: str


class Query_(BaseModel):
    """The query as read: coordinates and their CRS."""
    lon: float
    lat: float
    crs: str


class LookupResult(BaseModel):
    """Who is responsible for a point."""
    query: Query_
    status: str  # inside | boundary | snapped | outside
    point: PointOut
    zone: Ref | None
    village: VillageOut | None
    town: TownOut | None
    chief: PersonOut | None
    inspectors: list[PersonOut]
    on_boundary: bool
    snapped: bool
    distance_m: float | None
    nearest_zone_id: str | None


_POINT = {"type": "object", "required": ["lon", "lat"],
          "properties": {"lon": {"type": "number"}, "lat": {"type": "number"},
                         "id": {"type": ["string", "integer", "null"]}}}
LOOKUP_BODY_SCHEMA = {
    "oneOf": [
        {"type": "array", "items": _POINT, "title": "list of points"},
        {"type": "object", "title": "points with a CRS", "required": ["points"],
         "properties": {"crs": {"type": "string", "example": "gcj02"}, "points": {"type": "array", "items": _POINT}}},
        {"type": "object", "title": "GeoJSON FeatureCollection of Points", "required": ["type", "features"],
         "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}}},
    ],
    "example": [{"id": "r1", "lon": 114.05, "lat": 23.06}, {"id": "r2", "lon": 114.12, "lat": 22.95}],
}
