"""The citizen's tracking page /t/{token}: the receipt, the report's progress, and their answer once resolved.

The page is the HTML face of api.tracking.view (zonechief.tracking): the token reaches one report and
nothing else. The answer form posts back here and redirects (303) to the page; a refused answer draws
the page again with the message (409 before resolution or after the window, 422 for a bad field).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.citizen_pages import NO_INDEX, Refused, base_url, clean_text, page, same_site_only
from api.deps import limit_public_submissions, services_of
from api.tracking import view
from zonechief.feedback import OUTCOMES, FeedbackConflict, FeedbackIn

router = APIRouter(include_in_schema=False)
RATINGS = (5, 4, 3, 2, 1)


def track_page(request: Request, token: str, filed: bool = False, values: dict | None = None,
               refused: Refused | None = None) -> Response:
    """The tracking page (blocking: reads the store)."""
    services = services_of(request)
    v = view(services, token)  # TokenNotFound: the 404 page
    return page(request, "track.html", refused.status if refused else 200, NO_INDEX, view=v, token=token, filed=filed,
                link=f"{services.settings.public_url}/t/{token}", outcomes=OUTCOMES, ratings=RATINGS,
                values=values or {}, errors=refused.errors if refused else {},
                action=f"{base_url(request)}/t/{token}")


def answer(services, token: str, v: dict) -> Refused | None:
    """Check and store the answer; what to ask again for, or None once stored (blocking)."""
    errors = {}
    if v["outcome"] not in OUTCOMES:
        errors["outcome"] = "请选择问题是否已解决 / please say whether it was fixed"
    if v["rating"] not in {str(r) for r in RATINGS}:
        errors["rating"] = "请打分：1 到 5 / please give a rating from 1 to 5"
    if len(v["comment"]) > 1000:
        errors["comment"] = f"意见最多 1000 字（现在 {len(v['comment'])} 字）/ at most 1000 characters"
    if errors:
        return Refused(422, errors)
    try:
        fb = FeedbackIn(outcome=v["outcome"], rating=int(v["rating"]), comment=v["comment"])
    except ValidationError as exc:
        return Refused(422, {"form": "; ".join(e["msg"] for e in exc.errors())})
    try:
        services.reports.give_feedback(token, fb)
    except FeedbackConflict as exc:
        return Refused(409, {"form": str(exc)})
    return None


@router.get("/t/{token}")
def tracking(token: str, request: Request, filed: str | None = None):
    """The receipt (with ?filed=1) and the report's progress."""
    return track_page(request, token, filed == "1")


@router.post("/t/{token}", dependencies=[Depends(same_site_only), Depends(limit_public_submissions)])
async def tracking_answer(token: str, request: Request):
    """The citizen's answer: fixed / partly fixed / not fixed, a rating and a comment."""
    form = await request.form(max_files=0, max_fields=10)
    v = {k: clean_text(str(form.get(k) or "")).strip() for k in ("outcome", "rating", "comment")}
    services = services_of(request)
    refused = await run_in_threadpool(answer, services, token, v)
    if refused is not None:
        return await run_in_threadpool(track_page, request, token, False, v, refused)
    return RedirectResponse(f"{base_url(request)}/t/{token}", status_code=303)
