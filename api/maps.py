"""/maps/*: the planner maps as HTML pages, and /static with the vendored scripts they load."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.auth import Caller
from api.deps import AtDep, ServicesDep, TimeRange, TimeRangeDep, require
from api.errors import Problem
from api.middleware import html_csp
from maps import ReportFilter, report_heatmap, report_hotspots, zones_map
from maps.assets import STATIC, inline_script_hashes
from maps.basemaps import tile_origins
from zonechief.services import Services

router = APIRouter(tags=["maps"])
# No page loads a script or stylesheet from anywhere else (see maps/vendor.py).
router.mount("/static", StaticFiles(directory=STATIC), name="static")

Basemap = Annotated[Literal["none", "osm", "tianditu", "amap"],
                    Query(description="none (blank, for offline intranets), osm, tianditu (needs ZONECHIEF_TIANDITU_KEY) "
                                      "or amap (overlays shifted to GCJ-02 to match its tiles)")]
Town = Annotated[str | None, Query(description="Town name or code, e.g. 企石镇 or 441900105")]
Zones = Annotated[list[str] | None, Query(alias="zone", description="Zone id(s), e.g. QS-15; repeat for several")]
Categories = Annotated[list[str] | None, Query(alias="category", description="GB/T 47678.5 code(s), e.g. 06010")]
Statuses = Annotated[list[str] | None, Query(alias="status", description="Status(es), e.g. new, assigned")]


def _static_url(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/static"


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated parameters and comma-separated lists alike."""
    return tuple(v.strip() for vs in (values or []) for v in vs.split(",") if v.strip())


def _filter(services: Services, when: TimeRange, category, status, town, zone) -> ReportFilter:
    """The report filter of a map; MapInputError (422) for one that selects nothing that exists."""
    flt = ReportFilter(since=when.since, until=when.until, categories=_split(category),
                       statuses=_split(status), town=town or None, zone_ids=_split(zone))
    flt.zone_scope(services.index)  # unknown town or zone → 422 now, not an empty map
    known = set(services.categories["code"])
    unknown = [c for c in flt.categories if c not in known]
    if unknown:
        raise Problem(422, f"unknown category {', '.join(unknown)}; GET /v1/categories lists the codes",
                      title="Invalid map parameters")
    return flt


def _page(build, basemap: str, tianditu_key: str | None) -> HTMLResponse:
    """The map as a page (MapInputError, BasemapError → 422), with its own policy: folium writes
    the map as inline scripts, allowed by their hashes only."""
    page = build().get_root().render()
    csp = html_csp(tile_origins(basemap, tianditu_key), inline_script_hashes(page))
    return HTMLResponse(page, headers={"Content-Security-Policy": csp})


def _category_names(services: Services) -> dict:
    c = services.categories
    return dict(zip(c["code"], c["name"]))


