"""What the chief's page (/chief, api/chief.py) is made of: the session cookie, its CSRF token, and the views drawn.

A staff key is typed once into the sign-in form and exchanged for a random session token
(store.sessions) in an HttpOnly, SameSite=Strict cookie (Secure over https); the key itself
never reaches the browser's storage. Every form carries a CSRF token, an HMAC of the session
token: a page of another site cannot read it, so cannot post one.
The sign-in form has its own (double-submit: a random cookie and its HMAC in the form).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import Request
from fastapi.responses import Response

from api.auth import Caller
from api.citizen_pages import page, same_site_only
from api.deps import SESSION_COOKIE, caller_for_session, services_of
from api.errors import Problem
from store.models import Report
from store.sessions import SESSION_TTL
from zonechief.feedback import OUTCOMES
from zonechief.reports import media_path, photo_notes
from zonechief.tracking import STATUS_WORDS as STEP_WORDS  # a history step in plain words
from zonechief.workflow import TRANSITIONS

LOGIN_COOKIE = "zc_login"  # the sign-in form's double-submit nonce
LOGIN_TTL_S = 3600
CSRF_FIELD = "csrf"

# status → (Chinese, English) as the chief reads it
STATUS_WORDS = {
    "new": ("待核实", "to check"),
    "assigned": ("待接单", "to accept"),
    "in_progress": ("处理中", "in progress"),
    "resolved": ("已解决", "resolved"),
    "closed": ("已办结", "closed"),
    "rejected": ("不予受理", "rejected"),
    "duplicate": ("重复", "duplicate"),
}
# (from, to) → the button (Chinese, English); only the chief's own steps (zonechief.workflow.TRANSITIONS decides)
ACTIONS = {
    ("assigned", "in_progress"): ("接单", "Accept"),
    ("resolved", "in_progress"): ("重新处理", "Back to in progress"),
    ("in_progress", "resolved"): ("已解决", "Resolved"),
}


def _mac(secret: str, purpose: bytes) -> str:
    return hmac.new(secret.encode(), purpose, hashlib.sha256).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: only a page that was given it knows it."""
    return _mac(session_token, b"zonechief chief csrf")


def login_token(nonce: str) -> str:
    """The sign-in form's token for the nonce in its cookie."""
    return _mac(nonce, b"zonechief chief login")


