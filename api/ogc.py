"""OGC API – Features, Part 1 (Core, GeoJSON, OpenAPI 3.0) at /ogc.

Collections: zones, villages and facilities from the in-memory index, and reports
from the store (public fields only: no reporter name or phone). A `limit` above
the maximum is clamped, not rejected: clients such as GDAL ask for more.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import shapely
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep, parse_bbox
from api.errors import Problem
from gis.crs import quoted
from gis.localtime import LOCAL_NAME, is_bare_date, parse_instant
from gis.zone_staff import zones_with_staff
from zonechief.reports import NotFound

PREFIX = "/ogc"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_NAMES = {CRS84, CRS84.replace("http://", "https://"), "[OGC:CRS84]"}
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
DEFAULT_LIMIT = 100
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)
MAX_LIMIT = 1000

router = APIRouter(prefix=PREFIX, tags=["ogc"])


@dataclass(frozen=True)
class Collection:
    """A feature collection: an in-memory frame, or the reports in the store."""
    id: str
    title: str
    description: str
    key: str | None  # id column of an in-memory frame; None for reports (from the store)
    frame: Callable | None = None


def _zones(services, at=None):
    index = services.index_at(at)
    return zones_with_staff(index.zones, index.roster, at)


def _villages(services, at=None):
    return services.index_at(at).units.drop(columns=["zone_name"], errors="ignore")


def _facilities(services, at=None):
    return services.facilities


COLLECTIONS = {c.id: c for c in [
    Collection("zones", "Zones (片区)", "Zone-chief zones with the chief in force", "zone_id", _zones),
    Collection("villages", "Villages and communities (村/社区)", "Village-level units and their zone", "unit_id", _villages),
    Collection("facilities", "Facilities (城市服务码)", "Facilities carrying city service codes", "facility_id", _facilities),
    Collection("reports", "Reports", "Citizen and staff reports: public fields only, no personal data", None),
]}


# ------------------------------------------------------------------ helpers
def _json(body, media_type: str = JSON, status: int = 200) -> JSONResponse:
    headers = {"Content-Crs": f"<{CRS84}>"} if media_type == GEOJSON else None
    return JSONResponse(body, status_code=status, media_type=media_type, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    d = {"href": href, "rel": rel, "type": type_}
    if title:
        d["title"] = title
    return d


def _check_f(request: Request, allowed=("json", "geojson")) -> None:
    f = request.query_params.get("f")
    if f is not None and f not in allowed:
        raise Problem(400, f"f={f!r} is not offered; use f=json (the default)")


def _check_crs(request: Request, names=("crs",)) -> None:
    """OGC API Part 2 parameters naming a CRS: only CRS84 is offered (GDAL sends it anyway)."""
    for name in names:
        value = request.query_params.get(name)
        if value not in (None, *CRS84_NAMES):
            raise Problem(400, f"{name}={quoted(value)} is not offered; only {CRS84}")


def _collection(cid: str) -> Collection:
    c = COLLECTIONS.get(cid)
    if c is None:
        raise Problem(404, f"no collection {cid!r}; GET {PREFIX}/collections lists {', '.join(COLLECTIONS)}")
    return c


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise Problem(400, f"{name}={text!r} must be an integer") from None


def _instant(text: str, end: bool) -> datetime | None:
    """One bound under the time rule (gis.localtime); RFC 3339 date-times need their offset."""
    if text in ("", ".."):
        return None
    t = parse_instant(text, end=end, name="datetime", require_offset=True)
    # No report predates 1900 or follows 3000: clamping changes no answer and keeps clear of datetime's limits.
    t = min(max(t, EARLIEST), LATEST)
    if end and not is_bare_date(text.strip()):
        t += timedelta(microseconds=1)  # an end date-time is inclusive: [start, end]
    return t


def _at(q) -> datetime | None:
    """The `at` parameter (zones, villages): an instant under the OGC rule (an offset required), or None."""
    if not q.get("at"):
        return None
    return min(max(parse_instant(q["at"], name="at", require_offset=True), EARLIEST), LATEST)


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """datetime=instant, start/end, ../end or start/.. → [since, until)."""
    if "/" in text:
        a, b = text.split("/", 1)
        since, until = _instant(a, False), _instant(b, True)
        if since is None and until is None:
            raise Problem(400, "datetime=../.. has no bound")
        if since and until and until <= since:
            raise Problem(400, f"datetime={text!r}: the end is before the start")
        return since, until
    return _instant(text, False), _instant(text, True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------ features
def _frame_features(gdf, key: str) -> list[dict]:
    if gdf.empty:
        return []
    fc = json.loads(gdf.set_index(gdf[key].astype(str)).to_json(ensure_ascii=False, na="null"))
    return fc["features"]


def _report_feature(r, categories: dict) -> dict:
    g = r.geom
    return {"type": "Feature", "id": r.id,
            "geometry": {"type": "Point", "coordinates": [g.x, g.y]} if g is not None else None,
            "properties": {
                # Public fields only: reporter name and phone never leave the store here.
                "report_id": r.id, "category": r.category, "category_name": categories.get(r.category),
                "status": r.status, "source": r.source, "description": r.description,
                "zone_id": r.zone_id, "village_code": r.village_code, "chief_id": r.chief_id,
                "needs_review": r.needs_review, "geocode_method": r.geocode_method,
                "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
                "photo_url": r.photo_url}}


def _categories(services) -> dict:
    c = services.categories
    return dict(zip(c.code, c.name))


def _extent(services, c: Collection) -> list[float]:
    # Reports lie in the zones (those outside carry no zone), so the zones' bounds stand for them.
    gdf = c.frame(services) if c.frame else services.index.zones
    return [float(v) for v in gdf.total_bounds]


def _collection_json(request: Request, services, c: Collection) -> dict:
    base = f"{_base(request)}{PREFIX}/collections/{c.id}"
    return {
        "id": c.id, "title": c.title, "description": c.description, "itemType": "feature",
        "links": [_link(base, "self", JSON, "this collection"),
                  _link(f"{base}/items", "items", GEOJSON, "the features")],
        "extent": {"spatial": {"bbox": [_extent(services, c)], "crs": CRS84}},
        "crs": [CRS84], "storageCrs": CRS84,
    }


# ------------------------------------------------------------------ routes
@router.get("", summary="OGC API – Features landing page")
def landing(request: Request):
    """The landing page: links to the API definition, conformance and collections."""
    _check_f(request, ("json",))
    b = _base(request)
    return _json({
        "title": "zonechief OGC API – Features",
        "description": "Zones, villages, facilities and reports of the Dongguan zone-chief system (城管片长制)",
        "links": [_link(f"{b}{PREFIX}", "self", JSON, "this document"),
                  _link(f"{b}/openapi.json", "service-desc", OPENAPI, "the API definition"),
                  _link(f"{b}/docs", "service-doc", "text/html", "the API documentation"),
                  _link(f"{b}{PREFIX}/conformance", "conformance", JSON, "conformance classes"),
                  _link(f"{b}{PREFIX}/collections", "data", JSON, "the collections")],
    })


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request):
    """The conformance classes this service implements."""
    _check_f(request, ("json",))
    return _json({"conformsTo": CONFORMANCE})


@router.get("/collections", summary="Feature collections")
def collections(request: Request, services: ServicesDep):
    """Every feature collection, with its extent."""
    _check_f(request, ("json",))
    b = f"{_base(request)}{PREFIX}/collections"
    return _json({"links": [_link(b, "self", JSON, "this document")],
                  "collections": [_collection_json(request, services, c) for c in COLLECTIONS.values()]})


@router.get("/collections/{collection_id}", summary="One feature collection")
def collection(collection_id: str, request: Request, services: ServicesDep):
    """One feature collection, with its extent."""
    _check_f(request, ("json",))
    return _json(_collection_json(request, services, _collection(collection_id)))


FEATURE_SCHEMA = {"type": "object", "required": ["type", "geometry", "properties"],
                  "properties": {"type": {"enum": ["Feature"]}, "id": {"type": ["string", "integer"]},
                                 "geometry": {"type": ["object", "null"]}, "properties": {"type": ["object", "null"]}}}
FC_SCHEMA = {"type": "object", "required": ["type", "features", "links", "numberMatched", "numberReturned", "timeStamp"],
             "properties": {"type": {"enum": ["FeatureCollection"]}, "features": {"type": "array", "items": FEATURE_SCHEMA},
                            "numberMatched": {"type": "integer", "minimum": 0},
                            "numberReturned": {"type": "integer", "minimum": 0}}}
ITEMS_PARAMETERS = [  # parsed by hand (errors must be 400, limits clamped), so declared here for the OpenAPI document
    {"name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
     "description": "minlon,minlat,maxlon,maxlat in CRS84 (or 6 numbers with heights)",
     "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
    {"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "reports only: an instant or interval (start/end, ../end, start/..) of RFC 3339 date-times with "
                    f"an offset, or bare dates, each the calendar day in {LOCAL_NAME}; interval ends are inclusive"},
    {"name": "at", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "zones and villages: the boundary generation (and roster) in force at this instant, an RFC 3339 "
                    f"date-time with an offset or a bare date ({LOCAL_NAME}); default now"},
    {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
     "description": f"page size; larger values are clamped to {MAX_LIMIT}",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "default": 0}},
]


@router.get("/collections/{collection_id}/items", summary="Features of a collection (GeoJSON)",
            description=f"bbox (CRS84), datetime (reports only: created_at), limit (default {DEFAULT_LIMIT}; "
                        f"values above {MAX_LIMIT} are clamped to {MAX_LIMIT}), offset.",
            openapi_extra={"parameters": ITEMS_PARAMETERS},
            responses={200: {"description": "A GeoJSON FeatureCollection with paging links",
                             "content": {GEOJSON: {"schema": FC_SCHEMA}}}})
def items(collection_id: str, request: Request, services: ServicesDep):
    """A page of a collection's features, filtered by bbox and (reports) datetime."""
    c = _collection(collection_id)
    _check_f(request)
    q = request.query_params
    _check_crs(request, ("crs", "bbox-crs"))
    limit = _int(request, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise Problem(400, f"limit={limit} must be at least 1")
    limit = min(limit, MAX_LIMIT)
    offset = _int(request, "offset", 0)
    if offset < 0:
        raise Problem(400, f"offset={offset} must not be negative")
    bbox = parse_bbox(q["bbox"], status=400) if q.get("bbox") else None
    since, until = parse_datetime(q["datetime"]) if q.get("datetime") else (None, None)
    if c.frame is None:
        rows, matched = services.reports.search(bbox=bbox, since=since, until=until, limit=limit, offset=offset)
        cats = _categories(services)
        feats = [_report_feature(r, cats) for r in rows]
    else:
        # Static layers carry no time, so datetime does not narrow them; `at` picks the boundary generation.
        gdf = c.frame(services, _at(q))
        if bbox:
            gdf = gdf[gdf.geometry.intersects(shapely.box(*bbox))]
        gdf = gdf.sort_values(c.key, kind="stable")
        matched = len(gdf)
        feats = _frame_features(gdf.iloc[offset:offset + limit], c.key)
    url = request.url
    links = [_link(str(url), "self", GEOJSON, "this document"),
             _link(f"{_base(request)}{PREFIX}/collections/{c.id}", "collection", JSON, "the collection")]
    if offset + len(feats) < matched:
        links.append(_link(str(url.include_query_params(offset=offset + limit, limit=limit)), "next", GEOJSON, "next page"))
    if offset > 0:
        links.append(_link(str(url.include_query_params(offset=max(0, offset - limit), limit=limit)), "prev", GEOJSON,
                           "previous page"))
    return _json({"type": "FeatureCollection", "features": feats, "links": links, "numberMatched": matched,
                  "numberReturned": len(feats), "timeStamp": _now()}, GEOJSON)


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature (GeoJSON)",
            responses={200: {"description": "A GeoJSON Feature", "content": {GEOJSON: {"schema": FEATURE_SCHEMA}}}})
def item(collection_id: str, feature_id: str, request: Request, services: ServicesDep):
    """One feature of a collection."""
    c = _collection(collection_id)
    _check_f(request)
    _check_crs(request)
    missing = Problem(404, f"no feature {feature_id!r} in collection {c.id!r}")
    if c.frame is None:
        if not feature_id.isdigit() or int(feature_id) >= 2**31:
            raise missing
        try:
            feat = _report_feature(services.reports.get(int(feature_id)), _categories(services))
        except NotFound:
            raise missing from None
    else:
        gdf = c.frame(services, _at(request.query_params))
        gdf = gdf[gdf[c.key].astype(str) == feature_id]
        if gdf.empty:
            raise missing
        feat = _frame_features(gdf, c.key)[0]
    base = f"{_base(request)}{PREFIX}/collections/{c.id}"
    feat["links"] = [_link(str(request.url), "self", GEOJSON, "this feature"),
                     _link(base, "collection", JSON, "the collection")]
    return _json(feat, GEOJSON)
