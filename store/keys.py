"""API keys: random tokens, stored hashed, each with a role (public, staff, admin).

A token looks like zc_<prefix>_<secret>. Only sha256(secret) is stored; the
prefix identifies the key in lists and logs without revealing it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ROLES, ApiKey


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, role: str, name: str, chief_id: str | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns (row, token). The token is shown once and never stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    row = ApiKey(prefix=prefix, key_hash=_hash(secret), role=role, name=name, chief_id=chief_id,
                 created_at=datetime.now(timezone.utc), revoked=False)
    session.add(row)
    session.flush()
    return row, f"zc_{prefix}_{secret}"


def verify_key(session: Session, token: str) -> ApiKey | None:
    """The key row for a token, or None if unknown, malformed or revoked."""
    parts = token.split("_", 2) if token else []
    if len(parts) != 3 or parts[0] != "zc":
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or row.revoked or not hmac.compare_digest(row.key_hash, _hash(parts[2])):
        return None
    return row
