"""Every error the API answers, in one table: exception class → status, title and detail.

The handlers look an exception up along its MRO, so a subclass answers as its nearest
listed ancestor. /v1, /ogc and /maps answer RFC 9457 problem+json; Open311 reuses
`resolve` and writes the same answer in its spec's format.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import psycopg
import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from gis.boundaries import BoundaryError
from gis.crs import UnknownCRSError
from gis.errors import ZonechiefError
from gis.gazetteer import ProviderError
from gis.localtime import TimeInputError
from gis.points import CoordinateError, MisplacedError
from gis.roster import RosterError
from gis.service_codes import UnknownServiceCode
from gis.siting import SitingInputError
from maps.assets import UnvendoredAsset
from maps.basemaps import BasemapError
from maps.zones import MapInputError
from zonechief.feedback import FeedbackConflict
from zonechief.open311 import Open311Error
from zonechief.patrol_coverage import CoverageInputError
from zonechief.patrols import PatrolImportError
from zonechief.photos import PhotoError
from zonechief.reference import ImportRejected
from zonechief.reports import KeyReused, NotFound, ReportError, TokenNotFound
from zonechief.webhooks import WebhookError
from zonechief.workflow import TransitionError

log = logging.getLogger("zonechief.api")
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
# On every response (api/middleware.py), and here too: 500s are built outside the middleware stack.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin",
                    "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
RETRY_AFTER_S = 5  # Retry-After on every 503: a database restart or failover takes seconds


class Problem(Exception):
    """An error raised by the API itself, carrying its own status."""

    def __init__(self, status: int, detail: str, type_: str = "about:blank", title: str | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.detail, self.type, self.title, self.extra = status, detail, type_, title, extra
        self.headers = headers


@dataclass(frozen=True)
class Answer:
    """What to answer for an exception, whatever the body format."""

    status: int
    detail: str
    title: str | None = None
    headers: dict | None = None
    type: str = "about:blank"
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """A fixed status and title; the detail is str(exc) unless given (text, or a function of the exception)."""

    status: int
    title: str | None = None
    detail: str | Callable[[BaseException], str] | None = None
    retry_after: bool = False

    def __call__(self, request: Request, exc: BaseException) -> Answer:
        """The answer to `exc`."""
        detail = self.detail(exc) if callable(self.detail) else self.detail or str(exc)
        if self.status >= 500 and not self.retry_after:  # a bug or a broken dependency: keep the traceback
            log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
        return Answer(self.status, detail, self.title,
                      {"Retry-After": str(RETRY_AFTER_S)} if self.retry_after else None)


UNAVAILABLE = Rule(503, detail="the report database is unavailable; retry shortly", retry_after=True)
# A deadline passed (store.deadline): connecting, or a statement the server cancelled or a lock it did not get.
TIMED_OUT = Rule(503, detail="the report database did not answer in time; retry shortly", retry_after=True)
DRIVER_TIMEOUTS = (psycopg.errors.ConnectionTimeout, psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
UNEXPECTED = Rule(500, detail="unexpected server error; it has been logged")


# ------------------------------------------------------------------ errors whose answer depends on the exception
def _own_status(request: Request, exc: Problem) -> Answer:
    return Answer(exc.status, exc.detail, exc.title, exc.headers, exc.type, exc.extra)


def _open311(request: Request, exc: Open311Error) -> Answer:
    return Answer(exc.code, exc.description, headers=exc.headers)


def _loc(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    if loc and loc[0] == "query":
        return f"query parameter {parts[1]!r}" if len(parts) > 1 else "query"
    return ".".join(parts[1:] if parts and parts[0] == "query" else parts) or "body"


def _validation_message(err: dict) -> str:
    loc, typ, msg = err.get("loc", ()), err.get("type", ""), err.get("msg", "")
    if typ == "json_invalid":
        ctx = err.get("ctx", {}).get("error", "")
        return f"the request body is not valid JSON ({ctx})" if ctx else "the request body is not valid JSON"
    if typ == "missing":
        return f"{_loc(loc)} is required"
    return f"{_loc(loc)}: {msg}"


def _validation(request: Request, exc: RequestValidationError) -> Answer:
    errs = exc.errors()
    msgs = [_validation_message(e) for e in errs[:10]]
    status = 400 if any(e.get("type") == "json_invalid" for e in errs) else 422
    return Answer(status, "; ".join(msgs), "Invalid request", extra={
        "errors": [{"loc": [str(p) for p in e.get("loc", ())], "message": m} for e, m in zip(errs, msgs)]})


def _http(request: Request, exc: StarletteHTTPException) -> Answer:
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        # FastAPI's words for any failure while decoding a JSON body; say which.
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            detail = f"the request body is not valid UTF-8 ({cause.reason} at byte {cause.start})"
        elif isinstance(cause, RecursionError):
            detail = "the request body is nested too deeply"
        elif cause is not None:
            detail = f"the request body cannot be parsed: {type(cause).__name__}"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}; see /docs for the API"
    if exc.status_code == 405:
        # Starlette's Allow header names only the first route on the path; list all of them.
        allowed = sorted({m for prefix, r in _routes(request.app.routes) if getattr(r, "methods", None)
                          and compile_path(prefix + r.path)[0].match(request.url.path) for m in r.methods})
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            detail = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
    return Answer(exc.status_code, detail, headers=headers)


def _photo(request: Request, exc: PhotoError) -> Answer:
    return Answer(exc.status, str(exc), "Photo not accepted")


def _patrol_import(request: Request, exc: PatrolImportError) -> Answer:
    # The per-track report too: which tracks were rejected, and why.
    return Answer(422, str(exc), "Nothing to import; nothing was changed", extra={"report": exc.result.as_dict()})


def _unknown_crs(request: Request, exc: UnknownCRSError) -> Answer:
    # The supported systems also as a list, for clients that offer a choice.
    return Answer(400, str(exc), "Unknown CRS", extra={"supported": list(exc.supported)})


def _data_error(request: Request, exc: DataError) -> Answer:
    # A value the database cannot hold (NUL characters in text, out-of-range numbers) that
    # validation let through: the client's input, so a 4xx, and logged so validation can catch up.
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
    why = "text must not contain NUL (\\u0000) characters" if "NUL" in str(exc.orig) else "a value is out of range or too long"
    return Answer(422, f"the request has a value the database cannot hold: {why}", "Invalid value")


def _operational(request: Request, exc: OperationalError) -> Answer:
    # SQLAlchemy wraps the driver's error: that one says whether a deadline passed.
    return (TIMED_OUT if isinstance(exc.orig, DRIVER_TIMEOUTS) else UNAVAILABLE)(request, exc)


def _database(request: Request, exc: DBAPIError) -> Answer:
    # A connection dropped mid-statement (restart, failover) is temporary; anything else is a bug.
    return (UNAVAILABLE if exc.connection_invalidated else UNEXPECTED)(request, exc)


# ------------------------------------------------------------------ the table
ERRORS: dict[type[BaseException], Callable[[Request, BaseException], Answer]] = {
    Problem: _own_status,
    Open311Error: _open311,
    RequestValidationError: _validation,
    StarletteHTTPException: _http,
    # gis
    CoordinateError: Rule(400, "Invalid coordinate"),
    MisplacedError: Rule(422, "Coordinates do not fit their CRS"),
    UnknownCRSError: _unknown_crs,
    TimeInputError: Rule(400, "Invalid date or time"),
    BoundaryError: Rule(422, "Invalid boundaries"),
    RosterError: Rule(422, "Invalid roster"),
    UnknownServiceCode: Rule(422, "Unknown service code"),
    SitingInputError: Rule(422, "Invalid siting parameters"),
    ProviderError: Rule(502, "Geocoder unavailable", "the online geocoder did not answer; retry later"),
    # zonechief
    ReportError: Rule(422, "Invalid report"),
    NotFound: Rule(404, detail=lambda exc: f"no report {exc.args[0]}"),
    TokenNotFound: Rule(404),
    KeyReused: Rule(409, "Idempotency key reused"),
    FeedbackConflict: Rule(409, "Answer not taken"),
    PhotoError: _photo,
    WebhookError: Rule(422, "Invalid webhook"),
    TransitionError: Rule(409, "Invalid status change"),
    ImportRejected: Rule(422, "Import rejected; nothing was changed"),
    PatrolImportError: _patrol_import,
    CoverageInputError: Rule(422, "Invalid coverage parameters"),
    # maps
    MapInputError: Rule(422, "Invalid map parameters"),
    BasemapError: Rule(422, "Invalid map parameters"),
    UnvendoredAsset: UNEXPECTED,
    # Refused on purpose, but not listed above: the message is still for the user.
    ZonechiefError: Rule(422),
    # The database: lost or refused connections and an exhausted pool are temporary.
    OperationalError: _operational,
    InterfaceError: UNAVAILABLE,
    PoolTimeout: UNAVAILABLE,
    # Raw driver errors, from code using the connection directly (COPY).
    **dict.fromkeys(DRIVER_TIMEOUTS, TIMED_OUT),
    psycopg.OperationalError: UNAVAILABLE,
    psycopg.InterfaceError: UNAVAILABLE,
    DataError: _data_error,
    DBAPIError: _database,
    Exception: UNEXPECTED,
}


def _routes(routes, prefix: str = ""):
    """(prefix, route) of every route, through included routers (FastAPI ≥0.16x keeps them nested)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + getattr(r.include_context, "prefix", ""))
        else:
            yield prefix, r


