"""/healthz: liveness and the status of each dependency."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import zonechief
from api.deps import ServicesDep
from api.errors import RETRY_AFTER_S

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness and the status of each dependency",
            description="`checks` has one entry per dependency (zones_index, database) with its status. "
                        "503 with Retry-After when any is down.",
            responses={503: {"description": "A dependency is down", "content": {"application/json": {}}}})
def healthz(services: ServicesDep):
    """The status of the zone index and the database."""
    checks = services.health()
    ok = all(c["status"] == "ok" for c in checks.values())
    zi = checks["zones_index"]
    body = {"status": "ok" if ok else "unavailable", "version": zonechief.__version__, "zones": zi.get("zones"),
            "villages": zi.get("villages"), "roster": zi.get("roster"), "checks": checks}
    if ok:
        return body
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
