"""The report workflow: the statuses, the changes allowed between them, where reports come from.

The store keeps a status as plain text; which statuses exist and how a report
moves between them is decided here, for a single change (Reports.transition)
and for a whole history given to an import (zonechief.bulk).
"""
from __future__ import annotations

from gis.errors import ZonechiefError

STATUSES = ("new", "assigned", "in_progress", "resolved", "closed", "rejected", "duplicate")
OPEN_STATUSES = ("new", "assigned", "in_progress")
TRANSITIONS = {
    "new": {"assigned", "rejected", "duplicate"},
    "assigned": {"in_progress", "rejected", "duplicate"},
    "in_progress": {"resolved", "assigned"},
    "resolved": {"closed", "in_progress"},
    "closed": set(),
    "rejected": set(),
    "duplicate": set(),
}
SOURCES = ("service_code", "gps", "address", "staff")
# What staff and planners call each status (map popups, WeCom messages); citizens read zonechief.tracking's words.
STATUS_NAMES = {"new": "新建", "assigned": "已派单", "in_progress": "处理中", "resolved": "已处理", "closed": "已结案",
                "rejected": "不予受理", "duplicate": "重复"}
# A report without a zone is never assigned, so only these statuses are open to it.
ZONELESS_STATUSES = ("new", "rejected", "duplicate")


class TransitionError(ZonechiefError, ValueError):
    """A status change the workflow does not allow; the message says which are."""


def check_status(status: str) -> None:
    """Raise TransitionError unless `status` is one of STATUSES."""
    if status not in STATUSES:
        raise TransitionError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")


def check_transition(report_id: int, current: str, status: str, has_zone: bool) -> None:
    """Raise TransitionError unless report `report_id` may go from `current` to `status`."""
    check_status(status)
    allowed = TRANSITIONS[current]
    if status not in allowed:
        nexts = ", ".join(sorted(allowed)) or "none (final)"
        raise TransitionError(f"report {report_id} is {current}; it can go to: {nexts}")
    if status == "assigned" and not has_zone:
        raise TransitionError(f"report {report_id} has no zone (needs review); it cannot be assigned")


def zoneless(history: list[dict]) -> list[dict]:
    """A given history for a report that got no zone: the steps it can still have taken."""
    return [h for h in history if h["status"] in ZONELESS_STATUSES]


def history_problem(history: list[dict]) -> str | None:
    """Why a history ([{"status", "at"}], oldest first) cannot be a report's, or None if it can."""
    if not history or history[0]["status"] != "new":
        return "history must start with status new"
    for a, b in zip(history, history[1:]):
        if b["status"] not in TRANSITIONS[a["status"]]:
            return f"invalid status change {a['status']} → {b['status']}"
        if b["at"] < a["at"]:
            return "history times must not go backwards"
    return None
