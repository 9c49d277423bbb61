"""RFC 9457 problem details for every error the API returns."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis.boundaries import BoundaryError
from gis.crs import UnknownCRSError
from gis.points import CoordinateError
from zonechief.reports import NotFound, ReportError, TransitionError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("zonechief.api")
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
          409: "Conflict", 415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
# On every response (api/middleware.py), and here too: 500s are built outside the middleware stack.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin",
                    "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
DB_RETRY_AFTER_S = 5


class Problem(Exception):
    def __init__(self, status: int, detail: str, type_: str = "about:blank", title: str | None = None,
                 headers: dict | None = None, **extra):
        self.status, self.detail, self.type, self.title, self.extra = status, detail, type_, title, extra
        self.headers = headers


def problem_response(request: Request, status: int, detail: str, type_: str = "about:blank",
                     title: str | None = None, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": type_, "title": title or TITLES.get(status, "Error"), "status": status,
            "detail": detail, "instance": str(request.url.path), **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers={**SECURITY_HEADERS, **(headers or {})})


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


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(request, exc.status, exc.detail, exc.type, exc.title, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        msgs = [_validation_message(e) for e in errs[:10]]
        status = 400 if any(e.get("type") == "json_invalid" for e in errs) else 422
        return problem_response(request, status, "; ".join(msgs), title="Invalid request",
                                errors=[{"loc": [str(p) for p in e.get("loc", ())], "message": m} for e, m in zip(errs, msgs)])

    @app.exception_handler(CoordinateError)
    async def _coords(request: Request, exc: CoordinateError):
        return problem_response(request, 400, str(exc), title="Invalid coordinate")

    @app.exception_handler(UnknownCRSError)
    async def _crs(request: Request, exc: UnknownCRSError):
        return problem_response(request, 400, str(exc), title="Unknown CRS")

    @app.exception_handler(BoundaryError)
    async def _boundary(request: Request, exc: BoundaryError):
        return problem_response(request, 422, str(exc), title="Invalid boundaries")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
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
            allowed = sorted({m for r in request.app.routes if getattr(r, "methods", None) and getattr(r, "path_regex", None)
                              and r.path_regex.match(request.url.path) for m in r.methods})
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(allowed)}
                detail = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
        return problem_response(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(ReportError)
    async def _report(request: Request, exc: ReportError):
        return problem_response(request, 422, str(exc), title="Invalid report")

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return problem_response(request, 404, f"no report {exc.args[0]}")

    @app.exception_handler(TransitionError)
    async def _transition(request: Request, exc: TransitionError):
        return problem_response(request, 409, str(exc), title="Invalid status change")

    def _unavailable(request: Request):
        return problem_response(request, 503, "the report database is unavailable; retry shortly",
                                headers={"Retry-After": str(DB_RETRY_AFTER_S)})

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError):
        # Lost or refused connections (restart, failover) are temporary; anything else is a bug.
        if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
            return _unavailable(request)
        if isinstance(exc, DataError):
            # A value the database cannot hold (NUL characters in text, out-of-range numbers) that
            # validation let through: the client's input, so a 4xx, and logged so validation can catch up.
            log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
            why = ("text must not contain NUL (\\u0000) characters" if "NUL" in str(exc.orig)
                   else "a value is out of range or too long")
            return problem_response(request, 422, f"the request has a value the database cannot hold: {why}",
                                    title="Invalid value")
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "unexpected server error; it has been logged")

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout):
        return _unavailable(request)

    try:  # raw driver errors, from code that uses the psycopg connection directly (COPY)
        import psycopg

        @app.exception_handler(psycopg.OperationalError)
        async def _pg_down(request: Request, exc: Exception):
            return _unavailable(request)

        @app.exception_handler(psycopg.InterfaceError)
        async def _pg_closed(request: Request, exc: Exception):
            return _unavailable(request)
    except ImportError:
        pass

    from zonechief.reference import ImportRejected

    @app.exception_handler(ImportRejected)
    async def _import_rejected(request: Request, exc: ImportRejected):
        return problem_response(request, 422, str(exc), title="Import rejected; nothing was changed")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "unexpected server error; it has been logged")


PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem", "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object"}}},
}


def _custom_route_paths(routes, prefix: str = ""):
    """Paths served by APIRoute subclasses, through included routers (FastAPI ≥0.16x keeps them nested)."""
    from fastapi.routing import APIRoute

    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _custom_route_paths(inner.routes, prefix + getattr(r.include_context, "prefix", ""))
        elif isinstance(r, APIRoute) and type(r) is not APIRoute:
            yield prefix + r.path_format


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
        custom = set(_custom_route_paths(app.routes))
        spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, ops in spec.get("paths", {}).items():
            for method, op in ops.items():
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
