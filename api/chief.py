"""The chief's side: the live stream of a chief's report events (/v1/chiefs/{id}/events, Server-Sent Events)
and the chief's page (/chief): sign in once with a staff key, the queue of open reports on a small
offline map, each report's page with its photos, contact and history, and the forms that move it on.

Pages are plain HTML forms that work without JavaScript; maps/static/chief/chief.js adds the map and
inserts new reports as they arrive on the stream. What the pages are made of (the session cookie,
CSRF tokens, the views) is in api/chief_pages.py; the stream's reading of the outbox, in
zonechief/event_stream.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.auth import Caller
from api.chief_pages import (
    ACTIONS,
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    Staff,
    category_names,
    check_post,
    chief_info,
    chief_page,
    chiefs,
    clear_cookie,
    login_token,
    new_login_nonce,
    now,
    queue_item,
    report_view,
    session_max_age,
    set_cookie,
    signed_in,
    tokens_match,
)
from api.citizen_pages import base_url, clean_text, same_site_only
from api.deps import SESSION_COOKIE, ServicesDep, get_caller, require, services_of
from api.errors import Problem
from api.reports import read_photos
from store.keys import verify_key
from store.sessions import StaffSessions
from zonechief.event_stream import READ_LIMIT, EventStream, StreamEvent, high_water
from zonechief.workflow import TRANSITIONS

log = logging.getLogger("zonechief.api")
router = APIRouter()
Staffer = Annotated[Caller, Depends(require("staff"))]

POLL_S = 0.5  # how often a stream looks for new events
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
RECHECK_S = 15.0  # a stream whose key or session was revoked ends within this long
RETRY_MS = 2000  # the browser reconnects after this long (EventSource `retry:`)
NOTE_MAX = 2000
MAX_ID = 2**63 - 1  # event ids are 64-bit


# ------------------------------------------------------------------ the stream
def check_chief_access(services, caller: Caller, chief_id: str) -> dict:
    """The chief's info, if `caller` may follow them: a staff key bound to another chief is a 403."""
    if not caller.acts_for(chief_id):
        raise Problem(403, f"your key acts for chief {caller.chief_id}, not {chief_id}", title="Forbidden")
    info = chief_info(services, chief_id)
    if info is None:
        raise Problem(404, f"no chief {chief_id!r}; GET /v1/chiefs lists them")
    return info


def frame(e: StreamEvent) -> str:
    """One event in the text/event-stream format (the JSON is one line: json.dumps escapes line breaks)."""
    data = json.dumps(e.payload, ensure_ascii=False, separators=(",", ":"))
    return f"id: {e.id}\nevent: {e.type}\ndata: {data}\n\n"


def resume_point(header: str | None, query: int | None) -> int | None:
    """Where a stream resumes: the Last-Event-ID header (a reconnecting EventSource), else ?last_event_id=."""
    if header is not None and header.strip():
        if not header.strip().isdigit() or int(header.strip()) > MAX_ID:
            raise Problem(422, f"Last-Event-ID {header!r} is not an event id (a whole number)")
        return int(header.strip())
    return query


def still_allowed(request: Request, chief_id: str) -> bool:
    """Whether the stream's credentials still hold (a revoked key or session ends it). Blocking."""
    services = services_of(request)
    try:
        caller = get_caller(request, services)
        if not caller.at_least("staff"):
            return False
        check_chief_access(services, caller, chief_id)
    except Exception:  # refused, or the database is away: end; the client resumes (or is told why) on reconnecting
        return False
    return True


