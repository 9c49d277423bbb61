"""Abuse limits and browser hardening over real HTTP: security headers and CSP, Swagger UI without a CDN,
CORS (off by default), request body limits (declared and streamed), the public submission rate limit.
"""
from __future__ import annotations

import math
import re
import time

import httpx
import pytest

from api.app import create_app
from store.keys import create_key
from tests.helpers import LiveServer, inner
from zonechief.settings import Settings

PROBLEM = "application/problem+json"
TILES = "https://tiles.example.org"
ORIGIN = "https://city.example"


@pytest.fixture(scope="module")
def hardened(tmp_path_factory):
    """An app with small limits, CORS for one origin and a tile host."""
    s = Settings(rate_limit_per_minute=3, max_body_bytes=2048, max_upload_bytes=4096, max_batch=10,
                 cors_origins=[ORIGIN], tile_hosts=[TILES])
    app = create_app(settings=s, database_url=f"sqlite:///{tmp_path_factory.mktemp('sec') / 'zc.sqlite'}")
    with app.state.services.db.sessions.begin() as ses:
        _, staff = create_key(ses, "staff", "staff")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        yield {"client": c, "url": srv.url, "staff": {"X-API-Key": staff}}


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    app = create_app(settings=Settings(), database_url=f"sqlite:///{tmp_path_factory.mktemp('def') / 'zc.sqlite'}")
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c


def report(lon, lat, **kw):
    return {"source": "gps", "category": "06010", "location": {"lon": lon, "lat": lat}, **kw}


def assert_problem(r, status, needle=""):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert needle in r.json()["detail"], r.json()["detail"]


# ------------------------------------------------------------------ headers
@pytest.mark.parametrize("path, status", [("/v1/zones", 200), ("/v1/lookup?lon=114.05&lat=23.06", 200),
                                          ("/v1/lookup?lon=x&lat=1", 422), ("/nope", 404), ("/openapi.json", 200),
                                          ("/healthz", 200)])
def test_api_responses_carry_security_headers(default, path, status):
    r = default.get(path)
    assert r.status_code == status
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_html_csp_allows_only_self_and_tile_hosts(hardened, default):
    r = hardened["client"].get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'"  # no inline or remote script
    assert csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert TILES in csp["img-src"] and TILES in csp["connect-src"]
    assert TILES not in default.get("/docs").headers["content-security-policy"]


def test_docs_work_offline(default):
    html = default.get("/docs").text
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the docs page loads something from another host"
    assert "<script>" not in html  # inline scripts would be blocked by the CSP
    for ref in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", html):
        a = default.get(ref)
        assert a.status_code == 200, ref
        assert a.headers["x-content-type-options"] == "nosniff"
    assert "SwaggerUIBundle" in default.get("/docs/assets/swagger-ui-bundle.js").text
    assert '"/openapi.json"' in default.get("/docs/init.js").text
    assert default.get("/redoc").status_code == 404  # would load from a CDN


# ------------------------------------------------------------------ CORS
def test_no_cors_by_default(default):
    r = default.options("/v1/lookup", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    r = default.get("/v1/zones", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_only_for_configured_origins(hardened):
    c = hardened["client"]
    pre = c.options("/v1/reports", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "content-type, idempotency-key"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in pre.headers
    other = c.options("/v1/reports", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert c.get("/v1/zones", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in c.get("/v1/zones", headers={"Origin": "https://evil.example"}).headers


# ------------------------------------------------------------------ body size
def test_body_limit_by_content_length(hardened, zone_index):
    c = hardened["client"]
    body = report(*inner(zone_index, "QS-01"), description="x" * 2000)  # valid, but over 2048 bytes as JSON
    assert_problem(c.post("/v1/reports", json=body, headers=hardened["staff"]), 413, "limit of 2048 bytes")
    ok = report(*inner(zone_index, "QS-01"), description="x" * 100)
    assert c.post("/v1/reports", json=ok, headers=hardened["staff"]).status_code == 201


def test_body_limit_on_streamed_bodies(hardened):
    """Chunked uploads have no Content-Length: the bytes are counted as they arrive."""
    c = hardened["client"]

    def chunks(n):
        for _ in range(n):
            yield b" " * 512

    r = c.post("/v1/reports", content=chunks(10), headers={"Content-Type": "application/json", **hardened["staff"]})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "2048 bytes")
    # Same for a handler that reads the body itself (batch lookup; its own limit is larger).
    r = c.post("/v1/lookup", content=chunks(200), headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "bytes")


def test_upload_and_batch_limits(hardened):
    c = hardened["client"]
    # Admin uploads may be larger than ordinary bodies, up to max_upload_bytes; checked before the key.
    r = c.put("/v1/admin/roster", content=b"a" * 3000, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401
    assert_problem(c.put("/v1/admin/roster", content=b"a" * 5000, headers={"Content-Type": "text/csv"}), 413, "4096")
    pts = [{"lon": 114.05, "lat": 23.06}] * 11
    assert_problem(c.post("/v1/lookup", json=pts), 413, "maximum of 10")


# ------------------------------------------------------------------ rate limit
def test_public_submissions_are_rate_limited_per_ip(hardened, zone_index):
    c = hardened["client"]
    body = report(*inner(zone_index, "QS-02"))
    t0 = time.monotonic()
    answers = [c.post("/v1/reports", json=body) for _ in range(6)]
    elapsed = time.monotonic() - t0
    codes = [r.status_code for r in answers]
    # 3 per minute, burst 3: the first three pass; later ones only as tokens refill (1 per 20 s).
    allowed = 3 + math.floor(elapsed / 20)
    assert codes[:3] == [201] * 3, codes
    assert codes.count(201) <= allowed and 429 in codes, (codes, elapsed)
    limited = next(r for r in answers if r.status_code == 429)
    assert_problem(limited, 429, "at most 3 per minute")
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    # Staff are exempt; another address has its own bucket.
    assert all(c.post("/v1/reports", json=body, headers=hardened["staff"]).status_code == 201 for _ in range(4))
    with httpx.Client(base_url=hardened["url"], transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        assert other.post("/v1/reports", json=body).status_code == 201
    # Lookups are not limited.
    assert all(c.get("/v1/lookup", params={"lon": 114.05, "lat": 23.06}).status_code == 200 for _ in range(10))


def test_docs_render_in_a_browser_under_the_csp(default):
    """Swagger UI really renders from local files, with the CSP in force and every other host blocked."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is needed (scripts/test.sh installs it)"
    base = str(default.base_url).rstrip("/")
    outside, violations = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = b.new_page()

            def guard(route):
                if route.request.url.startswith(base):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", guard)
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(base + "/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # operations listed: the UI ran
            paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
        finally:
            b.close()
    assert any("/v1/lookup" in t for t in paths)
    assert not outside, outside
    assert not violations, violations
