"""Staff sessions of the chief's page (/chief): a staff key exchanged once for a random cookie token.

Only sha256(token) is stored (store.models.StaffSession), as for API keys: a copy of the table
signs nobody in. A session stands for its key while it is unexpired, unrevoked, and its key is
not revoked either: revoking the key ends every page signed in with it.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from store.models import ApiKey, StaffSession

SESSION_TTL = timedelta(hours=12)


def token_hash(token: str) -> str:
    """How a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class StaffSessions:
    """Create, resolve and revoke staff sessions (one table, the same SQL on PostgreSQL and SQLite)."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def create(self, key: ApiKey, now: datetime, ttl: timedelta = SESSION_TTL) -> str:
        """A new session of `key` (a stored, unrevoked key row); returns the token, shown once (the cookie)."""
        token = secrets.token_urlsafe(32)
        with self.sessions.begin() as s:
            s.add(StaffSession(token_hash=token_hash(token), key_id=key.id, created_at=now, expires_at=now + ttl,
                               revoked=False))
        return token

    def resolve(self, token: str, now: datetime) -> ApiKey | None:
        """The key a token stands for; None when unknown, expired, revoked, or its key is revoked."""
        if not token or len(token) > 200:
            return None
        with self.sessions() as s:
            return s.scalar(select(ApiKey).join(StaffSession, StaffSession.key_id == ApiKey.id).where(
                StaffSession.token_hash == token_hash(token), StaffSession.revoked.is_(False),
                StaffSession.expires_at > now, ApiKey.revoked.is_(False)))

    def revoke(self, token: str) -> bool:
        """End a session (sign out); False if there was no such live session."""
        with self.sessions.begin() as s:
            done = s.execute(update(StaffSession).where(StaffSession.token_hash == token_hash(token),
                                                        StaffSession.revoked.is_(False)).values(revoked=True))
        return bool(done.rowcount)
