"""/v1/reports and chief queues over zonechief.reports."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Caller
from api.deps import BboxDep, CallerDep, IndexDep, ServicesDep, TimeRangeDep, limit_public_submissions, require
from api.errors import Problem
from zonechief.photos import PhotoError, process_photo
from zonechief.reports import MEDIA_KINDS, ReportIn, report_to_dict
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
    # Whoever filed it (or repeats its idempotency key) gets the tracking link to follow it.
    return report_to_dict(report, personal=caller.at_least("staff"), public_url=services.settings.public_url,
                          tracking=True)


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
    """One report; reporter contact, photos, the citizen's answer and tracking link only for staff and admin keys."""
    return report_to_dict(services.reports.get(report_id), personal=caller.at_least("staff"),
                          public_url=services.settings.public_url)


@router.patch("/reports/{report_id}", summary="Change a report's status (staff)",
              description="Only valid transitions: new→assigned→in_progress→resolved→closed; new/assigned→rejected "
                          "or duplicate; in_progress→assigned (hand back); resolved→in_progress (reopen).")
def patch_report(report_id: int, change: StatusChange, services: ServicesDep, caller: Staff):
    """Change a report's status."""
    _check_own(services, report_id, caller)
    return report_to_dict(services.reports.transition(report_id, change.status, caller.actor, change.note),
                          personal=True, public_url=services.settings.public_url)


def _check_own(services, report_id: int, caller: Caller) -> None:
    """A staff key bound to a chief acts on that chief's reports only."""
    if caller.role == "staff" and caller.chief_id:  # (only then is the report read)
        r = services.reports.get(report_id)
        if not caller.acts_for(r.chief_id):
            raise Problem(403, f"report {report_id} belongs to chief {r.chief_id}; your key acts for {caller.chief_id}",
                          title="Forbidden")


def read_photos(files: list, max_photos: int, max_bytes: int) -> list:
    """Uploaded files (Starlette UploadFile) as checked photos (zonechief.photos); PhotoError names the file."""
    files = [f for f in files if getattr(f, "filename", None) or getattr(f, "size", 0)]
    if len(files) > max_photos:
        raise PhotoError(f"最多 {max_photos} 张照片 / at most {max_photos} photos", status=413)
    out = []
    for i, f in enumerate(files, start=1):
        data = f.file.read(max_bytes + 1)  # one byte more than allowed tells "too large" without reading it all
        try:
            out.append(process_photo(data, max_bytes))
        except PhotoError as exc:
            raise PhotoError(f"photo {i} ({f.filename or 'unnamed'}): {exc}", status=exc.status) from None
    return out


@router.post("/reports/{report_id}/photos", summary="Add photos to a report (staff)",
             description="multipart/form-data with up to `ZONECHIEF_MAX_PHOTOS` files in `photo` and a `kind` "
                         "(`resolution`, default, or `citizen`). JPEG, PNG, WebP or HEIC, checked from the bytes; "
                         "EXIF (GPS included) is stripped and the longer side limited to 2048 px.")
def add_photos(report_id: int, services: ServicesDep, caller: Staff,
               photo: Annotated[list[UploadFile], File(description="one or more image files")],
               kind: Annotated[str, Form(description=" or ".join(MEDIA_KINDS))] = "resolution"):
    """Add photos to a report."""
    _check_own(services, report_id, caller)
    s = services.settings
    photos = read_photos(photo, s.max_photos, s.max_photo_bytes)
    return report_to_dict(services.reports.add_photos(report_id, photos, kind), personal=True,
                          public_url=s.public_url)


@router.get("/reports/{report_id}/photos/{media_id}", summary="One photo of a report (staff)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
def get_photo(report_id: int, media_id: int, services: ServicesDep, caller: Staff):
    """A report's photo, as stored."""
    _check_own(services, report_id, caller)
    m, data = services.reports.photo(report_id, media_id)
    return Response(data, media_type=m.content_type, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/chiefs/{chief_id}/queue", summary="Open reports of a chief, oldest first (staff)")
def chief_queue(chief_id: str, services: ServicesDep, index: IndexDep, caller: Staff):
    """A chief's open reports, oldest first."""
    if not caller.acts_for(chief_id):
        raise Problem(403, f"your key acts for chief {caller.chief_id}, not {chief_id}", title="Forbidden")
    if index.roster is None or chief_id not in set(index.roster.table.person_id):
        raise Problem(404, f"no chief {chief_id!r}; GET /v1/chiefs lists them")
    rows = services.reports.queue(chief_id)
    return {"chief_id": chief_id, "count": len(rows),
            "items": [report_to_dict(r, True, public_url=services.settings.public_url) for r in rows]}
