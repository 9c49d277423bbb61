"""API-key authentication: X-API-Key or Authorization: Bearer; roles public < staff < admin."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from store.keys import verify_key

from api.problems import Problem

RANK = {"public": 0, "staff": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    role: str
    name: str
    key_prefix: str | None = None
    chief_id: str | None = None

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}" if self.key_prefix else "anonymous"


def _token(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def get_caller(request: Request) -> Caller:
    token = _token(request)
    services = request.app.state.services
    if token is None:
        if services.settings.require_public_key:
            raise Problem(401, "an API key is required: send it in the X-API-Key header", title="Unauthorized")
        return Caller("public", "anonymous")
    with services.db.sessions() as s:
        row = verify_key(s, token)
    if row is None:
        raise Problem(401, "the API key is unknown or revoked", title="Unauthorized")
    return Caller(row.role, row.name, row.prefix, row.chief_id)


def require(role: str):
    def dep(request: Request) -> Caller:
        caller = get_caller(request)
        if caller.key_prefix is None and not caller.at_least(role):  # no credentials at all: ask for them
            raise Problem(401, f"this needs a {role} API key: send it in the X-API-Key header", title="Unauthorized")
        if not caller.at_least(role):
            raise Problem(403, f"this needs a {role} API key; yours has the {caller.role} role", title="Forbidden")
        return caller

    return dep
