"""/v1/lookup: who is responsible for a point, one (GET) or a batch (POST)."""
from __future__ import annotations

import json
import math
from typing import Annotated

import pydantic_core
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from api.deps import AT_DOC, instant, services_of
from api.errors import Problem
from api.schemas import LOOKUP_BODY_SCHEMA, LookupResult
from gis import crs as gcrs
from gis.lookup import Assignment
from gis.points import check_placed, coordinate_problem, misplaced_problems
from zonechief.settings import Settings

GEOJSON = "application/geo+json"


def person_json(p) -> dict | None:
    """A roster person as JSON; None stays None."""
    return None if p is None else {"id": p.person_id, "name": p.name, "phone": p.phone}


def assignment_json(a: Assignment, out_crs: str = "wgs84") -> dict:
    """An Assignment as the JSON of /v1/lookup, its point in `out_crs`."""
    lon, lat = a.lon, a.lat
    if out_crs != "wgs84" and math.isfinite(lon):
        x, y = gcrs.from_wgs84(lon, lat, out_crs)
        lon, lat = float(x), float(y)
    return {
        "status": a.status,
        "point": {"lon": lon if math.isfinite(lon) else None, "lat": lat if math.isfinite(lat) else None, "crs": out_crs},
        "zone": {"id": a.zone_id, "name": a.zone_name} if a.zone_id else None,
        "village": {"code": a.village_code, "name": a.village_name} if a.village_code else None,
        "town": {"code": a.town_code, "name": a.town} if a.town else None,
        "chief": person_json(a.chief),
        "inspectors": [person_json(p) for p in a.inspectors],
        "on_boundary": a.on_boundary,
        "snapped": a.snapped,
        "distance_m": a.distance_m if math.isfinite(a.distance_m) else None,
        "nearest_zone_id": a.nearest_zone_id,
    }


def crs_param(value: str) -> str:
    """A CRS parameter normalized; an unknown CRS is a 400."""
    return gcrs.normalize_crs(value)  # UnknownCRSError → 400 problem


# ------------------------------------------------------------------ GET
class LookupQuery(BaseModel):
    """The query parameters of GET /v1/lookup."""

    lon: float = Field(description="Longitude (or x for projected CRSs)", examples=[114.05])
    lat: float = Field(description="Latitude (or y)", examples=[23.06])
    crs: str = Field("wgs84", description="CRS of lon/lat: wgs84, gcj02, bd09, cgcs2000, EPSG:nnnn")
    out_crs: str = Field("wgs84", description="CRS of the returned point")
    at: str | None = Field(None, description=AT_DOC)


