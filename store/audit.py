"""Audit trail of reference-data changes: who changed what, and when (table audit_log, migration 0002)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import AuditEntry

# Actions that replace reference data (a scheduled boundary generation taking effect too; zonechief.generations);
# their presence means the database, not the shipped files, is in force.
REFERENCE_ACTIONS = ("boundaries.import", "roster.import", "facilities.import", "boundaries.activate")


def record(session: Session, actor: str, action: str, summary: dict, at: datetime | None = None) -> AuditEntry:
    """Add an entry in the caller's transaction, so it commits (or not) with the change it describes."""
    e = AuditEntry(at=at or datetime.now(timezone.utc), actor=actor[:100], action=action, summary=summary)
    session.add(e)
    session.flush()
    return e


def entries(session: Session, action: str | None = None, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
    """Audit entries, newest first, of one action or all; paged with limit and offset."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if action:
        q = q.where(AuditEntry.action == action)
    return list(session.scalars(q))


def has_reference_imports(session: Session) -> bool:
    """True once reference data has been imported: then the database, not the shipped files, is in force."""
    return session.scalar(select(AuditEntry.id).where(AuditEntry.action.in_(REFERENCE_ACTIONS)).limit(1)) is not None


def latest_reference_import(session: Session) -> int | None:
    """The id of the newest reference import: the version of the reference data in the store (None: the shipped files)."""
    return session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.action.in_(REFERENCE_ACTIONS)))


def to_dict(e: AuditEntry) -> dict:
    """An entry as a JSON-ready dict (time in ISO 8601), as the admin API and the CLI show it."""
    return {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "summary": e.summary}
