"""FastAPI app: "who is responsible here?" over HTTP. Thin layer over gis."""
from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated

import pydantic_core
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.routing import Route

import zonechief
from gis import crs as gcrs
from gis.lookup import Assignment, ZoneIndex
from gis.points import coordinate_problem
from zonechief.settings import Settings

from api import middleware, problems
from api.admin import router as admin_router
from api.problems import Problem
from api.maps import index_page
from api.maps import router as maps_router
from api.ogc import router as ogc_router
from api.open311 import router as open311_router
from api.reports import router as reports_router
from api.schemas import LOOKUP_BODY_SCHEMA, LookupResult
from zonechief.services import Services

GEOJSON = "application/geo+json"
GEOJSON_200 = {200: {"description": "GeoJSON", "content": {GEOJSON: {}}}}
DESCRIPTION = """
Answers **"who is responsible here?"** for a coordinate in Dongguan's zone-chief
system (城管片长制): the zone, village/community, town, the zone chief (片长) and
patrol inspectors in force.

* Inputs name their coordinate system with `crs`: `wgs84` (GPS), `gcj02`
  (Amap/Tencent/WeChat), `bd09` (Baidu), `cgcs2000`, or any EPSG code
  (e.g. `EPSG:4547`). Outputs are WGS-84 unless `out_crs` says otherwise.
* Errors are RFC 9457 `application/problem+json`.
* The shipped village cells and zone groupings are **illustrative**; town
  outlines are approximate. Names and codes are official (NBS 2023).
"""


def person_json(p) -> dict | None:
    return None if p is None else {"id": p.person_id, "name": p.name, "phone": p.phone}


def assignment_json(a: Assignment, out_crs: str = "wgs84") -> dict:
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


def _crs_param(value: str) -> str:
    return gcrs.normalize_crs(value)  # UnknownCRSError → 400 problem


def _at_param(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Problem(400, f"at={value!r} is not an ISO 8601 date or time (e.g. 2025-07-01 or 2025-07-01T09:30:00+08:00)")


class LookupQuery(BaseModel):
    """The query parameters of GET /v1/lookup."""

    lon: float = Field(description="Longitude (or x for projected CRSs)", examples=[114.05])
    lat: float = Field(description="Latitude (or y)", examples=[23.06])
    crs: str = Field("wgs84", description="CRS of lon/lat: wgs84, gcj02, bd09, cgcs2000, EPSG:nnnn")
    out_crs: str = Field("wgs84", description="CRS of the returned point")
    at: str | None = Field(None, description="Roster date/time (ISO 8601); default now")


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
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)])


def geojson_response(gdf, drop=()) -> Response:
    return Response(gdf.drop(columns=list(drop), errors="ignore").to_json(ensure_ascii=False, drop_id=True),
                    media_type=GEOJSON)


