"""Open311 GeoReport v2 at /open311/v2 (http://wiki.open311.org/GeoReport_v2), JSON and XML.

Service requests are zonechief reports: POST files through the same Reports.create
as /v1/reports, so zone, chief and history are the same. Errors use the spec's
format ([{"code", "description"}] or <errors>), never problem+json.
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, caller_for_key
from api.deps import ServicesDep
from api.errors import resolve
from api.middleware import check_submission_rate
from gis.localtime import LOCAL_NAME
from zonechief import open311 as o3
from zonechief.open311_updates import FIELDS as UPDATE_FIELDS
from zonechief.open311_updates import service_request_updates
from zonechief.reports import NotFound, ReportIn
from zonechief.services import Services

PREFIX = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-03T00:00:00+08:00"  # bump when the endpoint's behaviour changes
FORMATS = {"json": "application/json", "xml": "text/xml"}
MAX_BODY = 256 * 1024
MAX_IDS = o3.MAX_RESULTS


# ------------------------------------------------------------------ rendering
# Characters XML 1.0 cannot carry; a description filed through /v1 JSON may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return _NOT_XML.sub("\ufffd", str(v))


def _fill(parent: ET.Element, d: dict) -> None:
    for k, v in d.items():
        el = ET.SubElement(parent, k)
        if isinstance(v, dict):
            _fill(el, v)
        elif isinstance(v, list):  # only discovery nests lists: <formats><format>…
            for item in v:
                if isinstance(item, dict):
                    _fill(ET.SubElement(el, k.rstrip("s")), item)
                else:
                    ET.SubElement(el, k.rstrip("s")).text = _text(item)
        else:
            el.text = _text(v)


def xml_bytes(root: str, item: str | None, data) -> bytes:
    """Data as the spec's XML: a root element holding one element per item, or the fields themselves."""
    top = ET.Element(root)
    if item is None:
        _fill(top, data)
    else:
        for d in data:
            _fill(ET.SubElement(top, item), d)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode").encode()


def render(fmt: str, data, root: str, item: str | None, status: int = 200, headers: dict | None = None) -> Response:
    """Data as JSON or XML, by the request's format."""
    if fmt == "xml":
        return Response(xml_bytes(root, item, data), status_code=status, media_type="text/xml; charset=utf-8",
                        headers=headers)
    body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json; charset=utf-8", headers=headers)


def error_response(fmt: str, code: int, description: str, headers: dict | None = None) -> Response:
    """The spec's error list with one error."""
    return render(fmt, [{"code": code, "description": description}], "errors", "error", status=code, headers=headers)


def _fmt_of(request: Request) -> str:
    fmt = request.path_params.get("fmt") or request.url.path.rsplit(".", 1)[-1]
    return fmt if fmt in FORMATS else "json"


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise o3.Open311Error(404, f"unknown format .{fmt}; use .json or .xml")


def _validation_text(exc, names: dict | None = None) -> str:
    parts = []
    for e in exc.errors()[:10]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        loc = (names or {}).get(loc, loc)
        msg = str(e.get("msg", ""))
        for ours, theirs in (names or {}).items():
            msg = msg.replace(ours, theirs)
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


class Open311Route(APIRoute):
    """Answers every error raised under /open311/v2 from the API's error table (api/errors.py),
    in the spec's format. The spec knows no 422: invalid input is its 400."""

    def get_route_handler(self) -> Callable:
        """The handler, wrapped to answer errors in the spec's format."""
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                a = resolve(request, exc)
                return error_response(_fmt_of(request), 400 if a.status == 422 else a.status, a.detail, a.headers)

        return wrapped


ERRORS_SCHEMA = {"type": "array", "items": {"type": "object", "required": ["code", "description"], "properties": {
    "code": {"type": "integer"}, "description": {"type": "string"}}}}
XML_BODY = {"schema": {"type": "string"}}
ERRORS = {"description": "GeoReport v2 errors: [{code, description}] or <errors><error>…",
          "content": {"application/json": {"schema": ERRORS_SCHEMA}, "text/xml": XML_BODY}}
REQUEST_SCHEMA = {"type": "object", "required": ["service_request_id", "status", "service_code", "requested_datetime"],
                  "properties": {"service_request_id": {"type": "string"}, "status": {"enum": ["open", "closed"]},
                                 "service_code": {"type": "string"}, "lat": {"type": ["number", "null"]},
                                 "long": {"type": ["number", "null"]}, "requested_datetime": {"type": "string"},
                                 "updated_datetime": {"type": "string"}}}


def documented(ok: int, json_schema: dict, description: str) -> dict:
    """OpenAPI responses: the answer in JSON or XML (by the .fmt suffix), errors in the spec's format."""
    return {ok: {"description": description, "content": {"application/json": {"schema": json_schema}, "text/xml": XML_BODY}},
            "4XX": ERRORS, "5XX": ERRORS}