def _query_parameters(model) -> list[dict]:
    """OpenAPI query parameters for a model's fields, as FastAPI writes them for Query() parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [{"name": n, "in": "query", "required": n in required, "schema": f, "description": f["description"]}
            for n, f in schema["properties"].items()]


def _lookup_query(request: Request) -> LookupQuery:
    """The same validation, errors included, as declaring each field with Query(): one pydantic call."""
    try:
        return LookupQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]) from None


# The lookup is a few us of CPU and no I/O, so: async (a thread-pool hop costs ~60 us), parameters
# read in one pydantic call (same errors as Query() parameters, ~35 us less) and the JSON written
# directly (the bytes response_model gives, a third of the time). Served by install_fast_lookup.
async def lookup(request: Request):
    """The zone, village, town, chief and inspectors responsible for one point."""
    q = _lookup_query(request)
    c, oc, when = crs_param(q.crs), crs_param(q.out_crs), instant(q.at, "at")
    services = services_of(request)
    # As of `at`: the boundaries then in force (read from the store once, in a thread), with the roster of that day.
    index = services.index_at_nowait(when) or await run_in_threadpool(services.index_at, when)
    a = index.lookup(q.lon, q.lat, crs=c, at=when)
    check_placed(index, q.lon, q.lat, c, a.lon, a.lat)  # degrees sent as metres: 422, not "outside"
    body = {"query": {"lon": q.lon, "lat": q.lat, "crs": c}, **assignment_json(a, oc)}
    return Response(pydantic_core.to_json(body), media_type="application/json")


def install_fast_lookup(app: FastAPI) -> None:
    """Serve GET /v1/lookup from a plain Starlette route running `lookup`, matched before all others.

    Passing the included routers costs ~80 us a request and FastAPI's per-request machinery ~20 us,
    against a few us for the lookup. The FastAPI route stays for the OpenAPI document (BENCHMARKS.md).
    """
    served = Route("/v1/lookup", lookup, methods=["GET"])
    served.methods.discard("HEAD")  # not served before either
    app.router.routes.insert(0, served)


# ------------------------------------------------------------------ POST
async def lookup_batch(request: Request,
                       crs: Annotated[str, Query(description="CRS of the points (a body 'crs' wins)")] = "wgs84",
                       out_crs: str = "wgs84", at: Annotated[str | None, Query(description=AT_DOC)] = None):
    """The same as GET /v1/lookup, for many points at once."""
    # The body size is limited by api/middleware.py (body_limit); here only the number of points.
    services = services_of(request)
    max_batch = services.settings.max_batch
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and the int-digits limit
        raise Problem(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # [[[[...]]]] thousands deep
        raise Problem(400, "the request body is nested too deeply to be a batch of points") from None
    ids, xs, ys, props, crs_name, as_fc = parse_batch(body, crs)
    if len(xs) > max_batch:
        raise Problem(413, f"batch of {len(xs)} points exceeds the maximum of {max_batch}; split it into smaller requests")
    c, oc, when = crs_param(crs_name), crs_param(out_crs), instant(at, "at")
    bad = []
    far = misplaced_problems(services.index, xs, ys, c)
    for i, (x, y) in enumerate(zip(xs, ys)):
        msg = coordinate_problem(x, y, c) or (far[i] if far is not None else None)
        if msg:
            bad.append({"index": i, "id": ids[i], "message": msg})
    if bad:
        first = "; ".join(f"points[{b['index']}]: {b['message']}" for b in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise Problem(422, f"{len(bad)} point(s) cannot be used: {first}{more}", title="Invalid coordinates", errors=bad[:100])
    index = services.index_at_nowait(when) or await run_in_threadpool(services.index_at, when)
    results = [assignment_json(a, oc) for a in index.lookup_many(xs, ys, crs=c, at=when)]
    if as_fc:
        feats = []
        for p, r in zip(props, results):
            pt = r["point"]
            geom = {"type": "Point", "coordinates": [pt["lon"], pt["lat"]]} if pt["lon"] is not None else None
            feats.append({"type": "Feature", "geometry": geom, "properties": {**p, "zonechief": r}})
        return JSONResponse({"type": "FeatureCollection", "features": feats}, media_type=GEOJSON)
    return {"crs": c, "out_crs": oc, "count": len(results),
            "results": [{"id": i, **r} for i, r in zip(ids, results)]}


def parse_batch(body, default_crs: str):
    """Accept a list of points, {"crs", "points"}, or a GeoJSON FeatureCollection."""
    as_fc = False
    crs = default_crs
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        as_fc = True
        feats = body.get("features")
        if not isinstance(feats, list):
            raise Problem(422, "a FeatureCollection needs a 'features' list")
        ids, xs, ys, props = [], [], [], []
        for i, f in enumerate(feats):
            g = (f or {}).get("geometry") if isinstance(f, dict) else None
            if not isinstance(g, dict) or g.get("type") != "Point" or not isinstance(g.get("coordinates"), list) or len(g["coordinates"]) < 2:
                raise Problem(422, f"features[{i}] must have a Point geometry with [lon, lat] coordinates")
            x, y = _num(g["coordinates"][0], f"features[{i}].geometry.coordinates[0]"), _num(g["coordinates"][1], f"features[{i}].geometry.coordinates[1]")
            ids.append(f.get("id"))
            xs.append(x)
            ys.append(y)
            p = f.get("properties")
            if p is not None and not isinstance(p, dict):
                raise Problem(422, f"features[{i}].properties must be an object or null")
            props.append(p or {})
        return ids, xs, ys, props, crs, as_fc
    if isinstance(body, dict) and "points" in body:
        crs = body.get("crs") or default_crs
        if not isinstance(crs, str):
            raise Problem(422, "'crs' must be a string such as 'gcj02'")
        body = body["points"]
    if not isinstance(body, list):
        raise Problem(422, "the body must be a JSON list of points, an object with 'points', or a GeoJSON FeatureCollection")
    ids, xs, ys = [], [], []
    for i, p in enumerate(body):
        if isinstance(p, dict):
            missing = [k for k in ("lon", "lat") if k not in p]
            if missing:
                raise Problem(422, f"points[{i}] is missing {' and '.join(missing)}")
            ids.append(p.get("id"))
            xs.append(_num(p["lon"], f"points[{i}].lon"))
            ys.append(_num(p["lat"], f"points[{i}].lat"))
        elif isinstance(p, list) and len(p) == 2:
            ids.append(None)
            xs.append(_num(p[0], f"points[{i}][0]"))
            ys.append(_num(p[1], f"points[{i}][1]"))
        else:
            raise Problem(422, f"points[{i}] must be an object {{\"lon\":..,\"lat\":..}} or a [lon, lat] pair")
    return ids, xs, ys, [{}] * len(xs), crs, as_fc


def _num(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Problem(422, f"{where} must be a number, got {json.dumps(v, ensure_ascii=False)[:40]}")
    try:
        return float(v)
    except OverflowError:  # a JSON integer too large for a float
        raise Problem(422, f"{where} is far too large to be a coordinate ({len(str(abs(v)))}-digit integer)") from None


# ------------------------------------------------------------------ the router
def router(settings: Settings) -> APIRouter:
    """The lookup routes; the batch limit in the POST description is the configured one."""
    r = APIRouter(tags=["lookup"])
    r.add_api_route("/v1/lookup", lookup, methods=["GET"], response_model=LookupResult,
                    summary="Who is responsible for this point?",
                    openapi_extra={"parameters": _query_parameters(LookupQuery)},
                    responses={422: {"description": "Invalid request"}})
    r.add_api_route(
        "/v1/lookup", lookup_batch, methods=["POST"], summary="Batch lookup",
        description=f"Body: a JSON list of points `[{{\"lon\":..,\"lat\":..,\"id\":..}}]`, an object "
                    f"`{{\"crs\":\"gcj02\",\"points\":[...]}}`, or a GeoJSON FeatureCollection of Points "
                    f"(answered as a FeatureCollection). At most {settings.max_batch} points.",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": LOOKUP_BODY_SCHEMA}}}},
        responses={200: {"description": "Results; a FeatureCollection in, a FeatureCollection out",
                         "content": {"application/json": {}, GEOJSON: {}}}})
    return r
