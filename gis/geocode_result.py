"""What every way of locating a citizen's input answers: a GeocodeResult with its Candidates.

The paths that produce one: ``gis.gazetteer.geocode_address`` (free text),
``gis.service_codes.resolve_service_code`` (a facility's code or QR URL) and
``gis.points.geocode_coordinates`` (coordinates in any CRS).

Nothing here decides the final zone: ZoneIndex does that from the position.
The zone_id in a result is a hint, and ``needs_review`` says when a person
should look before the report is dispatched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("facility", "landmark", "road", "village", "town")


@dataclass
class Candidate:
    """One place the text may refer to. lon/lat are WGS-84.

    zone_id is None when the place spans several zones (a town, a long road).
    """

    kind: str
    name: str
    matched: str
    lon: float
    lat: float
    zone_id: str | None = None
    village_code: str | None = None
    town: str | None = None
    score: float = 0.0


@dataclass
class GeocodeResult:
    """The answer for one input; lon/lat are WGS-84, None when unresolved."""

    method: str
    lon: float | None
    lat: float | None
    confidence: float
    needs_review: bool
    candidates: list[Candidate] = field(default_factory=list)
    zone_id: str | None = None
    facility_id: str | None = None
    note: str = ""
