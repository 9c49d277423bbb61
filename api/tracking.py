"""The citizen's tracking link as JSON (/v1/track/{token}) and its photos (/t/{token}/photos/{id}).

The token is the only key: it reaches one report, and nothing else. The HTML page over the same
view is api/citizen.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Response

from api.citizen_pages import NO_INDEX, NO_STORE
from api.deps import ServicesDep, limit_public_submissions
from zonechief.feedback import FeedbackIn
from zonechief.reports import NotFound, TokenNotFound
from zonechief.tracking import tracking_view

router = APIRouter(tags=["citizen"])


def view(services, token: str) -> dict:
    """The tracking view of the report with this token (zonechief.tracking)."""
    r = services.reports.by_token(token)
    names = dict(zip(services.categories["code"], services.categories["name"]))
    return tracking_view(r, services.index.roster, names, datetime.now(timezone.utc))


@router.get("/v1/track/{token}", summary="A report as its citizen sees it, by tracking token")
def track(token: str, services: ServicesDep, response: Response):
    """Status and history in plain words, the chief's public name and phone, the resolution, whether an answer is taken."""
    response.headers.update({**NO_STORE, **NO_INDEX})  # the report's state now, reached by a credential
    return view(services, token)


@router.post("/v1/track/{token}/feedback", summary="The citizen's answer once resolved",
             dependencies=[Depends(limit_public_submissions)],
             description="已解决 / 部分解决 / 未解决 (fixed / partly_fixed / not_fixed), a rating 1–5 and a comment; "
                         "once per report, replaced by a second answer within 7 days. `not_fixed` reopens a resolved "
                         "report. 409 before resolution or after the window.")
def feedback(token: str, body: FeedbackIn, services: ServicesDep, response: Response):
    """Store the answer; the report's tracking view back."""
    services.reports.give_feedback(token, body)
    response.headers.update({**NO_STORE, **NO_INDEX})
    return view(services, token)


@router.get("/t/{token}/photos/{media_id}", include_in_schema=False)
def tracked_photo(token: str, media_id: int, services: ServicesDep):
    """A photo of the report this token tracks (its citizen's, or the resolution's)."""
    r = services.reports.by_token(token)
    try:
        m, data = services.reports.photo(r.id, media_id)
    except NotFound:
        raise TokenNotFound(token) from None
    return Response(data, media_type=m.content_type, headers={"Cache-Control": "private, max-age=86400", **NO_INDEX})
