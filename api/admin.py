"""/v1/admin: replace reference data (boundaries, roster, facilities) and read the audit trail. Admin keys only."""
from __future__ import annotations

import os
import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import ServicesDep, instant, require
from api.errors import Problem
from store import audit
from zonechief.reference import ImportRejected, import_reference
from zonechief.services import Services

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Admin = Annotated[Caller, Depends(require("admin"))]
DryRun = Annotated[bool, Query(description="Validate and show the changes, but change nothing")]

GEO_TYPES = {"application/geo+json": ".geojson", "application/json": ".geojson",
             "application/geopackage+sqlite3": ".gpkg"}
CSV_TYPES = {"text/csv": ".csv"}


class ImportResult(BaseModel):
    """What an import did (or, in a dry run, would do)."""
    dry_run: bool
    kinds: list[str]
    audit_ids: list[int]
    summary: dict


class AuditOut(BaseModel):
    """One audit entry."""
    id: int
    at: str
    actor: str
    action: str
    summary: dict


class AuditPage(BaseModel):
    """A page of audit entries, newest first."""
    limit: int
    offset: int
    items: list[AuditOut]


def _body_spec(types: dict, description: str) -> dict:
    content = {t: {"schema": {"type": "string", "format": "binary"} if suffix == ".gpkg" or suffix == ".csv"
                   else {"type": "object"}} for t, suffix in types.items()}
    return {"requestBody": {"required": True, "description": description, "content": content}}


async def _run_import(request: Request, services: Services, caller: Caller, kind: str, types: dict, dry_run: bool,
                      when: dict | None = None, **options) -> dict:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in types:
        raise Problem(415, f"send the {kind} file as {' or '.join(types)}, not {ctype or 'no Content-Type'}")
    raw = await request.body()
    if not raw.strip():
        raise Problem(422, f"the request body is empty; send the {kind} file")
    fd, path = tempfile.mkstemp(suffix=types[ctype], prefix="zonechief-upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)

        def work():
            # One import at a time, and the swap in commit order.
            with services.reference_lock:
                db = services.db
                arg = {"boundaries": "boundaries", "roster": "roster", "facilities": "facilities_file"}[kind]
                out = import_reference(db, services.index, services.facilities, f"{caller.actor} ({caller.name})"[:100],
                                       dry_run=dry_run, source_names={kind: "upload"}, public_url=services.settings.public_url,
                                       boundary_options=options or None, **(when or {}), **{arg: path})
                if not out.dry_run:
                    services.swap_reference(out.index, out.facilities, out.version)
            if not out.dry_run and "boundaries" in out.kinds:
                services.wake_dispatcher()  # report.reassigned events of the reports that moved
            return out

        try:
            out = await run_in_threadpool(work)
        except ImportRejected as exc:
            # Messages from the readers name the temporary file; the caller knows it as their upload.
            raise ImportRejected(str(exc).replace(path, "the uploaded file")) from exc
    finally:
        os.unlink(path)
    return {"dry_run": out.dry_run, "kinds": out.kinds, "audit_ids": out.audit_ids, "summary": out.summary}


@router.put("/boundaries", response_model=ImportResult, summary="Import a new boundary generation (admin)",
            description="A GeoJSON FeatureCollection (or GeoPackage) of village-level polygons with a `zone_id` "
                        "column, like `zonechief boundaries import`. Validated first (invalid polygons, overlaps, "
                        "gaps, zones the roster or facilities need). It becomes a new boundary generation, valid from "
                        "`valid_from` (default now): then the zones are replaced and every open report whose point "
                        "falls in another zone moves to it and its chief (history step, `report.reassigned` event), "
                        "in one transaction with an audit entry. A later `valid_from` keeps it until then. A past "
                        "one that would rewrite history is refused unless `rewrite_history`. `dry_run` shows the "
                        "changes and how many open reports would change zone. A rejected import changes nothing.",
            openapi_extra=_body_spec(GEO_TYPES, "Boundary layer"))
async def put_boundaries(request: Request, services: ServicesDep, caller: Admin, dry_run: DryRun = False,
                         id_field: Annotated[str | None, Query(max_length=64)] = None,
                         zone_field: Annotated[str, Query(max_length=64)] = "zone_id",
                         allow_repairs: Annotated[bool, Query(description="Accept invalid polygons that can be repaired")] = False,
                         valid_from: Annotated[str | None, Query(description="When the boundaries take effect (the time "
                                                                             "rule: a bare date is that day in Asia/Shanghai); default now")] = None,
                         rewrite_history: Annotated[bool, Query(description="Allow a past valid_from that re-explains "
                                                                            "reports already filed (audited)")] = False):
    """Import boundaries as a new generation."""
    opts = {"zone_field": zone_field, "allow_repairs": allow_repairs}
    if id_field:
        opts["id_field"] = id_field
    when = {"valid_from": instant(valid_from, "valid_from"), "rewrite_history": rewrite_history}
    return await _run_import(request, services, caller, "boundaries", GEO_TYPES, dry_run, when, **opts)


@router.put("/roster", response_model=ImportResult, summary="Replace the roster of chiefs and inspectors (admin)",
            description="CSV with person_id, role (chief|inspector), name, phone, zone_id, effective_from, "
                        "effective_to, like `zonechief roster import`. Every zone_id must exist; one chief per "
                        "zone at a time. A rejected import changes nothing.",
            openapi_extra=_body_spec(CSV_TYPES, "Roster CSV (UTF-8)"))
async def put_roster(request: Request, services: ServicesDep, caller: Admin, dry_run: DryRun = False):
    """Replace the roster."""
    return await _run_import(request, services, caller, "roster", CSV_TYPES, dry_run)


@router.put("/facilities", response_model=ImportResult, summary="Replace the facilities with service codes (admin)",
            description="GeoJSON Points with facility_id, kind, name, service_code, zone_id, like "
                        "`zonechief facilities import`. A rejected import changes nothing.",
            openapi_extra=_body_spec(GEO_TYPES, "Facilities layer"))
async def put_facilities(request: Request, services: ServicesDep, caller: Admin, dry_run: DryRun = False):
    """Replace the facilities."""
    return await _run_import(request, services, caller, "facilities", GEO_TYPES, dry_run)


@router.get("/audit", response_model=AuditPage, summary="Audit trail of reference-data changes (admin)")
def audit_log(services: ServicesDep, caller: Admin,
              action: Annotated[str | None, Query(max_length=64, description="e.g. roster.import")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0)] = 0):
    """The audit trail of reference-data changes, newest first."""
    with services.db.sessions() as s:
        items = [audit.to_dict(e) for e in audit.entries(s, action, limit, offset)]
    return {"limit": limit, "offset": offset, "items": items}
