"""/v1/reports and chief queues over zonechief.reports."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Caller
from api.deps import BboxDep, CallerDep, IndexDep, ServicesDep, TimeRangeDep, limit_public_submissions, require
from api.errors import Problem
from zonechief.reports import ReportIn, report_to_dict
from zonechief.workflow import STATUSES

router = APIRouter(prefix="/v1", tags=["reports"])
Staff = Annotated[Caller, Depends(require("staff"))]


class StatusChange(BaseModel):
    """A status change, with an optional note for the history."""
    model_config = ConfigDict(extra="forbid")  # an unknown field is a mistake to report, not to ignore
    status: Literal["new", "assigned", "in_progress", "resolved", "closed", "rejected", "duplicate"]
    note: str | None = Field(None, max_length=2000)


@router.post("/reports", status_code=201, summary="File a report",
             dependencies=[Depends(limit_public_submissions)],  # per-IP limit for anonymous/public callers
             description="Located by coordinates (with their CRS), a city service code, or an address; assigned to "
                         "the zone and chief in force. The same `idempotency_key` (or `Idempotency-Key` header) twice "
                         "creates one report: the repeat answers 200 with the first report.")
def create_report(body: ReportIn, services: ServicesDep, response: Response, caller: CallerDep,
                  idempotency_key: Annotated[str | None, Header(max_length=128)] = None):
    """File a report."""
    if body.created_at is not None and not caller.at_least("staff"):
        raise Problem(403, "created_at may only be set with a staff key (for imports); leave it out", title="Forbidden")
    if idempotency_key and not body.idempotency_key:
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    report, created = services.reports.create(body, actor=caller.actor)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/reports/{report.id}"
    return report_to_dict(report, personal=caller.at_least("staff"))


@router.get("/reports", summary="Search reports (paginated)")
def list_reports(services: ServicesDep, caller: CallerDep, *,
                 zone_id: str | None = None, chief_id: str | None = None,
                 status: Annotated[list[str] | None, Query(description=f"one or more of {', '.join(STATUSES)}")] = None,
                 category: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
                 when: TimeRangeDep, bbox: BboxDep,
                 needs_review: bool | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0):
    """Reports matching the filters, newest first."""
    for s in status or []:
        if s not in STATUSES:
            raise Problem(422, f"unknown status {s!r}; statuses are {', '.join(STATUSES)}")
    rows, total = services.reports.search(zone_id=zone_id, chief_id=chief_id, status=status, category=category,
                                          since=when.since, until=when.until, bbox=bbox,
                                          needs_review=needs_review, limit=limit, offset=offset)
    personal = caller.at_least("staff")
    nxt = offset + len(rows)
    return {"total": total, "limit": limit, "offset": offset, "next_offset": nxt if nxt < total else None,
            "items": [report_to_dict(r, personal) for r in rows]}


@router.get("/reports/{report_id}", summary="One report")
def get_report(report_id: int, services: ServicesDep, caller: CallerDep):
    """One report; reporter contact only for staff and admin keys."""
    return report_to_dict(services.reports.get(report_id), personal=caller.at_least("staff"))


@router.patch("/reports/{report_id}", summary="Change a report's status (staff)",
              description="Only valid transitions: new→assigned→in_progress→resolved→closed; new/assigned→rejected "
                          "or duplicate; in_progress→assigned (hand back); resolved→in_progress (reopen).")
def patch_report(report_id: int, change: StatusChange, services: ServicesDep, caller: Staff):
    """Change a report's status."""
    svc = services.reports
    if caller.role == "staff" and caller.chief_id:
        r = svc.get(report_id)
        if r.chief_id != caller.chief_id:
            raise Problem(403, f"report {report_id} belongs to chief {r.chief_id}; your key acts for {caller.chief_id}",
                          title="Forbidden")
    return report_to_dict(svc.transition(report_id, change.status, caller.actor, change.note), personal=True)


@router.get("/chiefs/{chief_id}/queue", summary="Open reports of a chief, oldest first (staff)")
def chief_queue(chief_id: str, services: ServicesDep, index: IndexDep, caller: Staff):
    """A chief's open reports, oldest first."""
    if caller.role == "staff" and caller.chief_id and caller.chief_id != chief_id:
        raise Problem(403, f"your key acts for chief {caller.chief_id}, not {chief_id}", title="Forbidden")
    if index.roster is None or chief_id not in set(index.roster.table.person_id):
        raise Problem(404, f"no chief {chief_id!r}; GET /v1/chiefs lists them")
    rows = services.reports.queue(chief_id)
    return {"chief_id": chief_id, "count": len(rows), "items": [report_to_dict(r, True) for r in rows]}