class Waker:
    """Wakes this process's streams when a change here committed events, instead of at their next poll."""

    def __init__(self):
        self.waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.lock = threading.Lock()

    def add(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """A stream's event, set by `wake` (call from the stream's loop)."""
        w = (asyncio.get_running_loop(), asyncio.Event())
        with self.lock:
            self.waiting.add(w)
        return w

    def remove(self, w) -> None:
        """The stream ended."""
        with self.lock:
            self.waiting.discard(w)

    def wake(self) -> None:
        """Set every stream's event (from any thread)."""
        with self.lock:
            waiting = list(self.waiting)
        for loop, ev in waiting:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop is closed: its stream is gone
                pass


def waker_of(request: Request) -> Waker:
    """The app's Waker, hooked to its Reports once (Reports.on_events runs after each commit with events)."""
    state = request.app.state
    with _WAKER_LOCK:
        w = getattr(state, "chief_waker", None)
        if w is None:
            services = services_of(request)
            w = state.chief_waker = Waker()

            def told(w=w, services=services):
                high_water(services.db.outbox).nudge()
                w.wake()

            services.reports.on_events.append(told)
    return w


_WAKER_LOCK = threading.Lock()


async def frames(request: Request, stream: EventStream, chief_id: str, waker: Waker):
    """The stream's body: replayed and new events, keep-alive comments; ends on disconnect, revocation or a store error."""
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = checked_at = time.monotonic()
    woken = waker.add()
    try:
        while True:
            if await request.is_disconnected():
                return
            woken[1].clear()
            try:
                batch = await run_in_threadpool(stream.poll)
            except Exception as exc:  # the database went away: end; the client resumes with Last-Event-ID
                log.warning("event stream of chief %s ended: %s", chief_id, type(exc).__name__)
                return
            for e in batch:
                yield frame(e)
            t = time.monotonic()
            if batch:
                quiet_since = t
            elif t - quiet_since >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = t
            if t - checked_at >= RECHECK_S:
                if not await run_in_threadpool(still_allowed, request, chief_id):
                    return
                checked_at = t
            if len(batch) < READ_LIMIT:  # a full batch: more are waiting, read on at once
                with anyio.move_on_after(POLL_S):  # a poll, or sooner when a change here is committed
                    await woken[1].wait()
    finally:
        waker.remove(woken)


@router.get("/v1/chiefs/{chief_id}/events", tags=["events"], summary="A chief's report events, live (Server-Sent Events)",
            response_class=StreamingResponse,
            responses={200: {"description": "text/event-stream: `id:` event id, `event:` type, `data:` the payload",
                             "content": {"text/event-stream": {}}}},
            description="Every event of the chief's reports (report.created, report.assigned, report.status_changed, "
                        "report.rated) as it happens, in event-id order. Resume with the `Last-Event-ID` header (what "
                        "EventSource sends when it reconnects) or `?last_event_id=`: the chief's events after it are "
                        "sent first. Without either, the stream starts now. A comment every 15 s keeps it open. "
                        "A staff key bound to this chief, an unbound staff key, an admin key, or the chief page's "
                        "session cookie.")
async def chief_events(chief_id: str, request: Request, caller: Staffer,
                       last_event_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="resume after this event id")] = None,
                       last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID",
                                                                          include_in_schema=False)] = None):
    """Stream a chief's events."""
    services = services_of(request)
    after = resume_point(last_event_id_header, last_event_id)

    def start() -> EventStream:
        check_chief_access(services, caller, chief_id)
        return EventStream(services.db.outbox, chief_id, after)

    stream = await run_in_threadpool(start)
    waker = await run_in_threadpool(waker_of, request)  # services.reports may open the store: not on the loop
    return StreamingResponse(frames(request, stream, chief_id, waker), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ------------------------------------------------------------------ signing in and out
def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The sign-in form, with a fresh nonce cookie and its token."""
    nonce = new_login_nonce()
    resp = chief_page(request, "chief_login.html", None, status, error=error, login_csrf=login_token(nonce),
                      action=f"{base_url(request)}/chief/login")
    set_cookie(resp, request, LOGIN_COOKIE, nonce, LOGIN_TTL_S)
    return resp


def sign_in(services, key: str) -> tuple[str | None, str | None, int]:
    """(session token, None, 303) for a staff or admin key; (None, message, status) otherwise. Blocking."""
    with services.db.sessions() as s:
        row = verify_key(s, key) if key else None
    if row is None:
        return None, "密钥无效或已停用 / the key is unknown or revoked", 401
    if row.role not in ("staff", "admin"):
        return None, "这个密钥不是工作人员密钥 / this is not a staff key", 403
    return StaffSessions(services.db.sessions).create(row, now()), None, 303


@router.post("/chief/login", include_in_schema=False)
async def login(request: Request):
    """Exchange a staff key for a session cookie (the key is not kept by the browser)."""
    same_site_only(request)
    form = await request.form(max_files=0, max_fields=10)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not tokens_match(login_token(nonce), form.get(CSRF_FIELD)):
        raise Problem(403, "登录表单已过期，请重新打开 /chief 再登录 / the sign-in form expired; open /chief again",
                      title="Forbidden")
    token, error, status = await run_in_threadpool(sign_in, services_of(request), str(form.get("key") or "").strip())
    if token is None:
        return login_page(request, error, status)
    resp = RedirectResponse(f"{base_url(request)}/chief", status_code=303)
    set_cookie(resp, request, SESSION_COOKIE, token, session_max_age())
    clear_cookie(resp, request, LOGIN_COOKIE)
    return resp


@router.post("/chief/logout", include_in_schema=False)
async def logout(request: Request):
    """End the session: the cookie stops working here and everywhere it was copied."""
    form = await request.form(max_files=0, max_fields=10)
    staff = check_post(request, await run_in_threadpool(signed_in, request), form)
    await run_in_threadpool(StaffSessions(services_of(request).db.sessions).revoke, staff.token)
    resp = RedirectResponse(f"{base_url(request)}/chief", status_code=303)
    clear_cookie(resp, request, SESSION_COOKIE)
    return resp


# ------------------------------------------------------------------ the queue
@router.get("/chief", include_in_schema=False)
def queue_page(request: Request, services: ServicesDep, chief: Annotated[str | None, Query(max_length=32)] = None):
    """The chief's open reports, oldest first (or, for an unbound key, the chief to look at)."""
    staff = signed_in(request)
    if staff is None:
        return login_page(request)
    chief_id = staff.caller.chief_id if staff.caller.role == "staff" and staff.caller.chief_id else chief
    if not chief_id:
        return chief_page(request, "chief.html", staff, chiefs=chiefs(services), info=None)
    info = check_chief_access(services, staff.caller, chief_id)
    # The mark first, then the queue: an event after the mark is streamed, one before it is in the queue.
    after = high_water(services.db.outbox).current(fresh=True)
    names = category_names(services)
    items = [queue_item(r, names) for r in services.reports.queue(chief_id)]
    return chief_page(request, "chief.html", staff, info=info, items=items, after=after,
                      events=f"{base_url(request)}/v1/chiefs/{quote(chief_id, safe='')}/events")


# ------------------------------------------------------------------ one report
def own_report(services, caller: Caller, report_id: int):
    """The report, if this caller may act on it (a bound staff key: its chief's reports only)."""
    r = services.reports.get(report_id)
    if not caller.acts_for(r.chief_id):
        raise Problem(403, f"问题 {report_id} 不属于您 / report {report_id} belongs to chief {r.chief_id}; "
                           f"your key acts for {caller.chief_id}", title="Forbidden")
    return r


@router.get("/chief/reports/{report_id}", include_in_schema=False)
def report_page(report_id: int, request: Request, services: ServicesDep, done: str | None = None):
    """A report: photos, the citizen's contact, history, and the forms of its next steps."""
    staff = signed_in(request)
    if staff is None:
        return login_page(request)
    r = own_report(services, staff.caller, report_id)
    return chief_page(request, "chief_report.html", staff, r=report_view(r, category_names(services)),
                      done=done if done in TRANSITIONS else None,
                      action=f"{base_url(request)}/chief/reports/{report_id}/status",
                      max_photos=services.settings.max_photos, max_bytes=services.settings.max_photo_bytes)


def act(services, caller: Caller, report_id: int, to: str, note: str, files: list) -> None:
    """Check and make one step of the chief's (with its note and resolution photos). Blocking."""
    r = own_report(services, caller, report_id)
    if (r.status, to) not in ACTIONS:
        raise Problem(409, f"问题 {report_id} 现在是 {r.status}，不能这样处理 / report {report_id} is {r.status}; "
                           f"it cannot go to {to!r} from this page", title="Conflict")
    if len(note) > NOTE_MAX:
        raise Problem(422, f"说明最多 {NOTE_MAX} 字 / a note has at most {NOTE_MAX} characters")
    s = services.settings
    photos = read_photos(files, s.max_photos, s.max_photo_bytes)  # checked before the change: a bad photo changes nothing
    services.reports.transition(report_id, to, caller.actor, note or None)
    if photos:
        services.reports.add_photos(report_id, photos, kind="resolution")


@router.post("/chief/reports/{report_id}/status", include_in_schema=False)
async def report_action(report_id: int, request: Request):
    """Accept, resolve (with a note and photos) or take up again a report; back to its page (303)."""
    services = services_of(request)
    form = await request.form(max_files=services.settings.max_photos + 1, max_fields=20)
    try:
        staff: Staff = check_post(request, await run_in_threadpool(signed_in, request), form)
        to = str(form.get("status") or "")
        note = clean_text(str(form.get("note") or "")).strip()
        files = [f for f in form.getlist("photo") if isinstance(f, UploadFile)]
        await run_in_threadpool(act, services, staff.caller, report_id, to, note, files)
    finally:
        await form.close()
    return RedirectResponse(f"{base_url(request)}/chief/reports/{report_id}?done={quote(to)}", status_code=303)