router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=Open311Route)


def _names(s: Services) -> tuple[dict, dict]:
    return dict(zip(s.categories.code, s.categories.name)), dict(zip(s.index.zones.zone_id, s.index.zones.name))


# ------------------------------------------------------------------ discovery and services
@router.get("/discovery.{fmt}", summary="Open311 service discovery",
            responses=documented(200, {"type": "object", "required": ["endpoints"]}, "Discovery document"))
def discovery(fmt: str, request: Request):
    """The discovery document: the endpoint, its formats and changeset."""
    _check_fmt(fmt)
    base = str(request.base_url).rstrip("/") + PREFIX
    data = {
        "changeset": CHANGESET,
        "contact": "zonechief operators (城管片长制); see /docs",
        "key_service": "API keys are issued by the operators (`zonechief keys create`); any role may file requests",
        "endpoints": [{"specification": SPEC, "url": base, "changeset": CHANGESET, "type": "production",
                       "formats": ["application/json", "text/xml"]}],
    }
    return render(fmt, data, "discovery", None)


def _service(row) -> dict:
    return {"service_code": row.code, "service_name": row.name,
            "description": f"{row.major_name} / {row.name} (GB/T 47678.5-2026 管理事项 {row.code})",
            "metadata": False, "type": "realtime", "keywords": row.name, "group": row.major_name}


@router.get("/services.{fmt}", summary="Service list: the GB/T 47678.5 categories",
            responses=documented(200, {"type": "array", "items": {"type": "object", "required": ["service_code"]}},
                                 "Services"))
def service_list(fmt: str, services: ServicesDep):
    """The services: one per GB/T 47678.5 category."""
    _check_fmt(fmt)
    return render(fmt, [_service(r) for r in services.categories.itertuples()], "services", "service")


@router.get("/services/{service_code}.{fmt}", summary="Service definition (no extra attributes)",
            responses=documented(200, {"type": "object", "required": ["service_code", "attributes"]},
                                 "Service definition"))
def service_definition(service_code: str, fmt: str, services: ServicesDep):
    """A service's definition; no service has extra attributes."""
    _check_fmt(fmt)
    if service_code not in set(services.categories.code):
        raise o3.Open311Error(404, f"service_code {service_code} was not found; GET services.{fmt} lists them")
    # metadata is false for every service, so there are no attributes to define.
    return render(fmt, {"service_code": service_code, "attributes": []}, "service_definition", None)


# ------------------------------------------------------------------ requests
FORM_FIELDS = ["api_key", "service_code", "lat", "long", "address_string", "address_id", "email", "device_id",
               "account_id", "first_name", "last_name", "phone", "description", "media_url", "jurisdiction_id"]
FORM_SCHEMA = {"type": "object", "required": ["api_key", "service_code"],
               "properties": {k: {"type": "string"} for k in FORM_FIELDS}}


def _caller(services: Services, token: str | None) -> Caller:
    """Open311 needs a key of any role; the spec's answer to a missing or bad one is 403."""
    if not token:
        raise o3.Open311Error(403, "api_key was not provided")
    caller = caller_for_key(services, token)
    if caller is None:
        raise o3.Open311Error(403, "api_key is invalid or revoked")
    return caller


def _staff_url(services: Services, request: Request) -> str | None:
    """The public URL when the caller holds a staff (or admin) key (api_key or X-API-Key), else None:
    only staff see the tracking links and stored photos of others' requests. A bad key is the spec's 403."""
    token = request.query_params.get("api_key") or request.headers.get("x-api-key")
    if not token:
        return None
    return services.settings.public_url if _caller(services, token).at_least("staff") else None


