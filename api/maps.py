"""/maps/*: the planner maps as HTML pages, and /static with the vendored scripts they load."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from maps import BasemapError, MapInputError, ReportFilter, report_heatmap, report_hotspots, zones_map
from maps.aggregate import LOCAL
from maps.assets import STATIC, inline_script_hashes
from maps.basemaps import tile_origins

from api.problems import Problem

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
Since = Annotated[str | None, Query(description="From this date or time (ISO 8601; without a zone, Asia/Shanghai)")]
Until = Annotated[str | None, Query(description="Before this date or time (a date means its start)")]


def _services(request: Request):
    return request.app.state.services


def _static_url(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/static"


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), LOCAL)
        t = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(400, f"{name}={value!r} is not an ISO 8601 date or time (e.g. 2025-07-01 or 2025-07-01T09:30:00+08:00)")
    return t if t.tzinfo else t.replace(tzinfo=LOCAL)


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated parameters and comma-separated lists alike."""
    return tuple(v.strip() for vs in (values or []) for v in vs.split(",") if v.strip())


def _filter(request: Request, since, until, category, status, town, zone) -> ReportFilter:
    try:
        flt = ReportFilter(since=_time(since, "since"), until=_time(until, "until"), categories=_split(category),
                           statuses=_split(status), town=town or None, zone_ids=_split(zone))
        flt.zone_scope(_services(request).index)  # unknown town or zone → 422 now, not an empty map
    except MapInputError as exc:
        raise Problem(422, str(exc), title="Invalid map parameters")
    known = set(_services(request).categories["code"])
    unknown = [c for c in flt.categories if c not in known]
    if unknown:
        raise Problem(422, f"unknown category {', '.join(unknown)}; GET /v1/categories lists the codes",
                      title="Invalid map parameters")
    return flt


def _page(build, basemap: str, tianditu_key: str | None) -> HTMLResponse:
    try:
        m = build()
    except (MapInputError, BasemapError) as exc:
        raise Problem(422, str(exc), title="Invalid map parameters")
    page = m.get_root().render()
    return HTMLResponse(page, headers={"Content-Security-Policy": map_csp(page, tile_origins(basemap, tianditu_key))})


def map_csp(page: str, tiles: list[str]) -> str:
    """The page's own policy: folium writes its map as inline scripts, allowed here by their hashes only."""
    t = " ".join(tiles)
    return (f"default-src 'self'; script-src 'self' {' '.join(inline_script_hashes(page))}; "
            f"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: {t}".rstrip() + "; "
            "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'")


def _category_names(request: Request) -> dict:
    c = _services(request).categories
    return dict(zip(c["code"], c["name"]))


@router.get("/maps/zones", response_class=HTMLResponse, summary="Zones coloured by chief, with facilities (HTML)")
def zones_page(request: Request, basemap: Basemap = "none", town: Town = None,
               at: Annotated[str | None, Query(description="Roster date (ISO 8601); default today")] = None):
    s = _services(request)
    when = _time(at, "at")
    return _page(lambda: zones_map(s.index, s.facilities, basemap=basemap, town=town, at=when,
                                   tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)


@router.get("/maps/heatmap", response_class=HTMLResponse,
            summary="Heat map of reports, aggregated on the server; animated by week or month with `by` (HTML)")
def heatmap_page(request: Request, basemap: Basemap = "none", since: Since = None, until: Until = None,
                 category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                 by: Annotated[Literal["week", "month"] | None, Query(description="Animate by week or month")] = None,
                 cell_m: Annotated[float, Query(ge=25, le=5000, description="Grid cell size in metres")] = 150,
                 recent: Annotated[int, Query(ge=0, le=1000, description="Latest reports shown as markers")] = 200):
    s = _services(request)
    flt = _filter(request, since, until, category, status, town, zone)
    return _page(lambda: report_heatmap(s.db, s.index, flt, by=by, cell_m=cell_m, basemap=basemap, recent=recent,
                                        category_names=_category_names(request),
                                        tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
                 basemap, s.settings.tianditu_key)


@router.get("/maps/hotspots", response_class=HTMLResponse,
            summary="Statistically significant hot and cold spots of reports (Getis-Ord Gi*, FDR) (HTML)")
def hotspots_page(request: Request, basemap: Basemap = "none", since: Since = None, until: Until = None,
                  category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None,
                  cell_m: Annotated[float, Query(ge=100, le=5000, description="Grid cell size in metres")] = 500,
                  permutations: Annotated[int, Query(ge=99, le=9999, description="Permutations for p-values; the FDR needs many")] = 9999):
    s = _services(request)
    flt = _filter(request, since, until, category, status, town, zone)
    return _page(lambda: report_hotspots(s.db, s.index, flt, cell_m=cell_m, permutations=permutations,
                                         basemap=basemap, category_names=_category_names(request),
                                         tianditu_key=s.settings.tianditu_key, static_url=_static_url(request)),
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
