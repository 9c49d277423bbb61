"""/dashboard: the planner's page, and the JSON and exports behind it (/v1/dashboard/...).

The page (api/templates/dashboard.html, maps/static/dashboard/) holds the filters; it fetches
the charts (Vega-Lite specs with inline data, maps.charts) and the map layers as JSON with the
same query string the maps take (since, until, town, zone, category, status: api.maps' filter)
and renders them with the vendored Leaflet and vega-embed. Layers are a list in the page
script; an optional layer (stations, patrols) is offered when its route is in this app.
"""
from __future__ import annotations

import io
import json
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.citizen_pages import page
from api.deps import ServicesDep, TimeRangeDep
from api.errors import Problem
from api.maps import Categories, Statuses, Town, Zones, _category_names, _filter
from maps.aggregate import aggregate_store, map_grid
from maps.charts import chart_spec, dashboard_charts
from maps.heat import MAX_CELLS
from maps.hotspots import compute_hotspots
from maps.zones import select_zones
from zonechief.dashboard import TABLES, cached, cached_tables, dashboard_tables
from zonechief.workflow import STATUS_NAMES, STATUSES

router = APIRouter(tags=["dashboard"])

# Layers of other modules, shown as toggles when their route is in the app: id -> (path, label).
OPTIONAL_LAYERS = {"stations": ("/v1/plan/stations", "驿站选址 Stations"),
                   "patrols": ("/v1/patrols/coverage", "巡查覆盖 Patrol coverage")}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TABLE_TITLES = {"weekly": "每周报告 Reports per week", "chiefs": "片长 Chiefs: backlog and time to fix",
                "satisfaction": "满意度 Satisfaction per zone", "workload": "工作量 Workload across chiefs"}


def _tables(s, when, category, status, town, zone):
    flt = _filter(s, when, category, status, town, zone)
    return flt, cached_tables(s.db, s.index, flt, _category_names(s))


