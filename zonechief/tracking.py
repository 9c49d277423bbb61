"""What a citizen sees of their report through its tracking token (/t/{token}, /v1/track/{token}).

Plain words (Chinese first, English beside), the chief's public name and phone, the resolution
note and photos, and whether an answer is taken now. Nothing else of the report: no reporter
contact, no internal notes, no link to any other report.
"""
from __future__ import annotations

from datetime import datetime

from store.models import Report
from zonechief.feedback import OUTCOMES, answer_state

# status → (Chinese, English): what it means to the citizen
STATUS_WORDS = {
    "new": ("已收到，等待核实位置", "received, location being checked"),
    "assigned": ("已派给片长", "sent to the zone chief"),
    "in_progress": ("正在处理", "being handled"),
    "resolved": ("已处理完成", "resolved"),
    "closed": ("已办结", "closed"),
    "rejected": ("不予受理", "not accepted"),
    "duplicate": ("重复反映，已并入其他问题", "a duplicate of another report"),
}
# Which history notes who may read. A note given with a status change is the public word on it, as
# Open311's status_notes (the chief's page says so beside the field); the citizen's own comments (their
# answers) are for them and staff only, since they often name homes and people.


def note_for(e, audience: str) -> str | None:
    """The note of history event `e` as `audience` may read it: "staff" and "citizen" (the tracking link's
    holder) all of them; "public" all but the citizen's own."""
    if audience == "public" and e.actor == "citizen":
        return None
    return e.note


def last_resolved_at(r: Report) -> datetime | None:
    """When the report was last resolved, from its history (None if never)."""
    times = [e.at for e in r.history if e.status == "resolved"]
    return max(times) if times else None


def photo_path(r: Report, media_id: int) -> str:
    """The tracking page's URL path of one of the report's photos."""
    return f"/t/{r.tracking_token}/photos/{media_id}"


def tracking_view(r: Report, roster, categories: dict[str, str], now: datetime) -> dict:
    """The citizen's view of report `r` (JSON-ready). `categories`: code → name."""
    chief = None
    if r.chief_id and roster is not None:
        t = roster.table
        rows = t[t.person_id == r.chief_id]
        if len(rows):
            p = rows.iloc[-1]
            chief = {"name": str(p["name"]), "phone": str(p["phone"])}
    steps = []
    for e in r.history:
        zh, en = STATUS_WORDS.get(e.status, (e.status, e.status))
        steps.append({"status": e.status, "label_zh": zh, "label_en": en, "at": e.at.isoformat(),
                      "note": note_for(e, "citizen")})
    resolution = next((e for e in reversed(r.history) if e.status == "resolved"), None)
    state = answer_state(r.status, last_resolved_at(r), r.first_rated_at, now)
    zh, en = STATUS_WORDS.get(r.status, (r.status, r.status))
    answer = None
    if r.satisfaction:
        ozh, oen = OUTCOMES.get(r.satisfaction, (r.satisfaction, r.satisfaction))
        answer = {"outcome": r.satisfaction, "label_zh": ozh, "label_en": oen, "rating": r.rating,
                  "comment": r.rating_comment, "at": r.rated_at.isoformat() if r.rated_at else None}
    return {
        "status": r.status, "label_zh": zh, "label_en": en,
        "category": r.category, "category_name": categories.get(r.category),
        "description": r.description, "created_at": r.created_at.isoformat(),
        "zone_id": r.zone_id, "chief": chief, "history": steps,
        "resolution": None if resolution is None else {"at": resolution.at.isoformat(), "note": resolution.note},
        "photos": [{"kind": m.kind, "url": photo_path(r, m.id), "width": m.width, "height": m.height}
                   for m in r.media],
        "answer": answer,
        "can_answer": state.open, "answer_closed_reason": None if state.open else state.reason,
        "answer_replaces": state.replaces,
    }
