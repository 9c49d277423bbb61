"""The app factory: "who is responsible here?" over HTTP, a thin face over gis and zonechief.

Each resource has its router module (lookup, geography, health, reports, admin, ogc,
open311, maps); errors are answered from one table (api/errors.py); dependencies are in
api/deps.py.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import zonechief
from api import admin, boundaries, chief, citizen, errors, geography, health, lookup, maps, middleware, ogc, open311, reports, tracking, webhooks
from api.dashboard import router as dashboard_router  # /dashboard and /v1/dashboard/* (issue 17)
from api.lookup import assignment_json  # noqa: F401  (re-exported: the CLI prints the same JSON)
from api.patrol_coverage import router as patrol_coverage_router  # /v1/patrols/coverage (issue 17)
from api.patrols import router as patrols_router  # /v1/patrols (issue 17)
from api.planning import router as planning_router  # /v1/plan/stations (issue 17)
from gis.lookup import ZoneIndex
from zonechief.services import Services
from zonechief.settings import Settings

log = logging.getLogger("zonechief.api")
DESCRIPTION = """
Answers **"who is responsible here?"** for a coordinate in Dongguan's zone-chief
system (城管片长制): the zone, village/community, town, the zone chief (片长) and
patrol inspectors in force.

* Inputs name their coordinate system with `crs`: `wgs84` (GPS), `gcj02`
  (Amap/Tencent/WeChat), `bd09` (Baidu), `cgcs2000`, or any EPSG code
  (e.g. `EPSG:4547`). Outputs are WGS-84 unless `out_crs` says otherwise.
  A CRS that cannot be used here (another planet, no transformation to WGS-84)
  is a 400 listing what is supported; degrees sent with a projected CRS are a 422.
* Dates and times: a bare date (`2025-07-01`) is that calendar day in Asia/Shanghai
  (as an end bound, the whole day is included); a date-time without an offset is
  Asia/Shanghai wall time, except in OGC API and Open311, which require an offset.
* Errors are RFC 9457 `application/problem+json`.
* The shipped village cells and zone groupings are **illustrative**; town
  outlines are approximate. Names and codes are official (NBS 2023).
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    """With open_store, open the report store before the first request: migrate it and put the
    reference data stored there in force. A database that is down does not stop the app: lookups
    answer from the data in hand, and the store is opened again on first use (Services.db).
    Then, on PostGIS, listen for reference-data imports by other processes (other workers, the CLI).
    The hot-spot kernels load in the background (health.WarmUp), not delaying readiness."""
    services = app.state.services
    if app.state.open_store:
        try:
            await run_in_threadpool(lambda: services.db)
        except Exception as exc:
            log.warning("report store not opened at startup (%s); it will be retried on first use", type(exc).__name__)
        services.listen_for_reference_changes()
        services.start_dispatcher()  # report events to webhook subscribers (zonechief.dispatcher)
        services.start_activator()  # boundary generations valid from later take effect (zonechief.generations)
    app.state.warm_up = health.WarmUp(_warm_hotspots)
    try:
        yield
    finally:
        await run_in_threadpool(services.stop_listening)
        await run_in_threadpool(services.stop_dispatcher)
        await run_in_threadpool(services.stop_activator)


def _warm_hotspots():
    from gis.hotspots import warm_up  # imported here, in the warm-up thread: importing it takes seconds

    warm_up()


def create_app(index: ZoneIndex | None = None, settings: Settings | None = None,
               database_url: str | None = None, *, open_store: bool = False) -> FastAPI:
    """The app. The report store is opened (and migrated) on first use, or at startup with `open_store`."""
    services = Services(settings, index, database_url)
    # /docs is served from local files by middleware.install_docs (no CDN; works under the CSP).
    app = FastAPI(title="zonechief", version=zonechief.__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    app.state.services = services
    app.state.open_store = open_store
    errors.install(app, html=citizen.error_page)  # the citizen's pages answer errors as HTML
    middleware.install(app, services.settings)
    middleware.install_docs(app)
    for r in (reports.router, tracking.router, citizen.router, admin.router, webhooks.router, chief.router, open311.router,
              ogc.router, maps.router, health.router, lookup.router(services.settings), geography.router, boundaries.router):
        app.include_router(r)
    app.include_router(dashboard_router)
    app.include_router(patrol_coverage_router)  # before /v1/patrols/{…} routes could shadow it
    app.include_router(patrols_router)
    app.include_router(planning_router)
    app.add_api_route("/", maps.index_page, include_in_schema=False)  # HTML index linking the maps and /docs
    lookup.install_fast_lookup(app)
    errors.document_problems(app)
    return app


def serve_app() -> FastAPI:
    """The app of one `zonechief serve` worker process (uvicorn factory): built from the settings, store opened at startup."""
    return create_app(open_store=True)