def _json_safe(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


@router.get("/dashboard", response_class=HTMLResponse, summary="The planner's dashboard: map layers and charts (HTML)")
def dashboard_page(request: Request, s: ServicesDep):
    """The page; its script reads the filters from the URL and fetches the rest."""
    paths = request.app.openapi()["paths"]  # built once and kept by FastAPI; routers may nest, the schema does not
    optional = [{"id": k, "name": name} for k, (path, name) in OPTIONAL_LAYERS.items() if path in paths]
    zones = s.index.zones
    cats = s.categories
    return page(request, "dashboard.html",
                towns=sorted(zones["town"].unique()),
                zones=[(z, f"{z} {n}", t) for z, n, t in zip(zones["zone_id"], zones["name"], zones["town"])],
                categories=list(zip(cats["code"], cats["name"])),
                statuses=[(st, STATUS_NAMES.get(st, "")) for st in STATUSES],
                tables=[(t, TABLE_TITLES[t]) for t in TABLES],
                optional_layers=json.dumps(optional, ensure_ascii=False))


Part = Annotated[Literal["all", "main", "time_to_fix"],
                 Query(description="all charts; main: all but time_to_fix (the slowest query, it joins the "
                                   "status events); time_to_fix: that chart only. The page asks for both halves at once.")]


@router.get("/v1/dashboard/charts", summary="The dashboard's charts as Vega-Lite specs with inline data")
async def charts(s: ServicesDep, *, when: TimeRangeDep, category: Categories = None, status: Statuses = None,
                 town: Town = None, zone: Zones = None, part: Part = "all"):
    """The charts (weekly, backlog, time_to_fix, satisfaction, workload) by name, the Gini and the filter in words."""
    def build(flt):
        tables = ("chiefs",) if part == "time_to_fix" else TABLES
        t = dashboard_tables(s.db, s.index, flt, _category_names(s), time_to_fix=part != "main", tables=tables)
        made = dashboard_charts(t)
        names = {"all": list(made), "main": [k for k in made if k != "time_to_fix"], "time_to_fix": ["time_to_fix"]}[part]
        reports = t.chiefs["reports"].sum() if part == "time_to_fix" else t.weekly["reports"].sum()
        # Serialised once: a cached answer is bytes, not specs to encode again (altair's to_dict costs ~0.3 s).
        return json.dumps({"filters": flt.describe(_category_names(s)), "reports": int(reports),
                           "gini": _json_safe(t.gini), "charts": {k: chart_spec(made[k]) for k in names}},
                          ensure_ascii=False, allow_nan=False).encode("utf-8")

    def answer():
        flt = _filter(s, when, category, status, town, zone)  # 422 before any cache
        return cached(s.db, ("charts", id(s.index), flt, part), lambda: build(flt))

    return Response(await run_in_threadpool(answer), media_type="application/json")


def _export_frame(t, name: str) -> pd.DataFrame:
    df = t.table(name)
    return df.reset_index() if df.index.name else df


@router.get("/v1/dashboard/tables/{name}.{fmt}", summary="One table of the dashboard as CSV (UTF-8 with BOM) or XLSX")
async def table_export(s: ServicesDep, name: str, fmt: Literal["csv", "xlsx"], *, when: TimeRangeDep,
                       category: Categories = None, status: Statuses = None, town: Town = None, zone: Zones = None):
    """weekly, chiefs, satisfaction or workload, with the page's filters."""
    if name not in TABLES:
        raise Problem(404, f"no table {name!r}; tables are {', '.join(TABLES)}", title="Not found")

    def build() -> Response:
        df = _export_frame(_tables(s, when, category, status, town, zone)[1], name)
        disposition = {"Content-Disposition": f'attachment; filename="zonechief-{name}.{fmt}"'}
        if fmt == "csv":  # the BOM makes Excel read the Chinese as UTF-8
            return Response(("\ufeff" + df.to_csv(index=False)).encode("utf-8"),
                            media_type="text/csv; charset=utf-8", headers=disposition)
        buf = io.BytesIO()
        with pd.ExcelWriter(buf, engine="openpyxl") as xw:
            df.to_excel(xw, sheet_name=name, index=False)
        return Response(buf.getvalue(), media_type=XLSX, headers=disposition)

    return await run_in_threadpool(build)


@router.get("/v1/dashboard/layers/heat", summary="Reports counted per grid cell: [lat, lon, count] rows for a heat layer")
async def heat_layer(s: ServicesDep, *, when: TimeRangeDep, category: Categories = None, status: Statuses = None,
                     town: Town = None, zone: Zones = None,
                     cell_m: Annotated[float, Query(ge=25, le=5000, description="Grid cell size in metres")] = 150):
    """The heat map's cells (aggregated on the server, as /maps/heatmap), coarsened to at most MAX_CELLS."""
    def build():
        flt = _filter(s, when, category, status, town, zone)
        heat = aggregate_store(s.db, s.index, flt, map_grid(s.index, cell_m)).within(MAX_CELLS)
        lon, lat = heat.centres()
        pts = np.column_stack([np.round(lat, 5), np.round(lon, 5), heat.count]).tolist()
        return {"cell_m": heat.grid.cell_m, "reports": heat.n_reports, "points": pts, "notes": heat.notes}

    def answer():
        flt = _filter(s, when, category, status, town, zone)  # 422 before any cache
        return cached(s.db, ("heat", id(s.index), flt, cell_m), build)

    return JSONResponse(await run_in_threadpool(answer))


@router.get("/v1/dashboard/layers/hotspots", summary="Hot and cold spots (Getis-Ord Gi*, FDR) as GeoJSON cells")
async def hotspots_layer(s: ServicesDep, *, when: TimeRangeDep, category: Categories = None, status: Statuses = None,
                         town: Town = None, zone: Zones = None,
                         cell_m: Annotated[float, Query(ge=100, le=5000, description="Grid cell size in metres")] = 500,
                         permutations: Annotated[int, Query(ge=99, le=9999)] = 999):
    """The significant cells only (class and z in the properties), as /maps/hotspots computes them."""
    def build():
        flt = _filter(s, when, category, status, town, zone)
        lon, lat, _ = s.db.map_aggregates.points(flt.conditions(s.index))
        cells = compute_hotspots(lon, lat, select_zones(s.index, flt.town, flt.zone_ids), cell_m=cell_m,
                                 permutations=permutations)
        cells = cells[cells["class"].astype(str) != "not significant"]
        out = cells[["geometry", "class", "gi_z", "count"]].copy()
        out["class"] = out["class"].astype(str)
        return json.loads(out.to_crs(4326).to_json(drop_id=True))

    return JSONResponse(await run_in_threadpool(build))


@router.get("/v1/dashboard/layers/zones", summary="The zones the filter selects, with their chief in force, as GeoJSON")
def zones_layer(s: ServicesDep, *, town: Town = None, zone: Zones = None):
    """Zone outlines for the dashboard map (town and zone filters only: zones have no time or category)."""
    from api.maps import _split

    z = select_zones(s.index, town or None, _split(zone))
    chiefs = s.index.roster.chiefs_by_zone()
    out = z[["zone_id", "name", "town", "geometry"]].copy()
    out["chief"] = [getattr(chiefs.get(i), "name", "") for i in out["zone_id"]]
    return JSONResponse(json.loads(out.to_crs(4326).to_json(drop_id=True)))