def resolve(request: Request, exc: BaseException) -> Answer:
    """The answer for `exc`: the entry of its nearest class in ERRORS."""
    for cls in type(exc).__mro__:
        rule = ERRORS.get(cls)
        if rule is not None:
            return rule(request, exc)
    return UNEXPECTED(request, exc)


def problem_response(request: Request, status: int, detail: str, type_: str = "about:blank",
                     title: str | None = None, headers: dict | None = None, **extra) -> JSONResponse:
    """An RFC 9457 problem+json response."""
    body = {"type": type_, "title": title or TITLES.get(status, "Error"), "status": status,
            "detail": detail, "instance": str(request.url.path), **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers={**SECURITY_HEADERS, **(headers or {})})


def install(app: FastAPI, html: Callable[[Request, Answer], Response | None] | None = None) -> None:
    """Answer every exception in ERRORS as problem+json, or as the page `html` draws for it (None: not a page's path)."""
    async def answer(request: Request, exc: Exception) -> Response:
        a = resolve(request, exc)
        page = html(request, a) if html is not None else None
        return page if page is not None else problem_response(request, a.status, a.detail, a.type, a.title, a.headers,
                                                              **a.extra)

    for cls in ERRORS:
        app.add_exception_handler(cls, answer)


# ------------------------------------------------------------------ OpenAPI
PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem", "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object"}}},
}




def document_problems(app: FastAPI) -> None:
    """Declare the problem+json error responses in the OpenAPI document.

    Only for plain routes (their errors go through the handlers above); a route with its
    own route class (Open311) formats and documents its errors itself.
    """
    base = app.openapi

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        spec = base()
        # Paths served by APIRoute subclasses.
        custom = {prefix + r.path_format for prefix, r in _routes(app.routes)
                  if isinstance(r, APIRoute) and type(r) is not APIRoute}
        spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, ops in spec.get("paths", {}).items():
            for op in ops.values():
                if path in custom:
                    continue
                resp = op.setdefault("responses", {})
                if "422" in resp:  # FastAPI's default describes its own error shape, not ours
                    resp["422"] = {"description": "Invalid request", "content": content}
                resp.setdefault("4XX", {"description": "Client error", "content": content})
                resp.setdefault("5XX", {"description": "Server error; 503 with Retry-After when the database is unavailable",
                                        "content": content})
        schemas = spec["components"]["schemas"]
        text = str(spec["paths"])
        for name in ("HTTPValidationError", "ValidationError"):
            if name in schemas and f"/{name}'" not in text:
                del schemas[name]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
