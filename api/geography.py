"""/v1 reference data: zones, villages, facilities (GeoJSON), the roster in force, report categories."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from api.deps import AtDep, IndexAtDep, IndexDep, ServicesDep
from api.errors import Problem
from gis.service_codes import UnknownServiceCode, resolve_service_code
from gis.zone_staff import zones_with_staff
from zonechief.qr import qr_png, qr_svg, report_url

GEOJSON = "application/geo+json"
GEOJSON_200 = {200: {"description": "GeoJSON", "content": {GEOJSON: {}}}}
QR_CACHE = {"Cache-Control": "public, max-age=3600"}  # a code changes only with the public URL or the code itself

router = APIRouter(prefix="/v1")


def geojson_response(gdf, drop=()) -> Response:
    """A GeoDataFrame as a GeoJSON FeatureCollection response."""
    return Response(gdf.drop(columns=list(drop), errors="ignore").to_json(ensure_ascii=False, drop_id=True),
                    media_type=GEOJSON)


def in_town(gdf, town: str | None):
    """Rows of a town, by name or code; all rows without one."""
    return gdf[(gdf.town == town) | (gdf.town_code == town)] if town else gdf


@router.get("/zones", tags=["geography"], summary="All zones as GeoJSON, with the chief in force", responses=GEOJSON_200)
def zones(index: IndexAtDep, at: AtDep, town: str | None = None):
    """Every zone (or a town's) of the boundaries in force at `at` (default now), with the chief and inspectors then."""
    return geojson_response(zones_with_staff(in_town(index.zones, town), index.roster, at))


@router.get("/zones/{zone_id}", tags=["geography"], summary="One zone as a GeoJSON Feature", responses=GEOJSON_200)
def zone(zone_id: str, index: IndexAtDep, at: AtDep):
    """One zone as of `at` (default now), with the chief and inspectors then."""
    z = index.zones[index.zones.zone_id == zone_id]
    if z.empty:
        raise Problem(404, f"no zone {zone_id!r}{' at that time' if at else ''}; GET /v1/zones lists them (e.g. ZMT-01, QS-01)")
    fc = json.loads(zones_with_staff(z, index.roster, at).to_json(ensure_ascii=False, drop_id=True))
    return JSONResponse(fc["features"][0], media_type=GEOJSON)


@router.get("/villages", tags=["geography"], summary="Village-level units as GeoJSON", responses=GEOJSON_200)
def villages(index: IndexAtDep, town: str | None = None):
    """Every village-level unit (or a town's) of the boundaries in force at `at` (default now), with its zone."""
    return geojson_response(in_town(index.units, town), drop=("zone_name",))


@router.get("/chiefs", tags=["roster"], summary="Chiefs and inspectors in force")
def chiefs(index: IndexDep, *, role: Annotated[str | None, Query(pattern="^(chief|inspector)$")] = None, at: AtDep):
    """The chiefs and inspectors in force at `at` (default now), with the zones each covers."""
    if index.roster is None:
        return []
    people = index.roster.people(role=role, at=at)
    return [{"id": r.person_id, "role": r.role, "name": r.name, "phone": r.phone, "zone_ids": r.zone_ids.split(";")}
            for r in people.itertuples()]


@router.get("/categories", tags=["reports"], summary="Report categories (GB/T 47678.5-2026 管理事项)")
def categories(services: ServicesDep):
    """The GB/T 47678.5-2026 categories a report is filed under."""
    return [{"code": r.code, "name": r.name, "major_code": r.major_code, "major_name": r.major_name}
            for r in services.categories.itertuples()]


@router.get("/facilities", tags=["geography"], summary="Facilities with city service codes (城市服务码)",
            responses=GEOJSON_200)
def facility_list(services: ServicesDep, kind: str | None = None):
    """Facilities (public toilets, service stations...) with their city service codes and zones."""
    f = services.facilities
    if kind:
        f = f[f.kind == kind]
    return geojson_response(f)


def _facility_report_url(services, service_code: str) -> str:
    """The report URL of the facility with this code (case, spaces and dashes do not matter), or 404."""
    try:
        code = resolve_service_code(service_code, services.facilities).candidates[0].matched
    except UnknownServiceCode as exc:
        raise Problem(404, f"no facility has service code {service_code!r}; GET /v1/facilities lists them "
                           f"(e.g. {exc.example})") from None
    return report_url(services.settings.public_url, code)  # the canonical code, whatever was asked


@router.get("/facilities/{service_code}/qr.svg", tags=["geography"], summary="A facility's QR code (SVG)",
            responses={200: {"description": "QR code of the facility's report page", "content": {"image/svg+xml": {}}}})
def facility_qr_svg(service_code: str, services: ServicesDep):
    """The QR code of the facility's report page, {public_url}/r/{service_code}, as SVG."""
    return Response(qr_svg(_facility_report_url(services, service_code)), media_type="image/svg+xml", headers=QR_CACHE)


@router.get("/facilities/{service_code}/qr.png", tags=["geography"], summary="A facility's QR code (PNG)",
            responses={200: {"description": "QR code of the facility's report page", "content": {"image/png": {}}}})
def facility_qr_png(service_code: str, services: ServicesDep,
                    scale: Annotated[int, Query(ge=1, le=40, description="Pixels per module")] = 8):
    """The QR code of the facility's report page, {public_url}/r/{service_code}, as PNG."""
    return Response(qr_png(_facility_report_url(services, service_code), scale=scale), media_type="image/png",
                    headers=QR_CACHE)