def tokens_match(expected: str, sent: str | None) -> bool:
    """Constant-time comparison of a form's token."""
    return bool(sent) and hmac.compare_digest(expected, str(sent))


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (uvicorn sets the scheme from trusted proxies)."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole site, Secure over https."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=is_https(request))


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Remove a cookie set by set_cookie."""
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_https(request))


@dataclass(frozen=True)
class Staff:
    """A signed-in page: who (the session's key), the session token, and the forms' CSRF token."""

    caller: Caller
    token: str

    @property
    def csrf(self) -> str:
        """The token every form of this session carries."""
        return csrf_token(self.token)


def signed_in(request: Request) -> Staff | None:
    """The page's session, or None (no cookie, or it expired or was revoked, or its key was). Blocking."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    caller = caller_for_session(services_of(request), token)
    return None if caller is None or not caller.at_least("staff") else Staff(caller, token)


def check_post(request: Request, staff: Staff | None, form) -> Staff:
    """A form post of a signed-in page: from this site, with the session's CSRF token (403 otherwise)."""
    same_site_only(request)
    if staff is None:
        raise Problem(401, "请先登录 / please sign in first at /chief", title="Unauthorized")
    if not tokens_match(staff.csrf, form.get(CSRF_FIELD)):
        raise Problem(403, "表单已过期，请返回页面再提交 / the form's security token is missing or wrong; "
                           "go back to the page and send it again", title="Forbidden")
    return staff


def session_max_age() -> int:
    """The session cookie's lifetime, as the session's (12 h)."""
    return int(SESSION_TTL.total_seconds())


def new_login_nonce() -> str:
    """A fresh nonce for the sign-in form's cookie."""
    return secrets.token_urlsafe(24)


# ------------------------------------------------------------------ the views
def chief_info(services, chief_id: str) -> dict | None:
    """A chief in force: id, name, phone and zones; None if there is no such chief."""
    roster = services.index.roster
    if roster is None:
        return None
    people = roster.people(role="chief")
    rows = people[people.person_id == chief_id]
    if not len(rows):
        return None
    r = rows.iloc[0]
    return {"id": chief_id, "name": str(r["name"]), "phone": str(r["phone"]), "zone_ids": str(r["zone_ids"]).split(";")}


def chiefs(services) -> list[dict]:
    """Every chief in force, for the picker of unbound staff keys and admins."""
    roster = services.index.roster
    if roster is None:
        return []
    return [{"id": r.person_id, "name": r.name, "zone_ids": r.zone_ids.split(";")}
            for r in roster.people(role="chief").itertuples()]


def category_names(services) -> dict[str, str]:
    """Category code → name."""
    c = services.categories
    return dict(zip(c["code"], c["name"]))


def where(r: Report) -> str:
    """Where a report is, as the citizen gave it: the address, the facility's code, or the point."""
    loc = r.location_input or {}
    if loc.get("address"):
        return str(loc["address"])
    if loc.get("service_code"):
        return f"服务码 {loc['service_code']}"
    g = r.geom
    return "" if g is None else f"{g.y:.5f}, {g.x:.5f}"


def queue_item(r: Report, names: dict[str, str]) -> dict:
    """A report as the queue lists it."""
    g = r.geom
    zh, en = STATUS_WORDS.get(r.status, (r.status, r.status))
    return {"id": r.id, "category": r.category, "category_name": names.get(r.category, ""),
            "description": r.description, "status": r.status, "status_zh": zh, "status_en": en,
            "created_at": r.created_at.isoformat(), "where": where(r),
            "lon": None if g is None else g.x, "lat": None if g is None else g.y}


def actions(status: str) -> list[dict]:
    """The buttons a report in `status` shows."""
    return [{"to": to, "zh": zh, "en": en} for (fr, to), (zh, en) in ACTIONS.items()
            if fr == status and to in TRANSITIONS[status]]


def report_view(r: Report, names: dict[str, str]) -> dict:
    """A report as its page shows it to the chief: contact, photos, history, what can be done."""
    item = queue_item(r, names)
    history = [{"status": e.status, "zh": STEP_WORDS.get(e.status, (e.status, e.status))[0],
                "en": STEP_WORDS.get(e.status, (e.status, e.status))[1],
                "at": e.at.isoformat(), "actor": e.actor, "note": e.note} for e in r.history]
    return {**item, "reporter_name": r.reporter_name, "reporter_phone": r.reporter_phone,
            "zone_id": r.zone_id, "chief_id": r.chief_id, "needs_review": r.needs_review,
            "photos": [{"id": m.id, "kind": m.kind, "url": media_path(r, m), "width": m.width, "height": m.height}
                       for m in r.media],
            "photo_notes": photo_notes(r), "history": history, "actions": actions(r.status),
            "feedback": None if r.satisfaction is None else {
                "outcome": r.satisfaction, "zh": OUTCOMES.get(r.satisfaction, ("",))[0],
                "en": OUTCOMES.get(r.satisfaction, ("", r.satisfaction))[1], "rating": r.rating,
                "comment": r.rating_comment}}


def chief_page(request: Request, template: str, staff: Staff | None, status: int = 200, **context) -> Response:
    """A page of /chief, with the session's CSRF token for its forms."""
    return page(request, template, status, staff=staff, csrf=staff.csrf if staff else "", csrf_field=CSRF_FIELD,
                status_words=STATUS_WORDS, **context)


def now() -> datetime:
    """The time, in UTC."""
    return datetime.now(timezone.utc)
