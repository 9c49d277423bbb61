"""Abuse limits and browser hardening: body size limits, security headers, CORS, the public
submission rate limit, and Swagger UI served from local files (no CDN).
"""
from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import Caller
from api.errors import SECURITY_HEADERS, Problem, problem_response
from zonechief.settings import Settings


# ------------------------------------------------------------------ body size
def batch_body_limit(settings: Settings) -> int:
    """POST /v1/lookup carries up to max_batch points (~400 bytes each as GeoJSON)."""
    return settings.max_batch * 400 + 65536


def photo_body_limit(settings: Settings) -> int:
    """A form with up to max_photos photos of max_photo_bytes each, and its text fields."""
    return max(settings.max_photos, 1) * settings.max_photo_bytes + 262_144


def carries_photos(method: str, path: str) -> bool:
    """The requests that upload photos: the citizen's report forms, staff's photo uploads, the chief's page's forms."""
    return method == "POST" and (path.startswith(("/r/", "/chief/reports/")) or path == "/report"
                                 or (path.startswith("/v1/reports/") and path.endswith("/photos")))


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The one body-size rule: admin uploads, batch lookups, photo uploads, everything else."""
    if path.startswith("/v1/admin/") or (method == "POST" and path == "/v1/patrols"):  # uploads: GPX/CSV tracks
        return settings.max_upload_bytes
    if method == "POST" and path == "/v1/lookup":
        return batch_body_limit(settings)
    if carries_photos(method, path):
        return photo_body_limit(settings)
    return settings.max_body_bytes


class BodyTooLarge(StarletteHTTPException):
    """Raised from receive(): an HTTPException, so FastAPI's body parsing re-raises it as is (not as 400)."""

    def __init__(self, limit: int, hint: str = ""):
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes{hint}")


class BodyLimitMiddleware:
    """413 when Content-Length or the bytes actually streamed exceed the limit for the path."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        """Refuse or cut off a body over the limit of its path."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(self.settings, scope["method"], scope["path"])
        hint = f"; send at most {self.settings.max_batch} points per request" if scope["path"] == "/v1/lookup" else ""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await self._reply(scope, receive, send, 400, "Content-Length is not a number")
            if int(declared) > limit:
                return await self._reply(scope, receive, send, 413,
                                         f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes{hint}")
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:  # chunked bodies, or a Content-Length that lied
                    raise BodyTooLarge(limit, hint)
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await self._reply(scope, receive, send, 413, exc.detail)

    @staticmethod
    async def _reply(scope, receive, send, status, detail):
        # Through the app's own handler (api.errors): a citizen's page gets the bilingual error page, not JSON.
        exc = StarletteHTTPException(status, detail, headers={"Connection": "close"})
        handler = getattr(scope.get("app"), "exception_handlers", {}).get(StarletteHTTPException)
        resp = await handler(Request(scope), exc) if handler else problem_response(Request(scope), status, detail,
                                                                                    headers=exc.headers)
        await resp(scope, receive, send)


# ------------------------------------------------------------------ security headers
def html_csp(tiles=(), script_hashes=()) -> str:
    """The policy of every HTML page: this origin, the tile hosts, and inline scripts only by hash."""
    t = " ".join(tiles)
    return (f"default-src 'self'; script-src 'self' {' '.join(script_hashes)}".rstrip() + "; "
            "style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: {t}".rstrip() + "; "
            f"connect-src 'self' {t}".rstrip() + "; "
            "font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")


class SecurityHeadersMiddleware:
    """nosniff, referrer policy and no framing everywhere; a Content-Security-Policy by content type.

    HTML may load only from this origin and the configured tile hosts; anything else
    (JSON, GeoJSON) may load nothing. A response that sets its own CSP keeps it.
    """

    def __init__(self, app, settings: Settings):
        self.app = app
        self.html_policy = html_csp(settings.tile_hosts)

    async def __call__(self, scope, receive, send):
        """Add the headers to the response's start."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                h = MutableHeaders(scope=msg)
                for k, v in SECURITY_HEADERS.items():
                    if k != "Content-Security-Policy":
                        h.setdefault(k, v)
                html = h.get("content-type", "").startswith("text/html")
                h.setdefault("Content-Security-Policy", self.html_policy if html else SECURITY_HEADERS["Content-Security-Policy"])
            await send(msg)

        await self.app(scope, receive, send_with_headers)


# ------------------------------------------------------------------ rate limit
# The buckets are kept by store.rate_limits: in PostgreSQL, shared by every worker, or in memory
# for the embedded store's single worker (zonechief.services builds the right one).


def client_ip(request: Request) -> str:
    """The client's address, as uvicorn sets it."""
    # uvicorn rewrites client from X-Forwarded-For only for trusted proxies (--forwarded-allow-ips).
    return request.client.host if request.client else "unknown"


def check_submission_rate(request: Request, caller: Caller) -> None:
    """Anonymous and public-role callers share one bucket per IP, whichever way they file (/v1 or Open311).

    May query the database: call it from a worker thread, not the event loop.
    """
    if caller.at_least("staff"):
        return
    limits = request.app.state.services.submission_limits
    if limits is None:
        return
    wait = limits.take(client_ip(request))
    if wait:
        secs = max(1, math.ceil(wait))
        raise Problem(429, f"too many reports from this address: at most {limits.per_minute} per minute; "
                           f"retry in {secs} s", title="Too Many Requests", headers={"Retry-After": str(secs)})


# ------------------------------------------------------------------ docs without a CDN
DOCS_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""
# External, not inline, so the page works under script-src 'self'.
DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  validatorUrl: null, presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});"""


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package's files."""
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    page = DOCS_HTML.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    def docs():
        return HTMLResponse(page)

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init():
        return Response(DOCS_INIT, media_type="text/javascript")

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")


# ------------------------------------------------------------------ compression and caching for weak links
STATIC_MAX_AGE_S = 86400  # vendored scripts and styles change only with a release


def compressible(path: str) -> bool:
    """Whether a response may be gzipped: static assets, JSON and GeoJSON, the planners' map pages.

    Not the HTML pages that carry a secret beside text a visitor typed (the chief's CSRF token, a
    citizen's form key: BREACH), nor event streams, which must reach the client as they are written.
    """
    if path.endswith("/events"):
        return False
    return path.startswith(("/static/", "/v1/", "/ogc", "/open311/", "/maps/", "/docs", "/openapi.json"))


class CompressionMiddleware:
    """gzip (Starlette's, from 1 KB) where `compressible` allows it; Leaflet goes from 147 KB to 42 KB."""

    def __init__(self, app):
        from starlette.middleware.gzip import GZipMiddleware

        self.app, self.gzip = app, GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope, receive, send):
        """Compress or pass through, by path."""
        if scope["type"] == "http" and compressible(scope["path"]):
            return await self.gzip(scope, receive, send)
        return await self.app(scope, receive, send)


class StaticCacheMiddleware:
    """Browsers keep the vendored assets for a day (they also revalidate by ETag after that)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        """Add Cache-Control to /static responses."""
        if scope["type"] != "http" or not scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)

        async def send_cached(msg):
            if msg["type"] == "http.response.start" and msg["status"] == 200:
                MutableHeaders(scope=msg).setdefault("Cache-Control", f"public, max-age={STATIC_MAX_AGE_S}")
            await send(msg)

        await self.app(scope, receive, send_cached)


# ------------------------------------------------------------------ wiring
def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware (outermost first: headers, compression, CORS, body limit)."""
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(StaticCacheMiddleware)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
                           expose_headers=["Location", "Retry-After", "Idempotent-Replayed"], max_age=600)
    app.add_middleware(CompressionMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
