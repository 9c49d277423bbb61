"""Facility service codes → place: the code printed on a facility's sign (public toilet,
城管驿站 ...), also when it arrives as a URL from a QR code.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, unquote, urlsplit

from gis.errors import ZonechiefError
from gis.gazetteer_text import none_if_blank
from gis.geocode_result import Candidate, GeocodeResult

__all__ = ["resolve_service_code", "UnknownServiceCode"]


class UnknownServiceCode(ZonechiefError, ValueError):
    """No facility has this service code."""

    def __init__(self, code, example: str):
        super().__init__(f"unknown service code {code!r}; a valid code looks like {example!r} "
                         "(printed on the facility's sign or encoded in its QR code)")
        self.code = code
        self.example = example


def _code_key(s) -> str:
    return re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", str(s)).upper())


def _code_parts(raw: str) -> list[str]:
    """The strings in `raw` that may be the code: itself, or for a URL its query values and last path segment."""
    s = unicodedata.normalize("NFKC", raw).strip()
    if not re.match(r"^[a-z][a-z0-9+.-]*://", s, re.I):
        return [s]
    u = urlsplit(s)
    q = parse_qsl(u.query, keep_blank_values=False)
    preferred = [v for k, v in q if k.lower() in ("code", "service_code", "servicecode", "sc", "c", "id")]
    parts = preferred + [v for _, v in q] + [unquote(seg) for seg in reversed(u.path.split("/")) if seg][:1]
    if u.fragment:
        parts.append(unquote(u.fragment))
    return parts


def resolve_service_code(code, facilities_gdf=None) -> GeocodeResult:
    """Facility position and zone for a service code (case, spaces and dashes do not matter).

    Also accepts a URL whose query (?code=...) or last path segment is the code.
    Raises UnknownServiceCode (a ValueError) when no facility has it.
    """
    if facilities_gdf is None:
        from gis.facilities import load_facilities

        facilities_gdf = load_facilities()
    gdf = facilities_gdf
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    codes = [str(c) for c in gdf["service_code"]]
    by_key = {_code_key(c): i for i, c in enumerate(codes)}
    example = sorted(codes)[0] if codes else "DGCS-441900112-WC001"
    hit = None
    if code is not None:
        for part in _code_parts(str(code)):
            k = _code_key(part)
            if k and k in by_key:
                hit = by_key[k]
                break
    if hit is None:
        raise UnknownServiceCode(code, example)
    row = gdf.iloc[hit]
    g = row.geometry
    p = g if g.geom_type == "Point" else g.representative_point()
    zone = none_if_blank(row.get("zone_id"))
    name = none_if_blank(row.get("name")) or str(row["facility_id"])
    cand = Candidate("facility", name, codes[hit], float(p.x), float(p.y), zone,
                     none_if_blank(row.get("village_code")), none_if_blank(row.get("town")), 1.0)
    return GeocodeResult("service_code", cand.lon, cand.lat, 1.0, False, [cand], zone, str(row["facility_id"]),
                         note=f"service code {codes[hit]} is facility {row['facility_id']} ({name})")