def _float(name: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise o3.Open311Error(400, f"{name}={text!r} is not a number") from None
    if not math.isfinite(v):
        raise o3.Open311Error(400, f"{name} must be a finite number")
    return v


def _location(f: dict) -> tuple[str, dict]:
    """(source, Location fields). Coordinates win over address_string, which wins over address_id."""
    lat, lon = f.get("lat"), f.get("long")
    if lat or lon:
        if not (lat and lon):
            raise o3.Open311Error(400, "lat and long must be given together (WGS-84 degrees)")
        return "gps", {"lon": _float("long", lon), "lat": _float("lat", lat), "crs": "wgs84"}
    if f.get("address_string"):
        return "address", {"address": f["address_string"]}
    if f.get("address_id"):
        # Our address ids are city service codes (城市服务码) on facilities.
        return "service_code", {"service_code": f["address_id"]}
    raise o3.Open311Error(400, "a location is required: lat and long, address_string, or address_id")


def _report_in(f: dict, categories: set[str], idempotency_key: str | None) -> ReportIn:
    code = f.get("service_code")
    if not code:
        raise o3.Open311Error(400, "service_code was not provided")
    if code not in categories:
        raise o3.Open311Error(404, f"service_code {code} was not found; GET services.json lists them")
    source, loc = _location(f)
    name = o3.reporter_name(f.get("first_name"), f.get("last_name"))
    phone = (f.get("phone") or "").strip() or None
    try:
        return ReportIn(source=source, category=code, description=f.get("description") or "", location=loc,
                        reporter={"name": name, "phone": phone} if name or phone else None,
                        photo_url=f.get("media_url") or None, idempotency_key=idempotency_key or None)
    except ValidationError as exc:
        raise o3.Open311Error(400, _validation_text(exc, SPEC_NAMES)) from None


# ReportIn field → the Open311 field the client sent, for error messages.
SPEC_NAMES = {"photo_url": "media_url", "reporter.phone": "phone", "reporter.name": "first_name/last_name",
              "location.address": "address_string", "location.service_code": "address_id",
              "location.lat": "lat", "location.lon": "long", "idempotency_key": "Idempotency-Key"}


@router.post("/requests.{fmt}", status_code=201, summary="File a service request (form-encoded)",
             description="Fields per GeoReport v2: api_key and service_code, then lat+long (WGS-84), "
                         "address_string, or address_id (a city service code). email is accepted but not stored.",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-www-form-urlencoded": {"schema": FORM_SCHEMA},
                 "multipart/form-data": {"schema": FORM_SCHEMA}}}},
             responses=documented(201, {"type": "array", "items": {"type": "object", "required": ["service_request_id"]}},
                                  "Filed"))
async def create_request(fmt: str, request: Request, svc: ServicesDep):
    """File a service request: a report, located and assigned like POST /v1/reports."""
    _check_fmt(fmt)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise o3.Open311Error(400, "send the request form-encoded (application/x-www-form-urlencoded)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise o3.Open311Error(400, f"the request body exceeds {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise o3.Open311Error(400, f"the request body exceeds {MAX_BODY} bytes")
    form = await request.form()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}  # uploaded files are not kept
    token = fields.get("api_key") or request.query_params.get("api_key") or request.headers.get("x-api-key")
    caller = await run_in_threadpool(_caller, svc, token)
    await run_in_threadpool(check_submission_rate, request, caller)  # the /v1 bucket; may query PostgreSQL
    data = _report_in(fields, set(svc.categories.code), request.headers.get("idempotency-key"))
    report, _ = await run_in_threadpool(svc.reports.create, data, caller.actor)
    body = [{"service_request_id": str(report.id), "service_notice": o3.notice(report, svc.settings.public_url),
             "account_id": None}]
    return render(fmt, body, "service_requests", "request", status=201,
                  headers={"Location": f"{PREFIX}/requests/{report.id}.{fmt}"})


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _report_id(text: str) -> int | None:
    # Ids are 32-bit integers in the store; anything else cannot name a report.
    return int(text) if text.isdigit() and int(text) < 2**31 else None


LIST_PARAMETERS = [  # parsed by hand so that errors keep the spec's format; declared for the OpenAPI document
    {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}} for n, d in [
        ("service_request_id", "comma-separated ids; overrides every other filter"),
        ("service_code", "comma-separated 5-digit service codes"),
        ("start_date", f"W3C datetime with an offset, e.g. 2025-07-01T00:00:00+08:00, or a date (that day in {LOCAL_NAME}); "
                       "default: end_date minus 90 days"),
        ("end_date", f"W3C datetime with an offset (inclusive), or a date (including that day in {LOCAL_NAME}); "
                     "default: now, or start_date plus 90 days"),
        ("status", "open, closed, or both comma-separated"),
        ("jurisdiction_id", "ignored: this endpoint serves one jurisdiction"),
        ("api_key", "optional: with a staff key, service_notice carries each request's tracking link and media_url "
                    "its first stored photo")]]


@router.get("/requests.{fmt}", summary="Service requests (default: the last 90 days, at most 1000)",
            description="Filters: service_request_id (comma list; overrides the others), service_code (comma list), "
                        "start_date/end_date (W3C datetimes with an offset, or dates: days in Asia/Shanghai; at most "
                        "90 days apart), status (open, closed).",
            openapi_extra={"parameters": LIST_PARAMETERS},
            responses=documented(200, {"type": "array", "items": REQUEST_SCHEMA}, "Service requests, newest first"))
