"""API keys: who is calling, with which role (public < staff < admin)."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from store.keys import verify_key

RANK = {"public": 0, "staff": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the role and name of their key (anonymous callers act as public)."""
    role: str
    name: str
    key_prefix: str | None = None
    chief_id: str | None = None

    def at_least(self, role: str) -> bool:
        """Whether the caller's role is `role` or above."""
        return RANK[self.role] >= RANK[role]

    def acts_for(self, chief_id: str | None) -> bool:
        """Whether the caller may act for this chief: a staff key bound to a chief acts for that chief only."""
        return not (self.role == "staff" and self.chief_id and self.chief_id != chief_id)

    @property
    def actor(self) -> str:
        """How the caller is named in report histories and the audit trail."""
        return f"key:{self.key_prefix}" if self.key_prefix else "anonymous"


ANONYMOUS = Caller("public", "anonymous")


def request_key(request: Request) -> str | None:
    """The key sent as X-API-Key or Authorization: Bearer."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def caller_for_key(services, key: str) -> Caller | None:
    """The caller a key stands for; None for an unknown or revoked key."""
    with services.db.sessions() as s:
        row = verify_key(s, key.strip())
    return None if row is None else Caller(row.role, row.name, row.prefix, row.chief_id)
