"""GET /v1/plan/stations: where to add stations (zonechief.planning), as JSON or GeoJSON for map layers."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import ServicesDep, TimeRangeDep
from api.maps import Categories, Statuses, Town, Zones, _filter
from zonechief.planning import plan_stations

router = APIRouter(tags=["planning"])
Model = Annotated[Literal["mclp", "pmedian", "lscp"],
                  Query(description="mclp: most demand within `radius` after adding `add`; pmedian: least mean "
                                    "distance after adding `add`; lscp: fewest stations putting all demand within `radius`")]


def station_plan(s, when, category, status, town, zone, model, add, radius, grid, time_limit):
    """The plan for these query parameters (shared by the JSON answer and /maps/stations)."""
    flt = _filter(s, when, category, status, town, zone)
    params = {"model": model, "add": add, "radius": radius, "grid_m": grid, "town": town,
              "since": when.since.isoformat() if when.since else None,
              "until": when.until.isoformat() if when.until else None,
              "category": list(flt.categories), "status": list(flt.statuses), "zone": list(flt.zone_ids),
              "time_limit": time_limit}
    return plan_stations(s.db, s.index, flt.conditions(s.index), flt.zone_scope(s.index), model=model, add=add,
                         radius=radius, grid_m=grid, time_limit=time_limit, parameters=params)


@router.get("/v1/plan/stations", summary="Where to add stations, and the report demand they reach (MCLP, p-median, LSCP)")
def plan_stations_api(s: ServicesDep, *, when: TimeRangeDep, model: Model = "mclp",
                      add: Annotated[int, Query(description="Stations to add to the existing ones (mclp, pmedian)")] = 2,
                      radius: Annotated[float, Query(description="Coverage radius in metres (mclp, lscp)")] = 1000.0,
                      grid: Annotated[float, Query(ge=25, le=5000, description="Demand and candidate grid cell (m)")] = 250.0,
                      time_limit: Annotated[float, Query(gt=0, le=120, description="Solver time limit (s)")] = 30.0,
                      category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                      format: Annotated[Literal["json", "geojson"], Query(
                          description="json: the answer; geojson: existing stations, proposed sites and uncovered "
                                      "demand cells as features with `role` (map layers)")] = "json"):
    """Add `add` stations to the existing ones (data/boundaries/stations.csv, positions illustrative).

    Demand: the reports matching the filters (as the maps), counted on a `grid` m grid in EPSG:4547;
    candidates: the grid cell centres inside the towns (or `town`/`zone`). Straight-line distances.
    The answer says the solver status, the gap, and whether the solution is proven optimal; bad input
    (add larger than the candidates, radius ≤ 0, no matching reports) is 422 with the reason.
    """
    p = station_plan(s, when, category, status, town, zone, model, add, radius, grid, time_limit)
    if format == "geojson":
        return JSONResponse(p.geojson(), media_type="application/geo+json")
    return p.to_dict()
