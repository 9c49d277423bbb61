"""RFC 9457 problem details for every error the API returns."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis.boundaries import BoundaryError
from gis.crs import UnknownCRSError
from gis.points import CoordinateError
from gis.reports import NotFound, ReportError, TransitionError
from sqlalchemy.exc import OperationalError

MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
          409: "Conflict", 422: "Unprocessable Content", 500: "Internal Server Error", 503: "Service Unavailable"}


class Problem(Exception):
    def __init__(self, status: int, detail: str, type_: str = "about:blank", title: str | None = None, **extra):
        self.status, self.detail, self.type, self.title, self.extra = status, detail, type_, title, extra


def problem_response(request: Request, status: int, detail: str, type_: str = "about:blank",
                     title: str | None = None, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": type_, "title": title or TITLES.get(status, "Error"), "status": status,
            "detail": detail, "instance": str(request.url.path), **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


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
        return problem_response(request, exc.status, exc.detail, exc.type, exc.title, **exc.extra)

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

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError):
        return problem_response(request, 503, "the report database is unavailable; retry shortly",
                                headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return problem_response(request, 500, "unexpected server error; it has been logged")
