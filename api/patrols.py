"""/v1/patrols: importing patrol GPS tracks (staff) and listing them (issue 17).

POST takes a GPX or CSV file (multipart `file`, repeatable; or the file itself as the body with
Content-Type application/gpx+xml or text/csv) or JSON points, and answers 201 with the report per
track (zonechief.patrols), or 422 with the reasons when nothing could be imported.
"""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Caller
from api.deps import ServicesDep, TimeRangeDep, require
from api.errors import Problem
from zonechief.patrols import import_json, import_patrols

router = APIRouter(prefix="/v1", tags=["patrols"])
Staff = Annotated[Caller, Depends(require("staff"))]

_BODY_DOC = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "person": {"type": "string"}, "team": {"type": "string"}, "crs": {"type": "string"},
        "dry_run": {"type": "boolean"}}, "required": ["file"]}},
    "application/json": {"schema": {"type": "object", "example": {
        "person_id": "QS-I01", "crs": "wgs84",
        "points": [{"time": "2026-11-02T09:00:00+08:00", "lon": 114.048, "lat": 23.0866}]}}},
    "application/gpx+xml": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}}}}}


@router.post("/patrols", status_code=201, summary="Import patrol tracks (staff)", openapi_extra=_BODY_DOC,
             description="GPX or CSV (person_id, time, lon, lat, crs) files, or JSON points. A track is one person's "
                         "fixes with no gap over 30 min; tracks with times going backwards, jumps faster than "
                         "150 km/h or mostly outside both towns are rejected with the reason, the rest imported "
                         "in one transaction. 422 when nothing can be imported. Times without an offset are "
                         "Asia/Shanghai; positions are stored in WGS-84.")
async def post_patrols(request: Request, services: ServicesDep, caller: Staff, response: Response,
                       person: Annotated[str | None, Query(max_length=32)] = None,
                       team: Annotated[str | None, Query(max_length=32)] = None,
                       crs: Annotated[str | None, Query(max_length=200)] = None,
                       dry_run: bool = False):
    """Import tracks; the answer lists imported patrols and rejected tracks with reasons."""
    from starlette.concurrency import run_in_threadpool

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    actor = f"api:{caller.name}"
    if kind == "multipart/form-data":
        form = await request.form()
        files = [f for f in form.getlist("file") if hasattr(f, "read")]
        if not files:
            raise Problem(422, "send the track files in the multipart field `file`")
        sources = [(f.filename or "upload", await f.read()) for f in files]
        person = person or _text(form.get("person"))
        team = team or _text(form.get("team"))
        crs = crs or _text(form.get("crs"))
        dry_run = dry_run or _text(form.get("dry_run")) in ("1", "true", "yes", "on")
    elif kind in ("application/json", "application/geo+json"):
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:
            raise Problem(422, f"the body is not JSON: {exc}") from None
        res = await run_in_threadpool(import_json, services.db, services.index, payload, actor=actor, person=person,
                                      team=team, crs=crs, dry_run=dry_run)
        return _answer(res, response)
    elif kind in ("application/gpx+xml", "application/xml", "text/xml", "text/csv", "application/octet-stream"):
        sources = [("upload.gpx" if "xml" in kind else "upload.csv", await request.body())]
    else:
        raise Problem(415, "send multipart/form-data (field `file`), application/json points, "
                           "application/gpx+xml or text/csv", title="Unsupported Media Type")
    res = await run_in_threadpool(import_patrols, services.db, services.index, sources, actor=actor, person=person,
                                  team=team, crs=crs, dry_run=dry_run)
    return _answer(res, response)


def _text(v) -> str | None:
    return v.strip() or None if isinstance(v, str) else None


def _answer(res, response: Response) -> dict:
    if res.dry_run:
        response.status_code = 200
    return res.as_dict()


@router.get("/patrols", summary="List patrols (staff)")
def list_patrols(services: ServicesDep, caller: Staff, times: TimeRangeDep,
                 person_id: Annotated[str | None, Query(max_length=32)] = None,
                 team: Annotated[str | None, Query(max_length=32)] = None,
                 town: Annotated[str | None, Query(max_length=50)] = None,
                 geometry: Annotated[bool, Query(description="include each patrol's line (GeoJSON, WGS-84)")] = False,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0):
    """Patrols overlapping [since, until), oldest first: who, team, town, start, end, fixes, length, source."""
    import shapely

    from store.patrols_repo import patrols_frame

    df = patrols_frame(services.db, times.since, times.until, town=town, team=team,
                       person_ids=[person_id] if person_id else None)
    page = df.iloc[offset:offset + limit]
    out = []
    for r in page.itertuples():
        d = {"patrol_id": int(r.patrol_id), "person_id": r.person_id, "team": _str(r.team), "town": _str(r.town),
             "started_at": r.started_at.isoformat(), "ended_at": r.ended_at.isoformat(), "n_points": int(r.n_points),
             "length_m": round(float(r.length_m), 1), "source": r.source, "synthetic": bool(r.synthetic),
             "imported_at": r.imported_at.isoformat(), "imported_by": _str(r.imported_by)}
        if geometry:
            d["geometry"] = json.loads(shapely.to_geojson(r.geometry))
        out.append(d)
    return {"total": len(df), "limit": limit, "offset": offset, "patrols": out}


def _str(v) -> str | None:
    return v if isinstance(v, str) else None


# ---------------------------------------------------------------- coverage (helper P2 adds GET /v1/patrols/coverage here)