def create_app(index: ZoneIndex | None = None, settings: Settings | None = None,
               database_url: str | None = None) -> FastAPI:
    """The app. The report store is opened (and migrated) on first use, or at startup by `serve`."""
    services = Services(settings, index, database_url)
    settings = services.settings
    # /docs is served from local files by middleware.install_docs (no CDN; works under the CSP).
    app = FastAPI(title="zonechief", version=zonechief.__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    problems.install(app)
    middleware.install(app, settings)
    middleware.install_docs(app)
    app.state.services = services
    app.include_router(reports_router)
    app.include_router(admin_router)
    app.include_router(open311_router)
    app.include_router(ogc_router)
    app.include_router(maps_router)
    app.add_api_route("/", index_page, include_in_schema=False)  # HTML index linking the maps and /docs

    def idx() -> ZoneIndex:
        return services.index

    def facilities():
        return services.facilities

    @app.get("/healthz", tags=["ops"], summary="Liveness and the status of each dependency",
             description="`checks` has one entry per dependency (zones_index, database) with its status. "
                         "503 with Retry-After when any is down.",
             responses={503: {"description": "A dependency is down", "content": {"application/json": {}}}})
    def healthz():
        checks = services.health()
        ok = all(c["status"] == "ok" for c in checks.values())
        zi = checks["zones_index"]
        body = {"status": "ok" if ok else "unavailable", "version": zonechief.__version__, "zones": zi.get("zones"),
                "villages": zi.get("villages"), "roster": zi.get("roster"), "checks": checks}
        if ok:
            return body
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(problems.DB_RETRY_AFTER_S)})

    @app.get("/v1/lookup", response_model=LookupResult, tags=["lookup"],
             summary="Who is responsible for this point?",
             openapi_extra={"parameters": _query_parameters(LookupQuery)}, responses={422: {"description": "Invalid request"}})
    # The lookup is a few us of CPU and no I/O, so: async (a thread-pool hop costs ~60 us), parameters
    # read in one pydantic call (same errors as Query() parameters, ~35 us less) and the JSON written
    # directly (the bytes response_model gives, a third of the time). Served by the route below.
    async def lookup(request: Request):
        q = _lookup_query(request)
        c, oc, when = _crs_param(q.crs), _crs_param(q.out_crs), _at_param(q.at)
        a = idx().lookup(q.lon, q.lat, crs=c, at=when)
        body = {"query": {"lon": q.lon, "lat": q.lat, "crs": c}, **assignment_json(a, oc)}
        return Response(pydantic_core.to_json(body), media_type="application/json")

    # Served by a plain Starlette route running the same function, matched before all others: passing the
    # included routers costs ~80 us a request and FastAPI's per-request machinery ~20 us, against a few us
    # for the lookup. The FastAPI route above stays for the OpenAPI document (BENCHMARKS.md).
    served = Route("/v1/lookup", lookup, methods=["GET"])
    served.methods.discard("HEAD")  # not served before either
    app.router.routes.insert(0, served)

    @app.post("/v1/lookup", tags=["lookup"], summary="Batch lookup",
              description=f"Body: a JSON list of points `[{{\"lon\":..,\"lat\":..,\"id\":..}}]`, an object "
                          f"`{{\"crs\":\"gcj02\",\"points\":[...]}}`, or a GeoJSON FeatureCollection of Points "
                          f"(answered as a FeatureCollection). At most {settings.max_batch} points.",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": LOOKUP_BODY_SCHEMA}}}},
              responses={200: {"description": "Results; a FeatureCollection in, a FeatureCollection out",
                               "content": {"application/json": {}, GEOJSON: {}}}})
    async def lookup_batch(request: Request,
                           crs: Annotated[str, Query(description="CRS of the points (a body 'crs' wins)")] = "wgs84",
                           out_crs: str = "wgs84", at: str | None = None):
        max_bytes = middleware.batch_body_limit(settings)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise Problem(413, f"request body of {declared} bytes exceeds the limit of {max_bytes}; send at most {settings.max_batch} points per request")
        raw = await request.body()
        if len(raw) > max_bytes:
            raise Problem(413, f"request body exceeds the limit of {max_bytes} bytes; send at most {settings.max_batch} points per request")
        try:
            body = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and the int-digits limit
            raise Problem(400, f"the request body is not valid JSON: {exc}")
        except RecursionError:  # [[[[...]]]] thousands deep
            raise Problem(400, "the request body is nested too deeply to be a batch of points")
        ids, xs, ys, props, crs_name, as_fc = parse_batch(body, crs)
        if len(xs) > settings.max_batch:
            raise Problem(413, f"batch of {len(xs)} points exceeds the maximum of {settings.max_batch}; split it into smaller requests")
        c, oc, when = _crs_param(crs_name), _crs_param(out_crs), _at_param(at)
        bad = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            msg = coordinate_problem(x, y, c)
            if msg:
                bad.append({"index": i, "id": ids[i], "message": msg})
        if bad:
            first = "; ".join(f"points[{b['index']}]: {b['message']}" for b in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise Problem(422, f"{len(bad)} point(s) cannot be used: {first}{more}", title="Invalid coordinates", errors=bad[:100])
        results = [assignment_json(a, oc) for a in idx().lookup_many(xs, ys, crs=c, at=when)]
        if as_fc:
            feats = []
            for p, r in zip(props, results):
                pt = r["point"]
                geom = {"type": "Point", "coordinates": [pt["lon"], pt["lat"]]} if pt["lon"] is not None else None
                feats.append({"type": "Feature", "geometry": geom, "properties": {**p, "zonechief": r}})
            return JSONResponse({"type": "FeatureCollection", "features": feats}, media_type=GEOJSON)
        return {"crs": c, "out_crs": oc, "count": len(results),
                "results": [{"id": i, **r} for i, r in zip(ids, results)]}

    @app.get("/v1/zones", tags=["geography"], summary="All zones as GeoJSON, with the chief in force",
             responses=GEOJSON_200)
    def zones(town: str | None = None):
        return geojson_response(zones_frame(idx(), town))

    @app.get("/v1/zones/{zone_id}", tags=["geography"], summary="One zone as a GeoJSON Feature",
             responses=GEOJSON_200)
    def zone(zone_id: str):
        z = zones_frame(idx(), None)
        z = z[z.zone_id == zone_id]
        if z.empty:
            raise Problem(404, f"no zone {zone_id!r}; GET /v1/zones lists them (e.g. ZMT-01, QS-01)")
        fc = json.loads(z.to_json(ensure_ascii=False, drop_id=True))
        return JSONResponse(fc["features"][0], media_type=GEOJSON)

    @app.get("/v1/villages", tags=["geography"], summary="Village-level units as GeoJSON",
             responses=GEOJSON_200)
    def villages(town: str | None = None):
        u = idx().units
        if town:
            u = u[(u.town == town) | (u.town_code == town)]
        return geojson_response(u, drop=("zone_name",))

    @app.get("/v1/chiefs", tags=["roster"], summary="Chiefs and inspectors in force")
    def chiefs(role: str | None = Query(None, pattern="^(chief|inspector)$"), at: str | None = None):
        i = idx()
        if i.roster is None:
            return []
        people = i.roster.people(role=role, at=_at_param(at))
        return [{"id": r.person_id, "role": r.role, "name": r.name, "phone": r.phone, "zone_ids": r.zone_ids.split(";")}
                for r in people.itertuples()]

    @app.get("/v1/categories", tags=["reports"], summary="Report categories (GB/T 47678.5-2026 管理事项)")
    def categories():
        c = services.categories
        return [{"code": r.code, "name": r.name, "major_code": r.major_code, "major_name": r.major_name}
                for r in c.itertuples()]

    @app.get("/v1/facilities", tags=["geography"], summary="Facilities with city service codes (城市服务码)",
             responses=GEOJSON_200)
    def facility_list(kind: str | None = None):
        f = facilities()
        if kind:
            f = f[f.kind == kind]
        return geojson_response(f)

    problems.document_problems(app)
    return app


def zones_frame(index: ZoneIndex, town: str | None):
    z = index.zones.copy()
    if town:
        z = z[(z.town == town) | (z.town_code == town)]
    chiefs = index.roster.chiefs_by_zone() if index.roster else {}
    insp = index.roster.inspectors_by_zone() if index.roster else {}
    z["chief_id"] = [chiefs[k].person_id if k in chiefs else None for k in z.zone_id]
    z["chief_name"] = [chiefs[k].name if k in chiefs else None for k in z.zone_id]
    z["inspector_ids"] = [";".join(p.person_id for p in insp.get(k, [])) for k in z.zone_id]
    return z


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
        raise Problem(422, f"{where} is far too large to be a coordinate ({len(str(abs(v)))}-digit integer)")