@router.get("/maps/zones", response_class=HTMLResponse, summary="Zones coloured by chief, with facilities (HTML)")
def zones_page(request: Request, s: ServicesDep, *, basemap: Basemap = "none", town: Town = None, at: AtDep):
    """The zones map page: the boundaries in force at `at` (default now), with the chiefs then."""
    return _page(lambda: zones_map(s.index_at(at), s.facilities, basemap=basemap, town=town, at=at,
                                   tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)


@router.get("/maps/heatmap", response_class=HTMLResponse,
            summary="Heat map of reports, aggregated on the server; animated by week or month with `by` (HTML)")
def heatmap_page(request: Request, s: ServicesDep, *, basemap: Basemap = "none", when: TimeRangeDep,
                 category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                 by: Annotated[Literal["week", "month"] | None, Query(description="Animate by week or month")] = None,
                 cell_m: Annotated[float, Query(ge=25, le=5000, description="Grid cell size in metres")] = 150,
                 recent: Annotated[int, Query(ge=0, le=1000, description="Latest reports shown as markers")] = 200):
    """The heat map page."""
    flt = _filter(s, when, category, status, town, zone)
    return _page(lambda: report_heatmap(s.db, s.index, flt, by=by, cell_m=cell_m, basemap=basemap, recent=recent,
                                        category_names=_category_names(s),
                                        tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)


@router.get("/maps/hotspots", response_class=HTMLResponse,
            summary="Statistically significant hot and cold spots of reports (Getis-Ord Gi*, FDR) (HTML)")
def hotspots_page(request: Request, s: ServicesDep, *, basemap: Basemap = "none", when: TimeRangeDep,
                  category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                  cell_m: Annotated[float, Query(ge=100, le=5000, description="Grid cell size in metres")] = 500,
                  permutations: Annotated[int, Query(ge=99, le=9999, description="Permutations for p-values; the FDR needs many")] = 9999):
    """The hot-spot map page."""
    flt = _filter(s, when, category, status, town, zone)
    return _page(lambda: report_hotspots(s.db, s.index, flt, cell_m=cell_m, permutations=permutations,
                                         basemap=basemap, category_names=_category_names(s),
                                         tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)


# ---------------------------------------------------------------- patrol coverage (issue 17; helper P2)
@router.get("/maps/patrols", response_class=HTMLResponse,
            summary="Patrol coverage vs demand: hot-spot cells by class, tracks and stops (staff) (HTML)")
def patrols_page(request: Request, s: ServicesDep, caller: Annotated[Caller, Depends(require("staff"))], *,
                 basemap: Basemap = "none", when: TimeRangeDep, category: Categories = None, town: Town = None,
                 zone: Zones = None, team: Annotated[str | None, Query(max_length=32, description="A team id")] = None,
                 cell_m: Annotated[float, Query(ge=100, le=2000, description="Hot-spot grid cell in metres")] = 250):
    """The patrol coverage map page (default period: the 7 days before until, or now)."""
    from gis.patrol_coverage import CoverageParams
    from maps.patrols import report_patrols
    from zonechief.patrol_coverage import CoverageRequest

    flt = _filter(s, when, category, None, town, zone)
    req = CoverageRequest.of(flt.since, flt.until, town=flt.town, zone_ids=flt.zone_ids, team=team or None,
                             categories=flt.categories)
    return _page(lambda: report_patrols(s.db, s.index, req, CoverageParams(cell_m=cell_m), basemap=basemap,
                                        tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)



@router.get("/maps/stations", response_class=HTMLResponse,
            summary="Station siting: existing stations, proposed sites, coverage rings, uncovered demand (HTML)")
def stations_page(request: Request, s: ServicesDep, *, basemap: Basemap = "none", when: TimeRangeDep,
                  category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                  model: Annotated[Literal["mclp", "pmedian", "lscp"], Query(description="mclp, pmedian or lscp")] = "mclp",
                  add: Annotated[int, Query(description="Stations to add (mclp, pmedian)")] = 2,
                  radius: Annotated[float, Query(description="Coverage radius (m)")] = 1000.0,
                  grid: Annotated[float, Query(ge=25, le=5000, description="Grid cell (m)")] = 250.0,
                  time_limit: Annotated[float, Query(gt=0, le=120, description="Solver time limit (s)")] = 30.0):
    """The siting map page: the same plan as GET /v1/plan/stations with the same parameters."""
    from api.planning import station_plan  # api.planning reuses this module's filter parameters
    from maps.stations import stations_map

    plan = station_plan(s, when, category, status, town, zone, model, add, radius, grid, time_limit)
    flt = _filter(s, when, category, status, town, zone)
    return _page(lambda: stations_map(plan, s.index, basemap=basemap, flt=flt, tianditu_key=s.settings.tianditu_key,
                                      static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)

INDEX = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>zonechief</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:44em;margin:2em auto;padding:0 1em;line-height:1.6}
li{margin:.2em 0}small{color:#666}</style></head><body>
<h1>zonechief 城管片长制</h1>
<p>谁负责这里？Who is responsible here?</p>
<h2>地图 Maps</h2>
<ul>
<li><a href="maps/zones">片区与片长 Zones and chiefs</a></li>
<li><a href="maps/heatmap">报告热力图 Report heat map</a>
 · <a href="maps/heatmap?by=week">按周 by week</a> · <a href="maps/heatmap?by=month">按月 by month</a></li>
<li><a href="maps/hotspots">热点分析 Hot spots (Getis-Ord Gi*)</a></li>
<li><a href="dashboard">规划看板 Planner's dashboard</a></li>
<li><a href="maps/stations">站点选址 Station siting</a></li>
<li><a href="maps/patrols">巡查覆盖 Patrol coverage vs demand</a> <small>(staff)</small></li>
<li><a href="maps/boundaries/diff">边界变化 What moved between boundary generations</a></li>
</ul>
<p><small>底图 Base map: <code>?basemap=none|osm|tianditu|amap</code> (default none: works with no internet).
Filters: <code>since, until, category, status, town, zone</code>.
区划为示意 Boundaries are illustrative.</small></p>
<h2>API</h2>
<ul><li><a href="docs">API docs (OpenAPI)</a></li><li><a href="healthz">healthz</a></li></ul>
</body></html>
"""


def index_page() -> HTMLResponse:
    """A small HTML index: the maps and the API docs (relative links, so it works behind a path prefix)."""
    return HTMLResponse(INDEX)