def request_list(fmt: str, request: Request, svc: ServicesDep):
    """Service requests by id, or by service code, dates and status."""
    _check_fmt(fmt)
    q = request.query_params
    url = _staff_url(svc, request)
    reports = svc.reports
    cats, zones = _names(svc)
    ids = _split(q.get("service_request_id"))
    if ids:
        if len(ids) > MAX_IDS:
            raise o3.Open311Error(400, f"at most {MAX_IDS} service_request_id values per call")
        rows = []
        for i in dict.fromkeys(ids):
            rid = _report_id(i)
            if rid is None:
                continue
            try:
                rows.append(reports.get(rid))
            except NotFound:
                pass  # unknown ids are simply left out of the list
    else:
        codes = _split(q.get("service_code"))
        bad = [c for c in codes if not (len(c) == 5 and c.isdigit())]
        if bad:
            raise o3.Open311Error(400, f"service_code {', '.join(bad)} is not a 5-digit code")
        since, until = o3.window(q.get("start_date"), q.get("end_date"), datetime.now(timezone.utc))
        statuses = o3.statuses_for(q.get("status"))
        rows = []
        known = set(svc.categories.code)
        wanted = [c for c in dict.fromkeys(codes) if c in known]  # an unknown code matches nothing
        if codes and not wanted:
            return render(fmt, [], "service_requests", "request")
        for code in wanted or [None]:
            found, _ = reports.search(category=code, status=statuses, since=since, until=until, limit=o3.MAX_RESULTS)
            rows.extend(found)
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        rows = rows[:o3.MAX_RESULTS]
    return render(fmt, [o3.request_view(r, cats, zones, url) for r in rows], "service_requests", "request")


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request",
            responses=documented(200, {"type": "array", "minItems": 1, "maxItems": 1, "items": REQUEST_SCHEMA},
                                 "The request, as a list of one"))
def request_one(service_request_id: str, fmt: str, request: Request, svc: ServicesDep):
    """One service request."""
    _check_fmt(fmt)
    url = _staff_url(svc, request)
    rid = _report_id(service_request_id)
    missing = o3.Open311Error(404, f"service_request_id {service_request_id} was not found")
    if rid is None:
        raise missing
    try:
        r = svc.reports.get(rid)
    except NotFound:
        raise missing from None
    cats, zones = _names(svc)
    return render(fmt, [o3.request_view(r, cats, zones, url)], "service_requests", "request")


# ------------------------------------------------------------------ updates (mySociety's extension)
UPDATES_SPEC = "https://github.com/mysociety/fixmystreet/wiki/Open311-FMS---Proposed-differences-to-Open311"
UPDATE_SCHEMA = {"type": "object", "required": list(UPDATE_FIELDS), "properties": {
    "update_id": {"type": "string"}, "service_request_id": {"type": "string"}, "status": {"enum": ["open", "closed"]},
    "updated_datetime": {"type": "string"}, "description": {"type": ["string", "null"]},
    "media_url": {"type": ["string", "null"]}}}
UPDATE_PARAMETERS = [p for p in LIST_PARAMETERS if p["name"] in ("start_date", "end_date", "jurisdiction_id")] + [
    {"name": "api_key", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "optional: with a staff key, every note (else every status note but the citizen's own "
                    "answers, as in status_notes) and each resolution's photo as media_url"}]


@router.get("/servicerequestupdates.{fmt}", summary="Service request updates, oldest first (at most 1000)",
            description="mySociety's GeoReport v2 extension (" + UPDATES_SPEC + "): one update per step of a "
                        "report's history. start_date/end_date as for GET requests (default the last 90 days, "
                        "at most 90 days apart); the window is on updated_datetime.",
            openapi_extra={"parameters": UPDATE_PARAMETERS},
            responses=documented(200, {"type": "array", "items": UPDATE_SCHEMA}, "Updates, oldest first"))
def request_updates(fmt: str, request: Request, svc: ServicesDep):
    """Updates to service requests: each status change, with the note a caller may read."""
    _check_fmt(fmt)
    q = request.query_params
    url = _staff_url(svc, request)
    since, until = o3.window(q.get("start_date"), q.get("end_date"), datetime.now(timezone.utc))
    rows = service_request_updates(svc.db.report_repo, since, until, url)
    return render(fmt, rows, "service_request_updates", "request_update")


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_found(rest: str, request: Request):
    """The spec's 404 or 405 for anything else under /open311/v2."""
    allowed = sorted({m for r in router.routes
                      if isinstance(r, APIRoute) and r.endpoint is not not_found
                      and r.path_regex.match(request.url.path) for m in r.methods})
    if allowed:
        return error_response(_fmt_of(request), 405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                              {"Allow": ", ".join(allowed)})
    raise o3.Open311Error(404, f"no Open311 resource at {request.url.path}; start at {PREFIX}/discovery.json")
