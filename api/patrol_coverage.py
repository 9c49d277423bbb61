"""GET /v1/patrols/coverage: patrol coverage vs report demand (staff; issue 17).

JSON (default): summary, definitions (every measure and threshold, with the parameters in force),
zones, cells (those with reports, patrol time or a hot spot), people, teams and windows.
``format=geojson``: one layer as a FeatureCollection (WGS-84) for maps and the dashboard:
``layer=cells`` (default; class, numbers), ``tracks`` (one simplified line per segment) or ``stops``.
Without since/until: the 7 days before until (default: now).
"""
from __future__ import annotations

import json
from typing import Annotated, Literal

import shapely
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.auth import Caller
from api.deps import ServicesDep, TimeRange, TimeRangeDep, require
from api.maps import Categories, Town, Zones, _split
from zonechief.patrol_coverage import CoverageInputError, CoverageRequest, json_records, patrol_coverage

router = APIRouter(prefix="/v1", tags=["patrols"])
Staff = Annotated[Caller, Depends(require("staff"))]
GEOJSON = "application/geo+json"


def coverage_request(when: TimeRange, town, zone, team, category, person) -> CoverageRequest:
    """The request of the query parameters; open times become the 7 days before until (or now)."""
    return CoverageRequest.of(when.since, when.until, town=town or None, zone_ids=_split(zone), team=team or None,
                              categories=_split(category), person_ids=_split(person))


def _params(cell_m: float, permutations: int):
    from gis.patrol_coverage import CoverageParams  # numba: loaded on the first request, not at start

    try:
        return CoverageParams(cell_m=cell_m, permutations=permutations)
    except ValueError as e:
        raise CoverageInputError(str(e)) from None


def feature_collection(gdf) -> dict:
    """A GeoDataFrame (WGS-84) as a GeoJSON FeatureCollection with JSON-safe properties."""
    geoms = [json.loads(g) if g else None for g in shapely.to_geojson(gdf.geometry.values)] if len(gdf) else []
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": g, "properties": p} for g, p in zip(geoms, json_records(gdf))]}


def active_cells(cells):
    """The cells worth sending: with reports, patrol time or a hot spot."""
    return cells[(cells["reports"] > 0) | (cells["dwell_min"] > 0) | cells["hot_spot"]]


@router.get("/patrols/coverage", summary="Patrol coverage vs report demand per zone, hot-spot cell, team and person (staff)",
            responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}},
                             "description": "JSON tables, or with format=geojson one layer as GeoJSON"}})
def coverage_route(services: ServicesDep, caller: Staff, when: TimeRangeDep, town: Town = None, zone: Zones = None,
                   team: Annotated[str | None, Query(max_length=32, description="A team id, e.g. QS-INSP")] = None,
                   category: Categories = None,
                   person_id: Annotated[list[str] | None, Query(description="Person id(s); repeat for several")] = None,
                   cell_m: Annotated[float, Query(ge=100, le=2000, description="Hot-spot grid cell in metres")] = 250,
                   permutations: Annotated[int, Query(ge=99, le=9999, description="Gi* permutations")] = 9999,
                   format: Annotated[Literal["json", "geojson"], Query(description="json tables, or one geojson layer")] = "json",
                   layer: Annotated[Literal["cells", "tracks", "stops"], Query(description="the geojson layer")] = "cells"):
    """Visits, dwell, Koper dose share, demand within 200 m and hours since the last visit (module docstring)."""
    known = set(services.categories["code"])
    bad = [c for c in _split(category) if c not in known]
    if bad:
        raise CoverageInputError(f"unknown category {', '.join(bad)}; GET /v1/categories lists the codes")
    req = coverage_request(when, town, zone, team, category, person_id)
    cov = patrol_coverage(services.db, services.index, req, _params(cell_m, permutations))
    if format == "geojson":
        gdf = {"cells": lambda: active_cells(cov.cells), "tracks": lambda: cov.tracks, "stops": lambda: cov.stops}[layer]()
        return JSONResponse(feature_collection(gdf), media_type=GEOJSON)
    return {"summary": cov.summary, "definitions": cov.definitions(), "zones": json_records(cov.zones),
            "cells": json_records(active_cells(cov.cells)), "people": json_records(cov.people),
            "teams": json_records(cov.teams), "windows": json_records(cov.windows)}
